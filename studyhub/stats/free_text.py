"""Free-text answers: counted per item and arm, never analysed (the report lists the texts)."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from studyhub.errors import DataError
from studyhub.stats._data import require_columns

__all__ = ["free_text_summary"]


def free_text_summary(
    data: pd.DataFrame,
    *,
    item: str = "item",
    arm: str = "arm",
    label: str = "label",
    item_type: str | None = "item_type",
    items: Collection[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Count the non-empty free-text answers of each item per arm.

    Parameters
    ----------
    data
        Answers, one row each (the export's answers table).
    item, arm, label
        Columns of the instrument item, the arm and the answer text.
    item_type
        Column of the item type; rows of type ``free_text`` are counted. Ignored
        when ``items`` names the free-text items.
    items
        The free-text item ids (for data without an item-type column).

    Returns
    -------
    dict
        ``{item: {arm: count}}``, items and arms sorted; an arm whose answers
        to an item are all empty counts 0.

    Examples
    --------
    >>> import pandas as pd
    >>> answers = pd.DataFrame({"item": ["comment"] * 3, "arm": ["ig", "ig", "random"],
    ...                         "label": ["edge missed", "", "stamp"],
    ...                         "item_type": ["free_text"] * 3})
    >>> free_text_summary(answers)
    {'comment': {'ig': 1, 'random': 1}}
    """
    if items is None:
        if item_type is None or item_type not in data.columns:
            raise DataError(
                f"free_text_summary needs the item types (column {item_type!r} is not in the "
                "data) or the free-text item ids; pass item_type='COLUMN' or items=[...]"
            )
        sub = data[data[item_type].astype(str) == "free_text"]
    else:
        sub = data[data[item].astype(str).isin(set(map(str, items)))]
    if sub.empty:
        return {}
    require_columns(sub, item=item, arm=arm, label=label, missing_ok=("label",))
    text = sub[label].astype("string").str.strip()
    filled_flags = (text.notna() & (text != "")).fillna(False).tolist()
    out: dict[str, dict[str, int]] = {}
    for it, a, n in zip(
        sub[item].astype(str).tolist(), sub[arm].astype(str).tolist(), filled_flags, strict=True
    ):
        per_arm = out.setdefault(it, {})
        per_arm[a] = per_arm.get(a, 0) + int(bool(n))
    return {it: dict(sorted(arms.items())) for it, arms in sorted(out.items())}
