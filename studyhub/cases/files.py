"""Reading, hashing and decoding the files a data source's rows name.

:class:`FileChecker` takes the rows left by the cheap per-row checks of
:mod:`studyhub.cases.dataset` and, for each, reads the image file (SHA-256
computed as it is read; a file over 16 MiB is hashed in chunks and decoded from
disk, never held whole), decodes it with Pillow or pydicom, and reads and checks
the mask. Files with the same bytes (and kind) are decoded once. Problems are
recorded on the row, in words with the fix; nothing is raised for a bad file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import UnidentifiedImageError

from studyhub.cases.dicom import DICOM_METADATA_KEYS, has_dicom_suffix, is_dicom, read_dicom
from studyhub.cases.manifest import Table
from studyhub.cases.records import MetadataValue, open_pil, pil_mask, pil_shape

__all__ = ["FileChecker", "PendingRow"]

_WHOLE_FILE = 16 << 20  # files up to 16 MiB are decoded from the bytes read for the hash
_HASH_CHUNK = 1 << 20


@dataclass
class PendingRow:
    """One row after the cheap checks, before its files are read."""

    order: int
    row: int
    where: str
    key: str
    source: str
    path: str  # resolved; strings until the records are built (a Path costs more)
    label: str
    mask_source: str | None
    mask_path: str | None
    split: str | None
    metadata: dict[str, MetadataValue]
    problems: list[str] = field(default_factory=list)
    sha256: str = ""
    shape: tuple[int, ...] = ()
    file_format: Literal["image", "dicom"] = "image"


def _missing_file(column: str, source: str, path: str, hint: str, remove: str, exc: OSError) -> str:
    if not os.path.exists(path):
        return (
            f"{column} {source!r} does not exist (looked for {path!r}); correct the path "
            f"({hint}) or {remove}"
        )
    if os.path.isdir(path):
        return f"{column} {source!r} is a folder, not a file; give the file's path {hint}"
    return f"{column} {source!r} cannot be read ({exc}); check the file's permissions"


def _why(exc: Exception) -> str:
    """A decoder failure in words (Pillow's own message names a BytesIO object)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a format Pillow or pydicom can decode"
    return str(exc) or type(exc).__name__


def _hashed(path: str) -> tuple[str, bytes | None]:
    """SHA-256 of a file read in chunks, and its bytes when small enough to decode from.

    Plain ``os`` calls, no buffered file object: for the small files of a big
    manifest the Python objects of :func:`open` cost more than the reading.
    """
    digest = hashlib.sha256()
    kept: list[bytes] | None = []
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        if os.fstat(fd).st_size > _WHOLE_FILE:
            kept = None
        while chunk := os.read(fd, _HASH_CHUNK):
            digest.update(chunk)
            if kept is not None:
                kept.append(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), None if kept is None else b"".join(kept)


@dataclass(frozen=True)
class _Decoded:
    """What decoding one file's bytes gave (the same for every identical file)."""

    shape: tuple[int, ...] = ()
    file_format: Literal["image", "dicom"] = "image"
    metadata: dict[str, str | float] = field(default_factory=dict)
    failure: str | None = None


def _decode_image(path: str, data: bytes | None) -> _Decoded:
    try:
        head = data[:132] if data is not None else None
        if is_dicom(Path(path), head):
            decoded = read_dicom(data if data is not None else Path(path))
            return _Decoded(tuple(decoded.values.shape), "dicom", decoded.metadata)
        with open_pil(data if data is not None else Path(path)) as img:
            return _Decoded(pil_shape(img))
    except Exception as exc:  # any decoder failure means an unreadable image
        return _Decoded(failure=_why(exc))


def _decode_mask(data: bytes | None, path: str) -> _Decoded:
    try:
        with open_pil(data if data is not None else Path(path)) as img:
            return _Decoded(tuple(pil_mask(img).shape))
    except Exception as exc:  # any decoder failure means an unreadable mask
        return _Decoded(failure=_why(exc))


class FileChecker:
    """Reads, hashes and decodes rows' files; identical files (same bytes) are decoded once."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._images: dict[tuple[str, bool], _Decoded] = {}
        self._masks: dict[str, _Decoded] = {}

    def rows(self, items: list[PendingRow]) -> int:
        """Check every row of ``items``; return how many were checked."""
        for item in items:
            self.row(item)
        return len(items)

    def row(self, item: PendingRow) -> None:
        """Read, hash and decode one row's image and mask; record problems on the row."""
        table, cols = self.table, self.table.columns
        image_hw: tuple[int, ...] | None = None
        if item.source:
            try:
                item.sha256, data = _hashed(item.path)
            except OSError as exc:
                item.problems.append(
                    _missing_file(
                        cols.image, item.source, item.path, table.path_hint, table.remove, exc
                    )
                )
            else:
                key = (item.sha256, has_dicom_suffix(item.path))
                decoded = self._images.get(key)
                if decoded is None:
                    decoded = self._images[key] = _decode_image(item.path, data)
                if decoded.failure is not None:
                    item.problems.append(
                        f"{cols.image} {item.source!r} is not a readable image "
                        f"({decoded.failure}); replace it with a PNG, JPEG, TIFF or DICOM file, "
                        f"or {table.remove}"
                    )
                else:
                    item.shape, item.file_format = decoded.shape, decoded.file_format
                    image_hw = item.shape[:2]
                    if decoded.file_format == "dicom":
                        clash = sorted(set(DICOM_METADATA_KEYS) & set(cols.metadata))
                        if clash:
                            item.problems.append(
                                f"column(s) {clash} clash with values read from the DICOM "
                                "header; rename those columns"
                            )
                        item.metadata = {**item.metadata, **decoded.metadata}
        if item.mask_source is None or item.mask_path is None:
            return
        mask_col = cols.mask or "mask"
        try:
            mask_sha, mask_bytes = _hashed(item.mask_path)
        except OSError as exc:
            item.problems.append(
                _missing_file(
                    mask_col,
                    item.mask_source,
                    item.mask_path,
                    table.path_hint,
                    "leave the cell empty",
                    exc,
                )
            )
            return
        mask = self._masks.get(mask_sha)
        if mask is None:
            mask = self._masks[mask_sha] = _decode_mask(mask_bytes, item.mask_path)
        if mask.failure is not None:
            item.problems.append(
                f"{mask_col} {item.mask_source!r} is not a usable mask ({mask.failure}); "
                "give an integer label image (0 = background) or leave the cell empty"
            )
            return
        mask_hw = mask.shape
        if image_hw is not None and tuple(mask_hw) != tuple(image_hw):
            item.problems.append(
                f"{mask_col} {item.mask_source!r} is {mask_hw[0]}x{mask_hw[1]} (HxW) but its "
                f"image is {image_hw[0]}x{image_hw[1]}; give this image's mask, at the image's size"
            )
