"""The row table every data-source layout is read into, and the CSV manifest reader.

A :class:`Table` holds the raw text cells of each row with where the row came
from, the roles of the columns (image, label, mask, split, case key, metadata)
and metadata already typed per column. :mod:`studyhub.cases.dataset` checks the
rows and reads their files.

Metadata typing is per column, never per cell, so one column has one type:
a column whose non-empty cells are all ``true``/``false`` (any case) is bool;
all canonical integers (no leading zeros, so ``007`` stays text) is int; all
decimal numbers (again no leading zeros) is float; anything else is str. Empty
cells are left out of a case's metadata.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from studyhub.cases.records import MetadataValue
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource

__all__ = [
    "KEY_COLUMN",
    "ROW_NOUN",
    "Columns",
    "Table",
    "read_manifest",
    "resolve_columns",
    "resolved",
    "suggest",
]

KEY_COLUMN = "case_id"
"""Manifest column that, when present, gives each case its key."""

ROW_NOUN: dict[str, str] = {"csv": "row", "dicom": "row", "folders": "file"}
"""What one listed case is called in messages, per table kind."""

_INT = re.compile(r"[+-]?(0|[1-9]\d*)\Z")
_FLOAT = re.compile(r"[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")

Kind = Literal["csv", "dicom", "folders"]
Row = tuple[int, str, dict[str, str], dict[str, MetadataValue]]


@dataclass
class Columns:
    """Which column plays which role (``None``: the source has no such column)."""

    image: str = "image"
    label: str = "label"
    mask: str | None = "mask"
    split: str | None = None
    key: str | None = None
    metadata: list[str] = field(default_factory=list)


@dataclass
class Table:
    """Rows of a data source before their files are checked.

    Attributes
    ----------
    kind : {"csv", "dicom", "folders"}
        The layout read.
    what : str
        The source as messages name it, e.g. ``manifest '/data/manifest.csv'``.
    base : Path
        Folder that relative paths in cells are relative to.
    path_hint : str
        How paths are written, for fixes ("relative to the manifest's folder").
    empty_fix : str
        What to do when the source lists no case.
    remove : str
        How to drop a case, for fixes ("remove the row").
    rows : list of tuple
        ``(row number, where, cells, typed metadata)`` per case.
    columns : Columns
        Column roles.
    row_problems : dict of int to list of str
        Problems found while parsing, by position in ``rows``.
    extra_problems : list of tuple of str
        ``(where, problem)`` not tied to a row (an unlisted file, a stray folder).
    """

    kind: Kind
    what: str
    base: Path
    path_hint: str
    empty_fix: str
    remove: str = "remove the row"
    header: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    columns: Columns = field(default_factory=Columns)
    row_problems: dict[int, list[str]] = field(default_factory=dict)
    extra_problems: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def for_folders(cls, root: Path) -> Table:
        """An empty table for a class-folder data source rooted at ``root``."""
        return cls(
            kind="folders",
            what=f"class-folder data set {str(root)!r}",
            base=root,
            path_hint="relative to the data folder",
            empty_fix="put the images in one sub-folder per label, named as in data.labels",
            remove="move the file out of the folder",
            header=["image", "label", "mask"],
        )

    def add_row(self, cells: dict[str, str], *, where: str) -> None:
        """Append a row without metadata; its number is its 1-based position."""
        self.rows.append((len(self.rows) + 1, where, cells, {}))


def read_manifest(path: Path, *, kind: Literal["csv", "dicom"]) -> Table:
    """Read a CSV manifest into a table of text cells (columns not yet assigned).

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, optionally with a byte-order mark).
    kind : {"csv", "dicom"}
        ``dicom`` for a DICOM folder's ``labels.csv``.

    Returns
    -------
    Table
        Rows numbered as a spreadsheet numbers them (header is row 1); blank
        lines are skipped but counted. Cells are stripped of surrounding spaces.

    Raises
    ------
    DataError
        If the file is missing, not UTF-8 text, not parseable CSV, empty, or has
        unnamed or repeated column names.
    """
    what = f"manifest {str(path)!r}" if kind == "csv" else f"DICOM labels file {str(path)!r}"
    table = Table(
        kind=kind,
        what=what,
        base=path.parent.resolve(),
        path_hint=(
            "relative to the manifest's folder" if kind == "csv" else "relative to the DICOM folder"
        ),
        empty_fix="add one row per case" if kind == "csv" else "add one row per DICOM file",
    )
    if not path.is_file():
        raise DataError(
            f"{what} does not exist; check data.path (it is relative to the protocol's folder)"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} is not UTF-8 text ({exc}); save it as CSV UTF-8") from exc
    except OSError as exc:
        raise DataError(f"cannot read {what} ({exc}); check its permissions") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        raise DataError(
            f"{what} is not valid CSV near line {reader.line_num} ({exc}); "
            "save it again as comma-separated values"
        ) from exc
    if not records or not any(cell.strip() for cell in records[0]):
        raise DataError(f"{what} is empty; write a header row and one row per case")
    header = [name.strip() for name in records[0]]
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if unnamed or repeated:
        raise DataError(
            f"{what} has "
            + (f"unnamed column(s) at position(s) {unnamed}" if unnamed else "")
            + (" and " if unnamed and repeated else "")
            + (f"repeated column name(s) {repeated}" if repeated else "")
            + "; give every column a unique name in the header row"
        )
    table.header = header
    for number, cells in enumerate(records[1:], start=2):
        values = [cell.strip() for cell in cells]
        if not any(values):
            continue
        order = len(table.rows)
        if len(values) > len(header) and any(values[len(header) :]):
            table.row_problems[order] = [
                f"it has {len(values)} cells but the header has {len(header)} columns; "
                "quote cells that contain commas, or remove the extra cells"
            ]
        padded = values[: len(header)] + [""] * (len(header) - len(values))
        table.rows.append((number, f"row {number}", dict(zip(header, padded, strict=True)), {}))
    return table


def resolved(base: Path, cell: str) -> Path | None:
    """The absolute path a manifest cell names (relative to ``base``), or None if invalid."""
    try:
        return (base / cell).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL character
        return None


def suggest(value: str, choices: list[str]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelt value, or an empty string."""
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _typed(values: list[str]) -> type[bool] | type[int] | type[float] | type[str]:
    present = [v for v in values if v]
    if not present:
        return str
    if all(v.lower() in ("true", "false") for v in present):
        return bool
    if all(_INT.match(v) for v in present):
        return int
    if all(_FLOAT.match(v) for v in present):
        return float
    return str


def _convert(value: str, kind: type[bool] | type[int] | type[float] | type[str]) -> MetadataValue:
    if kind is bool:
        return value.lower() == "true"
    return kind(value)


def resolve_columns(table: Table, data: DataSource, *, image_column: str) -> None:
    """Assign column roles from the protocol and type the metadata columns, in place.

    Parameters
    ----------
    table : Table
        From :func:`read_manifest`.
    data : DataSource
        The protocol's data section (label, mask and split column names).
    image_column : str
        The column of image paths (``file`` for a DICOM ``labels.csv``).

    Raises
    ------
    DataError
        If the image or label column is missing, or a mask or split column that
        the protocol renames is missing. Mask and split columns with their default
        names (``mask_path``, ``split``) may be absent: the cases then have no
        masks or splits.
    """
    header = table.header
    required = [("image", image_column), ("label", data.label_column)]
    missing = [name for _, name in required if name not in header]
    optional: dict[str, str | None] = {}
    for setting, name in (("mask_column", data.mask_column), ("split_column", data.split_column)):
        if name is not None and name not in header:
            # Only a renamed column must exist: comparing with the default (not
            # model_fields_set) gives the same answer for a protocol rebuilt from
            # its canonical JSON, where every default is spelled out.
            if name != DataSource.model_fields[setting].default:
                missing.append(name)
            name = None
        optional[setting] = name
    if missing:
        settings = "data.image_column, data.label_column, data.mask_column or data.split_column"
        if table.kind == "dicom":
            settings = "data.label_column, data.mask_column or data.split_column"
        raise DataError(
            f"{table.what} lacks required column(s) {missing}; its columns are {header}. "
            f"Add the column(s), or set {settings} to the column that holds them"
        )
    key = KEY_COLUMN if KEY_COLUMN in header else None
    roles = {image_column, data.label_column, key, *optional.values()}
    table.columns = Columns(
        image=image_column,
        label=data.label_column,
        mask=optional["mask_column"],
        split=optional["split_column"],
        key=key,
        metadata=[name for name in header if name not in roles],
    )
    kinds = {name: _typed([cells[name] for _, _, cells, _ in table.rows]) for name in header}
    for _, _, cells, meta in table.rows:
        for name in table.columns.metadata:
            if cells[name]:
                meta[name] = _convert(cells[name], kinds[name])
