"""Read and write the input format of FDA's iMRMC program (``.imrmc`` files).

The format, as read by iMRMC (DIDSR/iMRMC, Java application and R package) and by
RJafroc's ``DfReadDataFile(format = "iMRMC")``:

- a free-text header; studyhub writes a description line and the counts
  ``NR: <readers>``, ``N0: <non-diseased cases>``, ``N1: <diseased cases>``,
  ``NM: <modalities>`` (RJafroc requires these four lines, iMRMC ignores them);
- a line ``BEGIN DATA:``;
- one comma-separated row per observation, ``readerID,caseID,modalityID,score``,
  spaces around a field ignored. Truth rows have readerID ``-1`` and score 0
  (signal absent) or 1 (signal present); their modalityID is not used (studyhub
  writes ``0``). Identifiers may be numbers or text without commas.
"""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path

import pandas as pd

from studyhub.errors import DataError, InputError
from studyhub.stats._data import (
    require_binary,
    require_columns,
    require_numeric,
)

__all__ = ["read_imrmc", "write_imrmc"]

_TRUTH_READER = "-1"
_COUNT = re.compile(r"^(NR|N0|N1|NM)\s*:\s*(\S+)\s*$")


def _ids(values: pd.Series, role: str, column: str) -> pd.Series:
    text = values.astype(str).str.strip()
    bad = text[text.str.contains(r"[,\n\r]") | (text == "")]
    if len(bad):
        raise DataError(
            f"{role} column {column!r} has identifier {bad.iloc[0]!r}, which the iMRMC "
            "format cannot hold (empty or containing a comma or line break); rename it"
        )
    return text


def write_imrmc(
    data: pd.DataFrame,
    path: str | PathLike[str],
    *,
    reader: str,
    modality: str,
    case: str,
    truth: str,
    rating: str,
    description: str = "studyhub MRMC export",
) -> Path:
    """Write long reader-study data as an iMRMC input file.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per reading, with the case's truth (0/1) on every row.
    path : str or path-like
        File to write (conventionally ``*.imrmc``).
    reader, modality, case, truth, rating : str
        Column names.
    description : str
        First header line.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    studyhub.errors.DataError
        Missing columns or values, infinite ratings, truth not 0/1 or not constant
        within a case, a reader named ``-1`` (reserved for truth rows) or an
        identifier with a comma.
    studyhub.errors.InputError
        If the file cannot be written (its folder is missing or read-only); no
        partial file is left behind.
    """
    frame = require_columns(
        data, reader=reader, modality=modality, case=case, truth=truth, rating=rating
    )
    scores = require_numeric(frame, rating, role="rating")
    status = require_binary(frame, truth, role="truth")
    readers = _ids(frame[reader], "reader", reader)
    if (readers == _TRUTH_READER).any():
        raise DataError(
            f"reader column {reader!r} has reader '-1', which iMRMC reserves for truth "
            "rows; rename that reader"
        )
    cases = _ids(frame[case], "case", case)
    truth_by_case = status.groupby(cases, sort=False).agg(["min", "max"])
    mixed = truth_by_case.index[truth_by_case["min"] != truth_by_case["max"]]
    if len(mixed):
        raise DataError(
            f"truth differs between rows of case {mixed[0]!r}; give each case one truth value"
        )
    modalities = _ids(frame[modality], "modality", modality)
    counts = truth_by_case["min"].value_counts()
    lines = [
        description.replace("\n", " "),
        "",
        f"NR: {readers.nunique()}",
        f"N0: {int(counts.get(0, 0))}",
        f"N1: {int(counts.get(1, 0))}",
        f"NM: {modalities.nunique()}",
        "",
        "BEGIN DATA:",
    ]
    lines += [f"{_TRUTH_READER},{c},0,{v}" for c, v in truth_by_case["min"].items()]
    lines += [
        f"{r},{c},{m},{s!r}"
        for r, c, m, s in zip(readers, cases, modalities, scores.tolist(), strict=True)
    ]
    out = Path(path)
    text = "\n".join(lines) + "\n"
    partial = out.with_name(f".{out.name}.partial")
    try:  # written whole or not at all
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(
            f"cannot write the iMRMC file {str(out)!r} ({exc.strerror}); give a path in an "
            "existing folder you can write to"
        ) from None
    return out


def _as_ids(values: pd.Series) -> pd.Series:
    """Integers when every identifier is an integer, else the text."""
    if values.str.fullmatch(r"-?\d+").all():
        return values.astype(int)
    return values


def read_imrmc(path: str | PathLike[str]) -> pd.DataFrame:
    """Read an iMRMC input file into long data.

    Returns
    -------
    pandas.DataFrame
        Columns ``reader``, ``modality``, ``case``, ``truth`` (0/1), ``rating``
        (float), one row per reading, in file order. Identifier columns are
        integers when every identifier in them is, else strings. The header's
        ``NR``/``N0``/``N1``/``NM`` counts, when present, are checked against the
        data and kept in ``DataFrame.attrs["imrmc_header"]`` with the header text.

    Raises
    ------
    studyhub.errors.DataError
        No ``BEGIN DATA:`` line, a row without four fields, a non-numeric score, a
        truth that is not 0/1 or given twice, a reading of a case without truth, or
        header counts that disagree with the data.
    """
    source = Path(path)
    lines = source.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().upper() == "BEGIN DATA:"]
    if not starts:
        raise DataError(
            f"{source} has no 'BEGIN DATA:' line; an iMRMC file is a header, that line, "
            "then rows readerID,caseID,modalityID,score"
        )
    header = lines[: starts[0]]
    rows = []
    for number, line in enumerate(lines[starts[0] + 1 :], start=starts[0] + 2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            raise DataError(
                f"{source} line {number} has {len(fields)} field(s) ({line.strip()!r}); "
                "each data row is readerID,caseID,modalityID,score"
            )
        rows.append(fields)
    table = pd.DataFrame(rows, columns=["reader", "case", "modality", "score"])
    scores = pd.to_numeric(table["score"], errors="coerce")
    if scores.isna().any():
        row = int(scores.isna().to_numpy().argmax())
        raise DataError(
            f"{source} has non-numeric score {table['score'].iloc[row]!r} in data row "
            f"{row + 1}; scores must be numbers"
        )
    is_truth = table["reader"] == _TRUTH_READER
    truth_rows = table[is_truth].assign(truth=scores[is_truth])
    if not truth_rows["truth"].isin([0, 1]).all():
        bad = truth_rows.loc[~truth_rows["truth"].isin([0, 1]), "case"].iloc[0]
        raise DataError(f"{source}: truth of case {bad!r} is not 0 or 1; fix the truth row")
    if truth_rows["case"].duplicated().any():
        bad = truth_rows.loc[truth_rows["case"].duplicated(), "case"].iloc[0]
        raise DataError(f"{source}: case {bad!r} has more than one truth row; keep one")
    truth_of = truth_rows.set_index("case")["truth"].astype(int)
    reads = table[~is_truth].assign(rating=scores[~is_truth].astype(float))
    unknown = reads.loc[~reads["case"].isin(truth_of.index), "case"]
    if len(unknown):
        raise DataError(
            f"{source}: case {unknown.iloc[0]!r} is read but has no truth row "
            f"('-1,{unknown.iloc[0]},0,<0 or 1>'); add it"
        )
    reads = reads.assign(truth=reads["case"].map(truth_of))
    counts = {"NR": reads["reader"].nunique(), "NM": reads["modality"].nunique()}
    counts |= {"N0": int((truth_of == 0).sum()), "N1": int((truth_of == 1).sum())}
    declared: dict[str, str] = {}
    for line in header:
        match = _COUNT.match(line.strip())
        if match:
            declared[match.group(1)] = match.group(2)
    for key, value in declared.items():
        if value != str(counts[key]):
            raise DataError(
                f"{source}: header says {key}: {value} but the data have {counts[key]}; "
                "correct the header or the data"
            )
    result = pd.DataFrame(
        {
            "reader": _as_ids(reads["reader"]),
            "modality": _as_ids(reads["modality"]),
            "case": _as_ids(reads["case"]),
            "truth": reads["truth"].astype(int),
            "rating": reads["rating"],
        }
    ).reset_index(drop=True)
    result.attrs["imrmc_header"] = {"text": "\n".join(header), **declared}
    return result
