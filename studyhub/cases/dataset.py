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
width; the split is at most 63 characters; the image and mask paths (links
followed) stay inside the data root (the manifest's folder, or the folder of kind
``folders``/``dicom``) unless the protocol sets ``data.allow_outside_root``, and
no file outside it is opened. Files are read on a thread pool in chunks of rows,
each file hashed as it is read and identical files decoded once
(:mod:`studyhub.cases.files`). A progress callback hears how far reading
and checking have come.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from studyhub.cases.files import FileChecker, PendingRow
from studyhub.cases.layouts import source_table
from studyhub.cases.manifest import ROW_NOUN, PathResolver, Progress, Table, suggest
from studyhub.cases.records import CaseRecord
from studyhub.errors import DataError, InputError
from studyhub.protocol.schema import DataSource

__all__ = ["read_cases"]

_MAX_KEY = 200  # store column case.case_key
_MAX_SPLIT = 63  # store column case.split


def _path_key(source: str) -> str:
    """The case key of a manifest without ``case_id``: the image path, normalised."""
    return os.path.normpath(source).replace("\\", "/") if source else ""


def _outside(column: str, source: str, path: str, table: Table, root: Path) -> str:
    target = "" if path == source else f" (it resolves to {path!r})"
    return (
        f"{column} {source!r} lies outside the data root {str(root)!r}{target}; move the file "
        f"into {table.root_name}, or set data.allow_outside_root: true in the protocol if the "
        "data may lie elsewhere"
    )


def _pending_rows(table: Table, labels: list[str], *, allow_outside: bool) -> list[PendingRow]:
    """Cheap per-row checks: empty cells, labels, keys, duplicates, lengths, the data root."""
    cols = table.columns
    resolve = PathResolver(table.base)
    label_set = set(labels)
    pending: list[PendingRow] = []
    seen_keys: dict[str, str] = {}
    seen_paths: dict[str, str] = {}
    base = str(table.base)
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
        elif label not in label_set:
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
        path = resolve.text(source) if source else base
        if path is None:
            problems.append(
                f"{cols.image} {source!r} is not a valid path; correct it {table.path_hint}"
            )
            path = base
            source = ""  # nothing to read
        elif source and not allow_outside and not resolve.inside(path):
            problems.append(_outside(cols.image, source, path, table, resolve.root))
            source = ""  # never opened
        elif source and path in seen_paths and cols.key:
            problems.append(
                f"{cols.image} {source!r} is the same file as {seen_paths[path]}'s; "
                "list each image once"
            )
        elif source:
            seen_paths.setdefault(path, where)
        mask_source = (cells.get(cols.mask, "") if cols.mask else "") or None
        mask_path = resolve.text(mask_source) if mask_source else None
        if mask_source and mask_path is None:
            problems.append(
                f"{cols.mask} {mask_source!r} is not a valid path; correct it {table.path_hint}"
            )
            mask_source = None
        elif mask_source and mask_path and not allow_outside and not resolve.inside(mask_path):
            problems.append(
                _outside(cols.mask or "mask", mask_source, mask_path, table, resolve.root)
            )
            mask_source = None  # never opened
        split = (cells.get(cols.split, "") if cols.split else "") or None
        if split is not None and len(split) > _MAX_SPLIT:
            problems.append(
                f"{cols.split} {split[:40]!r}… is longer than {_MAX_SPLIT} characters; "
                "use a short split name such as test"
            )
        pending.append(
            PendingRow(
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
    table: Table,
    labels: list[str],
    max_errors: int,
    workers: int | None,
    *,
    allow_outside: bool,
    progress: Progress | None,
) -> list[PendingRow]:
    pending = _pending_rows(table, labels, allow_outside=allow_outside)
    n_workers = max(1, workers or min(16, (os.cpu_count() or 1) + 4))
    # chunks of rows, not one task per row: a task costs more than a small file
    size = max(1, min(256, len(pending) // (4 * n_workers)))
    chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
    inspector = FileChecker(table)
    done = 0
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        futures = [pool.submit(inspector.rows, chunk) for chunk in chunks]
        for future in as_completed(futures):
            done += future.result()
            if progress is not None:
                progress("checking image files", done, len(pending))
    bad = [(p.where, p.problems) for p in pending if p.problems]
    bad += [(where, [problem]) for where, problem in table.extra_problems]
    if bad:
        raise _refuse(table, bad, max_errors)
    if not pending:
        raise DataError(f"{table.what} lists no cases; {table.empty_fix}")
    return pending


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the rows of a data source are built.

    A big manifest makes millions of small objects and no reference cycles; the
    collector would walk them again and again, holding every reader thread
    (measured: 12.3 s instead of 9.6 s of CPU for 300,000 rows). It is switched
    back on when reading ends, also after an error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_cases(
    data: DataSource,
    base_dir: Path,
    *,
    cache_dir: Path | None = None,
    max_errors: int = 20,
    demo_seed: int = 0,
    workers: int | None = None,
    progress: Progress | None = None,
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
    progress : callable, optional
        Called as ``progress(stage, done, total)`` while the source is read:
        ``"reading manifest"`` counts bytes, ``"checking image files"`` rows.

    Returns
    -------
    list of CaseRecord
        One per row, in manifest (or sorted file) order.

    Raises
    ------
    DataError
        If the source cannot be read, lacks a required column, lists no case, or
        has any bad row (including a path that leaves the data root): the one
        message lists every bad row (up to ``max_errors``, then how many more)
        with its row number, the value, the problem and the fix, and nothing is
        returned.
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
    with _gc_paused():
        return _read(data, Path(base_dir), cache_dir, max_errors, demo_seed, workers, progress)


def _read(
    data: DataSource,
    base_dir: Path,
    cache_dir: Path | None,
    max_errors: int,
    demo_seed: int,
    workers: int | None,
    progress: Progress | None,
) -> list[CaseRecord]:
    table = source_table(data, base_dir, cache_dir, demo_seed, progress=progress)
    pending = _check_all(
        table,
        list(data.labels),
        max_errors,
        workers,
        allow_outside=data.allow_outside_root,
        progress=progress,
    )
    return [
        CaseRecord(
            case_key=p.key,
            source=p.source,
            path=Path(p.path),
            image_sha256=p.sha256,
            label=p.label,
            mask_path=None if p.mask_path is None else Path(p.mask_path),
            split=p.split,
            metadata=p.metadata,
            row=p.row,
            mask_source=p.mask_source,
            file_format=p.file_format,
            shape=p.shape,
        )
        for p in pending
    ]
