"""The layouts of a data source (CSV manifest, class folders, DICOM folder, demo) as tables.

Each layout becomes one :class:`~studyhub.cases.manifest.Table` of text cells,
so that :mod:`studyhub.cases.dataset` checks every layout the same way.

``csv``
    ``data.path`` is a manifest: one row per case with the columns named by
    ``data.image_column`` and ``data.label_column`` (required), ``data.mask_column``
    and ``data.split_column`` (optional: when they keep their default names and are
    absent, the cases have no masks or splits; renamed ones must exist), an
    optional ``case_id`` column (the case key; else the image path is), and any
    other columns as metadata. Paths are relative to the manifest's folder or
    absolute, and must lie in the manifest's folder (the data root) unless the
    protocol sets ``data.allow_outside_root: true``. UTF-8 (a spreadsheet's
    byte-order mark is fine).
``folders``
    ``data.path`` is a folder with one sub-folder per label (images may sit in
    nested folders below it). Masks, optional, mirror the images under
    ``masks/``: the mask of ``crack/a/b.jpg`` is ``masks/crack/a/b.png``. The
    case key is the path relative to the folder, e.g. ``crack/a/b.jpg``; cases
    are listed in sorted path order. Image files are those ending in
    :data:`IMAGE_SUFFIXES`; hidden files and other files are ignored. A sub-folder
    that is not a label, an image outside the class folders and a mask without
    its image are errors. An image or mask that is a link to a file outside the
    folder is refused unless the protocol sets ``data.allow_outside_root: true``.
``dicom``
    ``data.path`` is a folder of DICOM files plus a sidecar ``labels.csv``, a
    manifest whose image column is ``file`` (path relative to the folder) and
    whose other columns follow the ``csv`` rules (label, optional mask, split,
    ``case_id``, metadata). Every DICOM file in the folder must be listed; files
    (and links) outside the folder are refused unless the protocol sets
    ``data.allow_outside_root: true``.
``demo``
    The synthetic inspection domain of :mod:`studyhub.demo.synth`, written once
    into a cache folder (:func:`materialise_demo`) and read as a ``csv`` manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from studyhub.cases.dicom import is_dicom
from studyhub.cases.manifest import (
    PathResolver,
    Progress,
    Table,
    read_manifest,
    resolve_columns,
    suggest,
)
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource

__all__ = [
    "DICOM_LABELS_FILE",
    "IMAGE_SUFFIXES",
    "MASKS_FOLDER",
    "default_cache_dir",
    "demo_folder",
    "demo_is_materialised",
    "materialise_demo",
    "source_table",
]

DICOM_LABELS_FILE = "labels.csv"
"""Sidecar manifest of a ``dicom`` data source."""

MASKS_FOLDER = "masks"
"""Folder of a ``folders`` data source that mirrors the class folders with masks."""

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm", ".dicom"}
)
"""File endings a ``folders`` data source counts as images."""


def default_cache_dir() -> Path:
    """Where the demo data set is cached when no ``cache_dir`` is given.

    Returns
    -------
    Path
        ``$STUDYHUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/studyhub``, else
        ``~/.cache/studyhub``.
    """
    env = os.environ.get("STUDYHUB_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "studyhub"


def _located(data: DataSource, base_dir: Path) -> Path:
    path = Path(data.path or "")
    return path if path.is_absolute() else Path(base_dir) / path


def _folders_table(root: Path, data: DataSource) -> Table:
    if not root.is_dir():
        raise DataError(
            f"data.path {str(root)!r} is not a folder; for kind folders give the folder that "
            "holds one sub-folder per label"
        )
    labels = list(data.labels)
    table = Table.for_folders(root)
    extra = table.extra_problems
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name not in labels and entry.name != MASKS_FOLDER:
            extra.append(
                (
                    f"folder '{entry.name}'",
                    f"{entry.name!r} is not in data.labels {labels}"
                    f"{suggest(entry.name, labels)}; rename the folder or add the label",
                )
            )
        elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            extra.append(
                (
                    f"file '{entry.name}'",
                    "image outside the class folders; move it into its label's folder",
                )
            )
    images: dict[str, str] = {}  # mask path -> image path
    for label in labels:
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(root).as_posix()
            hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
            if hidden or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            mask_rel = (Path(MASKS_FOLDER) / Path(rel).with_suffix(".png")).as_posix()
            if mask_rel in images:
                extra.append(
                    (
                        f"file '{rel}'",
                        f"shares its mask name {mask_rel!r} with {images[mask_rel]!r}; "
                        "give the two images different names",
                    )
                )
            images[mask_rel] = rel
            mask = mask_rel if (root / mask_rel).is_file() else ""
            table.add_row({"image": rel, "label": label, "mask": mask}, where=f"file '{rel}'")
    masks = root / MASKS_FOLDER
    if masks.is_dir():
        for path in sorted(masks.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not path.name.startswith(".") and rel not in images:
                extra.append(
                    (
                        f"file '{rel}'",
                        "mask without an image: the mask of <label>/<name>.<ext> must be "
                        f"{MASKS_FOLDER}/<label>/<name>.png; rename or remove it, or add its image",
                    )
                )
    return table


def _dicom_table(root: Path, data: DataSource, progress: Progress | None) -> Table:
    if not root.is_dir():
        raise DataError(
            f"data.path {str(root)!r} is not a folder; for kind dicom give the folder of "
            f"DICOM files and its {DICOM_LABELS_FILE}"
        )
    sidecar = root / DICOM_LABELS_FILE
    if not sidecar.is_file():
        raise DataError(
            f"DICOM folder {str(root)!r} has no {DICOM_LABELS_FILE}; write one with columns "
            f"file,{data.label_column} (file relative to the folder; optional "
            f"{data.split_column or 'split'}, case_id and metadata columns)"
        )
    table = read_manifest(sidecar, kind="dicom", progress=progress)
    resolve_columns(table, data, image_column="file")
    resolve = PathResolver(root)
    listed = {resolve(cells.get("file", "")) for _, _, cells, _ in table.rows}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        real = resolve(rel.as_posix())
        if path == sidecar or real in listed:
            continue
        if real is not None and not resolve.inside(real) and not data.allow_outside_root:
            table.extra_problems.append(
                (
                    f"file '{rel.as_posix()}'",
                    f"links to {str(real)!r}, outside the DICOM folder (the data root); remove "
                    "the link, or set data.allow_outside_root: true in the protocol",
                )
            )
            continue  # a file outside the data root is never opened
        if not is_dicom(path):
            continue
        table.extra_problems.append(
            (
                f"file '{rel.as_posix()}'",
                f"DICOM file not listed in {DICOM_LABELS_FILE}; add a row with its label, "
                "or move it out of the folder",
            )
        )
    return table


def _synth_fingerprint() -> str:
    from studyhub.demo import synth

    try:
        code = Path(synth.__file__).read_bytes()
    except OSError:  # pragma: no cover - installed without sources
        import studyhub

        code = str(getattr(studyhub, "__version__", "0")).encode()
    return hashlib.sha256(code).hexdigest()[:12]


def demo_folder(data: DataSource, cache_dir: Path, seed: int) -> Path:
    """The folder :func:`materialise_demo` writes ``data``'s demo data set into."""
    n = data.demo_cases_per_split
    return Path(cache_dir) / f"demo-{_synth_fingerprint()}-seed{seed}-n{n}"


def demo_is_materialised(data: DataSource, cache_dir: Path, seed: int) -> bool:
    """Whether ``cache_dir`` holds the finished demo data set of ``data`` (nothing is written)."""
    folder = demo_folder(data, cache_dir, seed)
    return (folder / ".complete").is_file() and (folder / "manifest.csv").is_file()


def materialise_demo(data: DataSource, cache_dir: Path | None, seed: int) -> Path:
    """Write the synthetic data set once into the cache; return its manifest."""
    from studyhub.demo import synth

    if list(data.labels) != list(synth.CLASS_NAMES):
        raise DataError(
            f"data.labels is {list(data.labels)} but kind demo has labels "
            f"{list(synth.CLASS_NAMES)} in the demo model's output order; "
            f"set data.labels: [{', '.join(synth.CLASS_NAMES)}]"
        )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    n = data.demo_cases_per_split
    folder = demo_folder(data, root, seed)
    done = folder / ".complete"
    if demo_is_materialised(data, root, seed):
        return folder / "manifest.csv"
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    except OSError as exc:
        raise DataError(
            f"cannot write the demo data set under {str(root)!r} ({exc}); pass a writable "
            "cache_dir or set STUDYHUB_CACHE_DIR"
        ) from exc
    try:
        synth.write_dataset(tmp, n, seed=seed)
        (tmp / ".complete").write_text(f"seed={seed} n_per_split={n}\n", encoding="utf-8")
        if folder.exists() and not done.is_file():
            shutil.rmtree(folder)  # an unfinished copy of ours; never a finished one
        if not folder.exists():
            try:
                tmp.rename(folder)  # atomic: readers see all of it or none
            except OSError:
                if not done.is_file():  # nobody else finished it meanwhile
                    raise
    except OSError as exc:
        raise DataError(
            f"cannot write the demo data set to {str(folder)!r} ({exc}); pass a writable "
            "cache_dir or set STUDYHUB_CACHE_DIR"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "manifest.csv"


def source_table(
    data: DataSource,
    base_dir: Path,
    cache_dir: Path | None,
    seed: int,
    *,
    progress: Progress | None = None,
) -> Table:
    """Read a data source's layout into a table of rows (files not yet checked).

    Parameters
    ----------
    data : DataSource
        The protocol's data section.
    base_dir : Path
        Folder a relative ``data.path`` is relative to.
    cache_dir : Path or None
        Demo cache folder (None: :func:`default_cache_dir`).
    seed : int
        Demo generator seed.
    progress : callable, optional
        Hears ``progress("reading manifest", bytes_read, size)`` while a manifest
        is read.

    Returns
    -------
    Table
        The rows, their column roles and any problems found while listing.

    Raises
    ------
    DataError
        If the source is missing, of the wrong kind (file vs folder), or lacks a
        required column or ``labels.csv``.
    """
    readers: dict[str, Callable[[], Table]] = {
        "csv": lambda: _csv_table(_located(data, base_dir), data, progress),
        "folders": lambda: _folders_table(_located(data, base_dir), data),
        "dicom": lambda: _dicom_table(_located(data, base_dir), data, progress),
        "demo": lambda: _demo_table(materialise_demo(data, cache_dir, seed), data, progress),
    }
    return readers[data.kind]()


def _csv_table(path: Path, data: DataSource, progress: Progress | None) -> Table:
    if path.is_dir():
        raise DataError(
            f"data.path {str(path)!r} is a folder but data.kind is csv; point data.path at "
            "the manifest file, or set data.kind to folders or dicom"
        )
    table = read_manifest(path, kind="csv", progress=progress)
    resolve_columns(table, data, image_column=data.image_column)
    return table


def _demo_table(manifest: Path, data: DataSource, progress: Progress | None) -> Table:
    table = read_manifest(manifest, kind="csv", progress=progress)
    demo = DataSource(kind="csv", path=str(manifest), labels=list(data.labels))
    resolve_columns(table, demo, image_column=demo.image_column)
    return table
