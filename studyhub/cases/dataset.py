"""Reading a protocol's data source into validated, checksummed case records.

:func:`read_cases` reads every kind of :class:`~studyhub.protocol.schema.DataSource`
into the same table of rows, checks every row (every image is read, hashed with
SHA-256 and decoded; every mask is decoded and compared with its image's size)
and either returns one :class:`~studyhub.cases.records.CaseRecord` per row or
refuses the whole source with one :class:`~studyhub.errors.DataError` that lists
every bad row. The layouts each kind reads are described in
:mod:`studyhub.cases.layouts`; the pixel conventions in :mod:`studyhub.cases.records`.

Checks per row: the image cell is not empty, the file exists and decodes (its
SHA-256 is the hash of the file's bytes); the label is one of ``data.labels``;
the case key (``case_id``, else the image path) is unique and at most 200
characters; with a ``case_id`` column, no image is listed twice; a mask, when
given, exists, is a single-channel integer image and has its image's height and
width; the split is at most 63 characters. Files are read on a thread pool.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import UnidentifiedImageError

from studyhub.cases.dicom import DICOM_METADATA_KEYS, is_dicom, read_dicom
from studyhub.cases.layouts import source_table
from studyhub.cases.manifest import ROW_NOUN, Table, resolved, suggest
from studyhub.cases.records import CaseRecord, MetadataValue, open_pil, pil_mask, pil_shape
from studyhub.errors import DataError, InputError
from studyhub.protocol.schema import DataSource

__all__ = ["read_cases"]

_MAX_KEY = 200  # store column case.case_key
_MAX_SPLIT = 63  # store column case.split


@dataclass
class _Pending:
    """One row after the cheap checks, before its files are read."""

    order: int
    row: int
    where: str
    key: str
    source: str
    path: Path
    label: str
    mask_source: str | None
    mask_path: Path | None
    split: str | None
    metadata: dict[str, MetadataValue]
    problems: list[str] = field(default_factory=list)
    sha256: str = ""
    shape: tuple[int, ...] = ()
    file_format: Literal["image", "dicom"] = "image"


def _path_key(source: str) -> str:
    """The case key of a manifest without ``case_id``: the image path, normalised."""
    return os.path.normpath(source).replace("\\", "/") if source else ""


def _pending_rows(table: Table, labels: list[str]) -> list[_Pending]:
    """Cheap per-row checks: empty cells, labels, keys, duplicates, lengths."""
    cols = table.columns
    pending: list[_Pending] = []
    seen_keys: dict[str, str] = {}
    seen_paths: dict[Path, str] = {}
    for order, (row, where, cells, converted) in enumerate(table.rows):
        problems = list(table.row_problems.get(order, []))
        source = cells.get(cols.image, "")
        label = cells.get(cols.label, "")
        if not source:
            problems.append(
                f"{cols.image} is empty; give the image file {table.path_hint} or {table.remove}"
            )
        if not label:
            problems.append(f"{cols.label} is empty; give one of {labels}")
        elif label not in labels:
            problems.append(
                f"{cols.label} {label!r} is not in data.labels {labels}{suggest(label, labels)}; "
                "correct the label or add it to data.labels"
            )
        key = cells.get(cols.key, "") if cols.key else _path_key(source)
        if cols.key and not key:
            problems.append(
                f"{cols.key} is empty; give every row a unique {cols.key} or drop the column"
            )
        elif len(key) > _MAX_KEY:
            problems.append(
                f"case key {key[:40]!r}… is {len(key)} characters long; keep it under "
                f"{_MAX_KEY + 1} (add a shorter case_id column)"
            )
        elif key and key in seen_keys:
            name = cols.key or cols.image
            problems.append(
                f"{name} {key!r} repeats {seen_keys[key]}'s; every case needs a unique "
                f"{name}: remove the duplicate row or give it its own {name}"
            )
        elif key:
            seen_keys[key] = where
        path = resolved(table.base, source) if source else table.base
        if path is None:
            problems.append(
                f"{cols.image} {source!r} is not a valid path; correct it {table.path_hint}"
            )
            path = table.base
            source = ""  # nothing to read
        elif source and path in seen_paths and cols.key:
            problems.append(
                f"{cols.image} {source!r} is the same file as {seen_paths[path]}'s; "
                "list each image once"
            )
        elif source:
            seen_paths.setdefault(path, where)
        mask_source = (cells.get(cols.mask, "") if cols.mask else "") or None
        mask_path = resolved(table.base, mask_source) if mask_source else None
        if mask_source and mask_path is None:
            problems.append(
                f"{cols.mask} {mask_source!r} is not a valid path; correct it {table.path_hint}"
            )
            mask_source = None
        split = (cells.get(cols.split, "") if cols.split else "") or None
        if split is not None and len(split) > _MAX_SPLIT:
            problems.append(
                f"{cols.split} {split[:40]!r}… is longer than {_MAX_SPLIT} characters; "
                "use a short split name such as test"
            )
        pending.append(
            _Pending(
                order=order,
                row=row,
                where=where,
                key=key,
                source=source,
                path=path,
                label=label,
                mask_source=mask_source,
                mask_path=mask_path,
                split=split,
                metadata=converted,
                problems=problems,
            )
        )
    return pending


def _missing_file(
    column: str, source: str, path: Path, hint: str, remove: str, exc: OSError
) -> str:
    if not path.exists():
        return (
            f"{column} {source!r} does not exist (looked for {str(path)!r}); correct the path "
            f"({hint}) or {remove}"
        )
    if path.is_dir():
        return f"{column} {source!r} is a folder, not a file; give the file's path {hint}"
    return f"{column} {source!r} cannot be read ({exc}); check the file's permissions"


def _why(exc: Exception) -> str:
    """A decoder failure in words (Pillow's own message names a BytesIO object)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a format Pillow or pydicom can decode"
    return str(exc) or type(exc).__name__


def _inspect(item: _Pending, table: Table) -> None:
    """Read, hash and decode one row's image and mask; record problems on the row."""
    cols, hint = table.columns, table.path_hint
    image_hw: tuple[int, ...] | None = None
    if item.source:
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            item.problems.append(
                _missing_file(cols.image, item.source, item.path, hint, table.remove, exc)
            )
        else:
            item.sha256 = hashlib.sha256(data).hexdigest()
            try:
                if is_dicom(item.path, data[:132]):
                    decoded = read_dicom(data)
                    item.file_format = "dicom"
                    item.shape = tuple(decoded.values.shape)
                    clash = sorted(set(DICOM_METADATA_KEYS) & set(cols.metadata))
                    if clash:
                        item.problems.append(
                            f"column(s) {clash} clash with values read from the DICOM header; "
                            "rename those columns"
                        )
                    item.metadata = {**item.metadata, **decoded.metadata}
                else:
                    with open_pil(data) as img:
                        item.shape = pil_shape(img)
                image_hw = item.shape[:2]
            except Exception as exc:  # any decoder failure means an unreadable image
                item.problems.append(
                    f"{cols.image} {item.source!r} is not a readable image ({_why(exc)}); "
                    f"replace it with a PNG, JPEG, TIFF or DICOM file, or {table.remove}"
                )
    if item.mask_source is None or item.mask_path is None:
        return
    mask_col = cols.mask or "mask"
    try:
        mask_bytes = item.mask_path.read_bytes()
    except OSError as exc:
        item.problems.append(
            _missing_file(
                mask_col, item.mask_source, item.mask_path, hint, "leave the cell empty", exc
            )
        )
        return
    try:
        with open_pil(mask_bytes) as img:
            mask_hw = pil_mask(img).shape
    except Exception as exc:  # any decoder failure means an unreadable mask
        item.problems.append(
            f"{mask_col} {item.mask_source!r} is not a usable mask ({_why(exc)}); "
            "give an integer label image (0 = background) or leave the cell empty"
        )
        return
    if image_hw is not None and tuple(mask_hw) != tuple(image_hw):
        item.problems.append(
            f"{mask_col} {item.mask_source!r} is {mask_hw[0]}x{mask_hw[1]} (HxW) but its image "
            f"is {image_hw[0]}x{image_hw[1]}; give this image's mask, at the image's size"
        )


def _refuse(table: Table, bad: list[tuple[str, list[str]]], max_errors: int) -> DataError:
    noun = ROW_NOUN[table.kind]
    lines = [
        f"  {where}: {problem}" for where, problems in bad[:max_errors] for problem in problems
    ]
    if len(bad) > max_errors:
        lines.append(f"  ... and {len(bad) - max_errors} more bad {noun}s")
    plural = noun if len(bad) == 1 else f"{noun}s"
    return DataError(
        f"{table.what} has {len(bad)} bad {plural}, so none of its cases were read; "
        "fix each one and run again:\n" + "\n".join(lines)
    )


def _check_all(
    table: Table, labels: list[str], max_errors: int, workers: int | None
) -> list[_Pending]:
    pending = _pending_rows(table, labels)
    n_workers = workers or min(16, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
        list(pool.map(lambda item: _inspect(item, table), pending))
    bad = [(p.where, p.problems) for p in pending if p.problems]
    bad += [(where, [problem]) for where, problem in table.extra_problems]
    if bad:
        raise _refuse(table, bad, max_errors)
    if not pending:
        raise DataError(f"{table.what} lists no cases; {table.empty_fix}")
    return pending


def read_cases(
    data: DataSource,
    base_dir: Path,
    *,
    cache_dir: Path | None = None,
    max_errors: int = 20,
    demo_seed: int = 0,
    workers: int | None = None,
) -> list[CaseRecord]:
    """Read, check and checksum every case of a data source.

    Parameters
    ----------
    data : DataSource
        The protocol's ``data`` section.
    base_dir : Path
        Folder that a relative ``data.path`` is relative to (the protocol's folder).
    cache_dir : Path, optional
        Kind ``demo`` only: folder the synthetic data set is written into once and
        reused from (a sub-folder per generator version, seed and size). Default
        ``$STUDYHUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/studyhub``, else
        ``~/.cache/studyhub``.
    max_errors : int, default 20
        How many bad rows the error message lists before "... and N more".
    demo_seed : int, default 0
        Kind ``demo`` only: generator seed of the synthetic data. 0 is the data the
        shipped demo model was trained on; the protocol's ``seed`` drives sampling,
        not the data.
    workers : int, optional
        Threads that read, hash and decode files; default ``min(16, cpus + 4)``.

    Returns
    -------
    list of CaseRecord
        One per row, in manifest (or sorted file) order.

    Raises
    ------
    DataError
        If the source cannot be read, lacks a required column, lists no case, or
        has any bad row: the one message lists every bad row (up to
        ``max_errors``) with its row number, the value, the problem and the fix,
        and nothing is returned.
    InputError
        If ``max_errors`` or ``workers`` is not a positive integer.
    """
    if not isinstance(data, DataSource):
        raise InputError(
            f"data is a {type(data).__name__}; pass the protocol's data section (a DataSource)"
        )
    for name, value in (("max_errors", max_errors), ("workers", workers or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} is {value!r}; pass a positive integer")
    if isinstance(demo_seed, bool) or not isinstance(demo_seed, int) or demo_seed < 0:
        raise InputError(f"demo_seed is {demo_seed!r}; pass a non-negative integer such as 0")
    table = source_table(data, Path(base_dir), cache_dir, demo_seed)
    pending = _check_all(table, list(data.labels), max_errors, workers)
    return [
        CaseRecord(
            case_key=p.key,
            source=p.source,
            path=p.path,
            image_sha256=p.sha256,
            label=p.label,
            mask_path=p.mask_path,
            split=p.split,
            metadata=p.metadata,
            row=p.row,
            mask_source=p.mask_source,
            file_format=p.file_format,
            shape=p.shape,
        )
        for p in pending
    ]
