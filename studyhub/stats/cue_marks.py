"""Cue-mark endpoints: the share of raters' cue marks that fall inside labelled mask regions.

Raters may click points on a stimulus and tag them *correct cue* or *misleading
cue*. After unblinding each mark carries the name of the labelled mask region
under it (``data.mask_labels``), ``"background"``, or nothing when the case has
no mask. The endpoint's statistic is the share of marks of one tag inside a
labelled region, pooled over the endpoint's arms or compared between two arms,
with the rater and case clustered interval of :mod:`studyhub.stats._proportions`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import Endpoint
from studyhub.stats._data import require_columns
from studyhub.stats._proportions import proportion_endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["BACKGROUND", "cue_marks_endpoint", "inside_region"]

#: The region name of a mark outside every labelled region.
BACKGROUND = "background"


def inside_region(region: pd.Series) -> pd.Series:
    """1.0 inside a labelled region, 0.0 on the background, NaN where the case has no mask."""
    text = region.astype("string").str.strip()
    unknown = region.isna() | (text == "")
    out = (text.str.lower() != BACKGROUND).astype(float)
    return out.mask(unknown)


def cue_marks_endpoint(
    ep: Endpoint,
    marks: pd.DataFrame | None,
    cols: dict[str, str],
    *,
    opts: dict[str, Any],
    level: float,
) -> _Estimate:
    """Share of marks of the endpoint's tag inside labelled regions, per arm or compared.

    Parameters
    ----------
    ep
        The endpoint (statistic and measure ``cue_marks``).
    marks
        One row per mark: rater, case, arm (named as in the ratings), ``tag``
        (correct / misleading) and ``region``.
    cols
        Column names of rater, case and arm.
    opts
        The endpoint's options: ``tag`` (correct, misleading or any).
    level
        Coverage of the one-sided lower bound.

    Returns
    -------
    _Estimate
        The share (or the arm difference), its lower bound and the one-sided
        p-value; ``details`` counts the marks left out because their case has
        no mask.

    Notes
    -----
    The share is a ratio of sums (marks inside / marks on cases with a mask),
    so a rater who marks more weighs more. Marks on a case without a mask
    cannot be judged and are left out of both sums (counted in
    ``details["n_without_mask"]``). The interval clusters by rater and by case
    (two-way moment-corrected variance of the linearised ratio; Cameron,
    Gelbach & Miller 2011), so it generalises to new raters and cases.

    References
    ----------
    .. [1] Cameron AC, Gelbach JB, Miller DL (2011). Robust inference with
       multiway clustering. Journal of Business & Economic Statistics
       29(2):238-249.
    """
    if marks is None:
        raise DataError(
            f"endpoint {ep.id!r} (cue_marks) needs the raters' cue marks; pass marks= (the "
            "export's marks table)"
        )
    require_columns(
        marks,
        rater=cols["rater"],
        case=cols["case"],
        arm=cols["arm"],
        tag="tag",
        region="region",
        missing_ok=("region",),
    )
    tag = str(opts.pop("tag", "correct"))
    sub = marks if tag == "any" else marks[marks["tag"].astype(str) == tag]
    wanted = [ep.comparison.arm, ep.comparison.versus] if ep.comparison is not None else ep.arms
    if wanted is not None:
        present = set(map(str, sub[cols["arm"]].unique()))
        absent = [a for a in wanted if a not in present]
        if absent and ep.comparison is not None:
            raise DataError(
                f"arm(s) {absent} have no {tag} cue marks (arms with such marks: "
                f"{sorted(present)}); no share can be compared"
            )
        sub = sub[sub[cols["arm"]].astype(str).isin(wanted)]
    inside = inside_region(sub["region"])
    known = inside.notna()
    rows = pd.DataFrame(
        {
            "arm": sub.loc[known, cols["arm"]],
            "rater": sub.loc[known, cols["rater"]],
            "case": sub.loc[known, cols["case"]],
            "hit": inside[known],
        }
    )
    details = {
        "method": "cue_marks",
        "tag": tag,
        "n_marks": len(sub),
        "n_without_mask": int((~known).sum()),
        "inside": "region named (not background, not empty)",
    }
    return proportion_endpoint(rows, ep, level, what=f"{tag} cue marks", details=details)
