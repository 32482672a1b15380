"""Printing: plain consoles, typed results as rich tables for people, JSON for scripts.

Every console of the command line prints text verbatim: no markup (``[bold]``),
no emoji codes (``:warning:``) and no highlighting are interpreted, so a file
named ``study:warning:v2.yaml`` prints as it is named. Table cells that hold
user values are :class:`rich.text.Text`, verbatim whatever console prints them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["plain_console", "print_result", "texts", "to_jsonable"]


def plain_console(*, stderr: bool = False, soft_wrap: bool = True, **options: Any) -> Console:
    """A console that prints text verbatim: markup, emoji codes and highlighting off.

    Parameters
    ----------
    stderr : bool, default False
        Print to standard error instead of standard output.
    soft_wrap : bool, default True
        Let long lines run on (the terminal wraps them) instead of cutting them.
    **options
        Further :class:`rich.console.Console` options (``width``, ``file`` ...).

    Returns
    -------
    rich.console.Console
        No markup, no emoji, no highlighting.
    """
    return Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=soft_wrap,
        **options,
    )


def texts(*values: object) -> list[Text]:
    """Table cells that print verbatim: each value as ``rich.text.Text(str(value))``.

    Parameters
    ----------
    *values
        The cells' values (names, ids, numbers already formatted).

    Returns
    -------
    list of rich.text.Text
        One verbatim text per value, for ``Table.add_row(*texts(...))``.
    """
    return [Text(str(value)) for value in values]


def to_jsonable(value: Any) -> Any:
    """Dataclasses, data frames and numpy values as plain JSON values (NaN -> null)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_") and f.repr
        }
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return [to_jsonable(r) for r in frame.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any) -> Text:
    if isinstance(value, float | np.floating):
        return Text("—" if not math.isfinite(float(value)) else f"{float(value):.4g}")
    return Text(str(value))


def print_result(result: Any, console: Console, *, title: str, as_json: bool = False) -> None:
    """Print ``result`` (a dataclass): scalars in one table, each data frame in its own."""
    if as_json:
        console.print_json(json.dumps(to_jsonable(result), allow_nan=False))
        return
    scalars = Table(title=Text(title), show_header=False)
    frames: list[tuple[str, pd.DataFrame]] = []
    nested: list[tuple[str, Any]] = []
    for f in dataclasses.fields(result):
        if f.name.startswith("_") or not f.repr:
            continue
        value = getattr(result, f.name)
        if isinstance(value, pd.DataFrame):
            frames.append((f.name, value))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            nested.append((f.name, value))
        elif isinstance(value, dict | list) and len(str(value)) > 80:
            continue
        else:
            scalars.add_row(Text(f.name), _cell(value))
    console.print(scalars)
    for name, frame in frames:
        shown = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
        table = Table(title=Text(name))
        for col in shown.columns:
            table.add_column(Text(str(col)))
        for row in shown.itertuples(index=False):
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
    for name, value in nested:
        print_result(value, console, title=f"{title}: {name}")
