"""Checks shared by every statistic: columns exist, values are finite, enough raters, ratings vary.

Each check raises :class:`studyhub.errors.DataError` with a message naming the
problem, the value found and the fix, so no statistic returns a silent NaN.
Infinite values (``inf``, ``-inf``) are refused in every column a statistic
reads; missing values only in the columns where the statistic does not allow
them (:func:`require_columns`, ``missing_ok``). Rows are named by the data
frame's index (``studyhub stats`` numbers them as a spreadsheet does: the first
row under the header is row 2).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

import numpy as np
import pandas as pd

from studyhub.errors import DataError

__all__ = [
    "as_python",
    "require_binary",
    "require_columns",
    "require_crossed",
    "require_finite",
    "require_levels",
    "require_numeric",
    "require_unique",
    "require_variation",
]


def as_python(value: object) -> object:
    """Return a numpy scalar as the plain Python value (``np.int64(3)`` -> ``3``),
    so that error messages and result tables show values as the user wrote them."""
    return value.item() if isinstance(value, np.generic) else value


def require_columns(
    data: pd.DataFrame, *, missing_ok: Collection[str] = (), **columns: str | None
) -> pd.DataFrame:
    """Return ``data`` restricted to the named columns, refusing missing columns and bad values.

    Keyword names are the roles (``targets=``, ``raters=`` ...), values the column
    names; ``None`` values are skipped. Every named column is checked by
    :func:`require_finite`: infinite values are always refused, missing values
    (NaN, None, an empty CSV cell) unless the role is in ``missing_ok`` (the
    statistic then drops those rows or refuses them with its own message).
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(data).__name__}; "
            "pass a long (tidy) data frame with one row per rating"
        )
    named = {role: col for role, col in columns.items() if col is not None}
    missing = [f"{role}={col!r}" for role, col in named.items() if col not in data.columns]
    if missing:
        raise DataError(
            f"column(s) {', '.join(missing)} not in the data frame "
            f"(columns are {list(map(str, data.columns))}); pass existing column names"
        )
    if data.empty:
        raise DataError("the data frame has no rows; pass at least one rating per rater and target")
    require_finite(data, missing_ok=missing_ok, **named)
    return data[list(dict.fromkeys(named.values()))]


_SHOWN_ROWS = 5  # rows named in a message before "and N more"


def _rows(labels: Sequence[object]) -> str:
    """``row 7`` / ``rows 3, 5 and 9 more``: the first few index labels and how many more."""
    shown = ", ".join(repr(as_python(label)) for label in labels[:_SHOWN_ROWS])
    more = f" and {len(labels) - _SHOWN_ROWS} more" if len(labels) > _SHOWN_ROWS else ""
    return f"row{'s' if len(labels) > 1 else ''} {shown}{more}"


def _infinite(values: pd.Series) -> np.ndarray:
    """Mask of the cells holding a float ``inf`` or ``-inf`` (text cells are never infinite)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
    return np.fromiter(
        (isinstance(v, float) and math.isinf(v) for v in values), dtype=bool, count=len(values)
    )


def _nonfinite_problem(
    values: pd.Series, *, role: str, column: str, missing_ok: bool
) -> str | None:
    """The message about infinite (always) or missing (unless allowed) cells, or None."""
    inf = np.flatnonzero(_infinite(values))
    if inf.size:
        n = int(inf.size)
        found = ", ".join(
            f"{float(values.iloc[i]):g} at row {as_python(values.index[i])!r}"
            for i in inf[:_SHOWN_ROWS]
        )
        more = f" and {n - _SHOWN_ROWS} more" if n > _SHOWN_ROWS else ""
        fix = "correct it or drop the row" if n == 1 else "correct them or drop those rows"
        what = "an infinite value" if n == 1 else f"{n} infinite values"
        return (
            f"{role} column {column!r} has {what} ({found}{more}); every value in {column!r} "
            f"must be a finite number: {fix}"
        )
    if missing_ok:
        return None
    absent = np.flatnonzero(values.isna().to_numpy())
    if absent.size:
        n = int(absent.size)
        what = "a missing value" if n == 1 else f"{n} missing values"
        fix = "fill it in or drop the row" if n == 1 else "fill them in or drop those rows"
        rows = _rows(list(values.index[absent]))
        return f"{role} column {column!r} has {what} ({rows}); every row needs its {role}: {fix}"
    return None


def require_finite(data: pd.DataFrame, *, missing_ok: Collection[str] = (), **columns: str) -> None:
    """Refuse ``inf``/``-inf`` in any named column, and missing values outside ``missing_ok``.

    Keyword names are the roles, values the column names; ``missing_ok`` names the
    roles whose missing values the statistic handles itself. One message lists
    every column with a problem, the first few rows of each (by index label) and
    how many there are, and the fix.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for role, col in columns.items():
        if col in seen:
            continue
        seen.add(col)
        problem = _nonfinite_problem(
            data[col], role=role, column=col, missing_ok=role in missing_ok
        )
        if problem:
            problems.append(problem)
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        raise DataError(
            f"{len(problems)} columns hold unusable values:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


def require_levels(data: pd.DataFrame, column: str, *, role: str, minimum: int = 2) -> list[object]:
    """Refuse a factor with fewer than ``minimum`` distinct levels; return the levels."""
    levels = pd.unique(data[column].dropna()).tolist()
    if len(levels) < minimum:
        raise DataError(
            f"{role} column {column!r} has {len(levels)} distinct value(s) "
            f"({levels[:5]}); this analysis needs at least {minimum}"
        )
    return levels


def require_numeric(data: pd.DataFrame, column: str, *, role: str) -> pd.Series:
    """Return ``data[column]`` as floats, refusing non-numeric and infinite values.

    Missing values stay NaN (the caller's :func:`require_columns` decided whether
    they are allowed); text such as ``"inf"`` that converts to an infinite number
    is refused like a numeric ``inf``.
    """
    values = pd.to_numeric(data[column], errors="coerce")
    bad = data[column][values.isna() & data[column].notna()]
    if len(bad):
        raise DataError(
            f"{role} column {column!r} has non-numeric value {bad.iloc[0]!r} "
            f"(row {as_python(bad.index[0])!r}); code the scale as numbers"
        )
    floats = values.astype(float)
    problem = _nonfinite_problem(floats, role=role, column=column, missing_ok=True)
    if problem:
        raise DataError(problem)
    return floats


def require_variation(values: Iterable[float], *, role: str, column: str) -> None:
    """Refuse constant ratings, for which agreement and tests are undefined."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0 or np.all(arr == arr[0]):
        shown = "no values" if arr.size == 0 else f"every value is {arr[0]:g}"
        raise DataError(
            f"{role} column {column!r} is constant ({shown}); the statistic is undefined "
            "for constant ratings; check that the right column was passed"
        )


def _plain(value: object) -> object:
    """A numpy scalar as the Python value, so messages read ``3``, not ``np.int64(3)``."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def require_binary(data: pd.DataFrame, column: str, *, role: str) -> pd.Series:
    """Return ``data[column]`` as integers 0/1, refusing missing or other values."""
    values = pd.to_numeric(data[column], errors="coerce")
    bad = data[column][values.isna() | ~values.isin([0, 1])]
    if len(bad):
        raise DataError(
            f"{role} column {column!r} must be 0 or 1 on every row but has "
            f"{_plain(bad.iloc[0])!r} (row {_plain(bad.index[0])!r}); code the reference "
            "standard as 1 = condition present, 0 = absent"
        )
    return values.astype(int)


def require_crossed(data: pd.DataFrame, **factors: str) -> None:
    """Refuse a design that is not fully crossed: one row per combination of levels.

    Keyword names are the roles, values the column names. The message names a
    duplicated or a missing combination and how many are missing.
    """
    cols = list(factors.values())
    shown = dict(zip(factors, cols, strict=True))

    def _name(key: tuple[object, ...]) -> str:
        return ", ".join(
            f"{role}={_plain(value)!r}" for role, value in zip(shown, key, strict=True)
        )

    dup = data.duplicated(cols, keep="first")
    if dup.any():
        key = tuple(data.loc[dup, cols].iloc[0])
        raise DataError(
            f"more than one row for {_name(key)}; keep one row per "
            f"{' x '.join(shown)} combination (drop repeated or superseded readings)"
        )
    levels = [pd.unique(data[c]) for c in cols]
    if len(data) == np.prod([len(lv) for lv in levels]):
        return  # no duplicates and every combination counted once
    full = pd.MultiIndex.from_product(levels)
    present = pd.MultiIndex.from_frame(data[cols])
    missing = full.difference(present)
    if len(missing):
        raise DataError(
            f"no row for {_name(tuple(missing[0]))} ({len(missing)} of {len(full)} "
            f"{' x '.join(shown)} combinations missing); this analysis needs a fully "
            "crossed design: add the missing readings or drop the incomplete cases or readers"
        )


def require_unique(data: pd.DataFrame, keys: Sequence[str], *, what: str, fix: str) -> None:
    """Refuse rows that repeat a combination of ``keys`` (e.g. a rater rating a unit twice).

    ``what`` names the repeated combinations in the message (``"(case, rater)
    pairs"``) and ``fix`` says what to do about them.
    """
    dup = data.duplicated(subset=list(keys), keep=False)
    if dup.any():
        first = data.loc[dup, list(keys)].iloc[0]
        shown = ", ".join(f"{k}={as_python(first[k])!r}" for k in keys)
        n_dup = int(data.loc[dup, list(keys)].drop_duplicates().shape[0])
        raise DataError(f"{n_dup} {what} appear more than once (e.g. {shown}); {fix}")
