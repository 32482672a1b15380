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
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from studyhub.cases.records import MetadataValue
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource

__all__ = [
    "KEY_COLUMN",
    "ROW_NOUN",
    "Columns",
    "PathResolver",
    "Progress",
    "Table",
    "read_manifest",
    "resolve_columns",
    "resolved",
    "shown_columns",
    "suggest",
]

KEY_COLUMN = "case_id"
"""Manifest column that, when present, gives each case its key."""

ROW_NOUN: dict[str, str] = {"csv": "row", "dicom": "row", "folders": "file"}
"""What one listed case is called in messages, per table kind."""

_NAME = re.compile(r"[\w .-]{1,100}\Z")  # a plausible lone column name
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
    root_name : str
        The data root in words ("the manifest's folder"): paths must stay in it
        unless the protocol sets ``data.allow_outside_root``.
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
    root_name: str = "the manifest's folder"
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
            root_name="the data folder",
            remove="move the file out of the folder",
            header=["image", "label", "mask"],
        )

    def add_row(self, cells: dict[str, str], *, where: str) -> None:
        """Append a row without metadata; its number is its 1-based position."""
        self.rows.append((len(self.rows) + 1, where, cells, {}))


def read_manifest(
    path: Path, *, kind: Literal["csv", "dicom"], progress: Progress | None = None
) -> Table:
    """Read a CSV manifest into a table of text cells (columns not yet assigned).

    The file is read as a stream (never whole into memory) with the standard
    CSV dialect; ``progress`` hears how many bytes are read.

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, optionally with a byte-order mark).
    kind : {"csv", "dicom"}
        ``dicom`` for a DICOM folder's ``labels.csv``.
    progress : callable, optional
        Called as ``progress("reading manifest", bytes_read, file_size)`` while
        the file is read.

    Returns
    -------
    Table
        Rows numbered as a spreadsheet numbers them (header is row 1); blank
        lines are skipped but counted. Cells are stripped of surrounding spaces.

    Raises
    ------
    DataError
        If the file is missing, not a CSV manifest (binary, not UTF-8 text, no
        comma-separated header), not parseable CSV, empty, or has unnamed or
        repeated column names. No message quotes the file's content beyond its
        column names, shortened.
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
        root_name="the manifest's folder" if kind == "csv" else "the DICOM folder",
    )
    if not path.is_file():
        raise DataError(
            f"{what} does not exist; check data.path (it is relative to the protocol's folder)"
        )
    try:
        with path.open("rb") as raw:
            if b"\0" in raw.read(_SNIFF_BYTES):
                raise DataError(
                    f"{what} is not a CSV manifest: it holds binary data (NUL bytes), not text; "
                    "point data.path at the CSV file (UTF-8 text with a header row)"
                )
            raw.seek(0)
            counted = io.BufferedReader(_Counted(raw, progress))
            with io.TextIOWrapper(counted, encoding="utf-8-sig", newline="") as text:
                _read_records(table, csv.reader(text))
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise DataError(
            f"{what} is not UTF-8 text, so not a CSV manifest (byte 0x{bad} cannot be decoded: "
            f"{exc.reason}); save it as CSV UTF-8"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read {what} ({exc.strerror}); check its permissions") from None
    return table


_SNIFF_BYTES = 8192  # a NUL byte this early means a binary file, not a manifest
_SHOWN_NAMES = 10  # column names a message lists
_NAME_CHARS = 40  # characters of each listed name


def shown_columns(names: list[str]) -> str:
    """Column names for a message: at most 10, each cut to 40 characters.

    A file that is not a manifest has its first line as "column names", so a
    message never quotes more of a file than this.
    """
    cut = [n if len(n) <= _NAME_CHARS else n[: _NAME_CHARS - 1] + "…" for n in names]
    more = f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else ""
    return f"{cut[:_SHOWN_NAMES]}{more}"


Progress = Callable[[str, int, int], None]
"""A progress callback: ``progress(stage, done, total)``."""


class _Counted(io.RawIOBase):
    """A binary file that reports the bytes read to a progress callback (about every MiB)."""

    def __init__(self, raw: io.BufferedReader, progress: Progress | None) -> None:
        super().__init__()
        self._raw = raw
        self._progress = progress
        self._total = os.fstat(raw.fileno()).st_size
        self._done = 0
        self._reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer) or 0
        self._done += n
        if self._progress is not None and (n == 0 or self._done - self._reported >= 1 << 20):
            self._reported = self._done
            self._progress("reading manifest", self._done, max(self._total, self._done))
        return n


def _read_records(table: Table, reader: Iterator[list[str]]) -> None:
    """Fill ``table`` from a CSV reader: header checks, then one row per non-blank record."""
    what = table.what
    try:
        first = next(reader, None)
        if first is None or not any(cell.strip() for cell in first):
            raise DataError(f"{what} is empty; write a header row and one row per case")
        header = [name.strip() for name in first]
        if len(header) < 2 and not _NAME.match(header[0]):
            raise DataError(
                f"{what} is not a CSV manifest: its first line is not a header of "
                "comma-separated column names (a manifest names at least its image and label "
                "columns, e.g. image_path,label); point data.path at the CSV manifest"
            )
        unnamed = [i + 1 for i, name in enumerate(header) if not name]
        repeated = sorted({name for name in header if name and header.count(name) > 1})
        if unnamed or repeated:
            raise DataError(
                f"{what} has "
                + (f"unnamed column(s) at position(s) {unnamed}" if unnamed else "")
                + (" and " if unnamed and repeated else "")
                + (f"repeated column name(s) {shown_columns(repeated)}" if repeated else "")
                + "; give every column a unique name in the header row"
            )
        table.header = header
        width = len(header)
        for number, cells in enumerate(reader, start=2):
            values = [cell.strip() for cell in cells]
            if not any(values):
                continue
            if len(values) > width and any(values[width:]):
                table.row_problems[len(table.rows)] = [
                    f"it has {len(values)} cells but the header has {width} columns; "
                    "quote cells that contain commas, or remove the extra cells"
                ]
            padded = values[:width] + [""] * (width - len(values))
            table.rows.append((number, f"row {number}", dict(zip(header, padded, strict=True)), {}))
    except csv.Error as exc:
        line = getattr(reader, "line_num", "?")
        raise DataError(
            f"{what} is not valid CSV near line {line} ({exc}); "
            "save it again as comma-separated values"
        ) from None


class PathResolver:
    """Absolute, symlink-free paths of the cells of a table, and whether they stay in its root.

    Equivalent to ``(base / cell).resolve()``, but each folder is resolved once
    and each file costs one ``lstat`` (to follow it when it is a link), so that
    a manifest of a million rows resolves in seconds.

    Parameters
    ----------
    base : Path
        Folder that relative cells are relative to.
    root : Path, optional
        The data root paths must stay in (default: ``base``).
    """

    def __init__(self, base: Path, root: Path | None = None) -> None:
        self._base = str(base)
        self._folders: dict[str, str] = {}
        self.root = Path(os.path.realpath(root if root is not None else base))
        text = str(self.root)
        self._prefix = text if text.endswith(os.sep) else text + os.sep

    def __call__(self, cell: str) -> Path | None:
        """The absolute path ``cell`` names, links followed, or None if it is not a valid path."""
        text = self.text(cell)
        return None if text is None else Path(text)

    def text(self, cell: str) -> str | None:
        """:meth:`__call__` as a string (cheaper: no ``Path`` object is built)."""
        if "\0" in cell:
            return None
        full = os.path.join(self._base, cell)
        head, name = os.path.split(full)
        try:
            if name in ("", ".", ".."):
                return os.path.realpath(full)
            folder = self._folders.get(head)
            if folder is None:
                folder = self._folders[head] = os.path.realpath(head)
            candidate = os.path.join(folder, name)
            return os.path.realpath(candidate) if os.path.islink(candidate) else candidate
        except (OSError, ValueError):
            return None

    def inside(self, path: Path | str) -> bool:
        """Whether a resolved ``path`` lies in the data root."""
        text = str(path)
        return text == str(self.root) or text.startswith(self._prefix)


def resolved(base: Path, cell: str) -> Path | None:
    """The absolute path a manifest cell names (relative to ``base``), or None if invalid."""
    return PathResolver(base)(cell)


def suggest(value: str, choices: list[str]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelt value, or an empty string."""
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _typed(values: list[str]) -> type[bool] | type[int] | type[float] | type[str]:
    present = set(filter(None, values))  # each distinct value is checked once
    if not present:
        return str
    if all(v.lower() in ("true", "false") for v in present):
        return bool
    if all(map(_INT.match, present)):
        return int
    if all(map(_FLOAT.match, present)):
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
        expected = {image_column, data.label_column, data.mask_column, data.split_column}
        hint = (
            ""
            if expected & set(header)
            else " (none of them is a column a manifest needs: is this file the CSV manifest?)"
        )
        raise DataError(
            f"{table.what} lacks required column(s) {missing}; its columns are "
            f"{shown_columns(header)}{hint}. Add the column(s), or set {settings} to the column "
            "that holds them"
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
    for name in table.columns.metadata:
        column = [cells[name] for _, _, cells, _ in table.rows]
        kind = _typed(column)
        for (_, _, _, meta), value in zip(table.rows, column, strict=True):
            if value:
                meta[name] = _convert(value, kind)
