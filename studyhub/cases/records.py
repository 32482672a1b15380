"""One case of a data source, as read and checksummed, and the loaders of its pixels.

Pixel conventions (every loader in studyhub follows them):

- **Grayscale** images (PIL modes ``1``, ``L``, ``LA``, ``I;16``, ``I``, ``F``
  and single-sample DICOM) load as ``float32`` arrays of shape ``(H, W)`` in
  ``[0, 1]``: 8-bit values are divided by 255, 16-bit values by 65535; 32-bit
  integer and float images are divided by 65535 when they lie in
  ``[0, 65535]`` (float: kept when in ``[0, 1]``), else scaled by their own
  minimum and maximum. A grayscale image's alpha channel is dropped.
- **Colour is kept**: every other mode (``RGB``, ``RGBA``, ``P``, ``CMYK``,
  ``YCbCr``, ...) loads as ``(H, W, 3)`` RGB in ``[0, 1]``, alpha dropped.
  Converting to gray would throw away the stain of a pathology slide or the
  colour of a dermoscopy image; a model that wants gray converts in its own
  preprocessing.
- **DICOM**: see :mod:`studyhub.cases.dicom` (modality rescale, then the file's
  window or min/max to ``[0, 1]``).
- **Masks** are single-channel integer label images (0 is background), returned
  with their stored integer dtype (``uint8`` for 8-bit PNG, ``uint16`` for
  16-bit); colour masks are refused.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from studyhub.cases.dicom import is_dicom, read_dicom, to_unit_range
from studyhub.errors import DataError, InputError

__all__ = [
    "CaseRecord",
    "MetadataValue",
    "load_image",
    "load_mask",
    "load_modality_values",
]

MetadataValue = str | float | int | bool
"""Type of a case metadata value."""

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_MASK_MODES = frozenset({"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_U16 = 65535.0


@dataclass(frozen=True)
class CaseRecord:
    """One validated case of a data source.

    Attributes
    ----------
    case_key : str
        Stable unique identifier within the data source: the ``case_id`` column
        when the manifest has one, else the image path as written in the
        manifest (for class folders and DICOM folders: the path relative to the
        folder, with ``/``).
    source : str
        The image path as given (manifest cell, or path relative to the folder).
    path : Path
        The resolved, absolute image path.
    image_sha256 : str
        SHA-256 of the image file's bytes, lowercase hex.
    label : str
        The class label, one of ``DataSource.labels``.
    mask_path : Path or None
        The resolved mask path, or ``None`` when the case has no mask.
    mask_source : str or None
        The mask path as given, or ``None``.
    split : str or None
        The split (``train``, ``calibration``, ``test``, ...), or ``None``.
    metadata : dict
        Metadata columns (typed per column: bool, int, float or str; empty cells
        omitted) and, for DICOM, the header values of
        :data:`~studyhub.cases.dicom.DICOM_METADATA_KEYS`.
    row : int
        Where the case was listed, for messages: the manifest row as a spreadsheet
        numbers it (header is row 1), or the 1-based position in sorted file order
        for class folders.
    file_format : {"image", "dicom"}
        How the image is decoded: Pillow or pydicom.
    shape : tuple of int
        Shape :func:`load_image` returns: ``(H, W)`` or ``(H, W, 3)``.
    """

    case_key: str
    source: str
    path: Path
    image_sha256: str
    label: str
    mask_path: Path | None
    split: str | None
    metadata: dict[str, MetadataValue] = field(hash=False)
    row: int
    mask_source: str | None = None
    file_format: Literal["image", "dicom"] = "image"
    shape: tuple[int, ...] = ()


def _scale_wide(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        return arr
    if lo >= 0.0 and hi <= _U16:
        return arr / _U16
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def pil_to_unit(img: Image.Image) -> NDArray[np.float32]:
    """Convert a decoded Pillow image to ``float32`` in ``[0, 1]`` (see module notes).

    Parameters
    ----------
    img : PIL.Image.Image
        A loaded image.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grayscale modes, ``(H, W, 3)`` RGB otherwise.
    """
    mode = img.mode
    if mode not in _GRAY_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    if mode == "1":
        return np.asarray(img, dtype=np.float32)
    if mode in ("L", "LA"):
        return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)
    if mode.startswith("I;16"):
        return (np.asarray(img).astype(np.float64) / _U16).astype(np.float32)
    wide = np.asarray(img).astype(np.float64)
    if mode == "I" and wide.min() >= 0 and wide.max() <= 1:
        return wide.astype(np.float32)  # a 0/1 integer image is not 16-bit data
    return _scale_wide(wide).astype(np.float32)


def pil_shape(img: Image.Image) -> tuple[int, ...]:
    """Shape :func:`pil_to_unit` returns for ``img``, without converting it.

    Parameters
    ----------
    img : PIL.Image.Image
        An opened image.

    Returns
    -------
    tuple of int
        ``(H, W)`` for grayscale modes, ``(H, W, 3)`` otherwise.
    """
    width, height = img.size
    return (height, width) if img.mode in _GRAY_MODES else (height, width, 3)


def pil_mask(img: Image.Image) -> NDArray[np.integer]:
    """Integer labels of a decoded mask image.

    Parameters
    ----------
    img : PIL.Image.Image
        A loaded single-channel image.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` integer array in the file's own integer type.

    Raises
    ------
    ValueError
        If the mode is not a single-channel integer mode.
    """
    if img.mode not in _MASK_MODES:
        raise ValueError(
            f"it is a {img.mode} image; a mask must be a single-channel integer label image "
            "(0 = background), e.g. an 8-bit grayscale or palette PNG"
        )
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8)
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        return arr.astype(np.uint16)
    return arr


def open_pil(data: bytes | Path) -> Image.Image:
    """Decode an image fully with Pillow (refusing multi-frame files).

    Parameters
    ----------
    data : bytes or Path
        The file's bytes, or the file (decoded without reading it whole first).

    Returns
    -------
    PIL.Image.Image
        The loaded first (and only) frame.

    Raises
    ------
    ValueError
        If the file has several frames. Pillow's own errors pass through.
    """
    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    frames = int(getattr(img, "n_frames", 1))
    if frames > 1:
        img.close()
        raise ValueError(f"it has {frames} frames; give one single-frame image per case")
    img.load()
    return img


def _read_checked(record: CaseRecord) -> bytes:
    try:
        data = record.path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"case {record.case_key!r}: cannot read image {str(record.path)!r} ({exc}); "
            "restore the file or enroll the data source again"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.image_sha256:
        raise DataError(
            f"case {record.case_key!r}: image {str(record.path)!r} changed since it was "
            f"read (SHA-256 {digest[:12]}… is not the recorded {record.image_sha256[:12]}…); "
            "restore the original file, or enroll the data source again"
        )
    return data


def load_image(record: CaseRecord, *, verify: bool = True) -> NDArray[np.float32]:
    """Load a case's image as ``float32`` in ``[0, 1]``.

    Parameters
    ----------
    record : CaseRecord
        The case.
    verify : bool, default True
        Check that the file's SHA-256 still equals ``record.image_sha256``, so
        explanations are never computed on a file that changed after enrollment.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grayscale and DICOM, ``(H, W, 3)`` RGB for colour images
        (see the module notes for the scaling).

    Raises
    ------
    DataError
        If the file is missing, changed or cannot be decoded.
    """
    if not isinstance(record, CaseRecord):
        raise InputError(f"record is a {type(record).__name__}; pass a CaseRecord from read_cases")
    data = _read_checked(record) if verify else None
    try:
        if record.file_format == "dicom" or (data is None and is_dicom(record.path)):
            return to_unit_range(read_dicom(record.path))
        return pil_to_unit(open_pil(data if data is not None else record.path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"case {record.case_key!r}: cannot decode image {str(record.path)!r} ({exc}); "
            "restore the file or enroll the data source again"
        ) from exc


def load_modality_values(record: CaseRecord) -> NDArray[np.float32] | None:
    """A grayscale DICOM case's modality values, before any display window.

    Parameters
    ----------
    record : CaseRecord
        The case; its file's SHA-256 is checked as in :func:`load_image`.

    Returns
    -------
    numpy.ndarray or None
        ``float32`` ``(rows, columns)`` stored values after the file's rescale
        slope and intercept (:attr:`~studyhub.cases.dicom.DicomImage.values`),
        at the file's own resolution; ``None`` for non-DICOM and colour DICOM
        cases.

    Raises
    ------
    DataError
        If the file is missing, changed or cannot be decoded.
    """
    if not isinstance(record, CaseRecord):
        raise InputError(f"record is a {type(record).__name__}; pass a CaseRecord from read_cases")
    if record.file_format != "dicom":
        return None
    data = _read_checked(record)
    try:
        values = read_dicom(data).values
    except (OSError, ValueError) as exc:
        raise DataError(
            f"case {record.case_key!r}: cannot decode image {str(record.path)!r} ({exc}); "
            "restore the file or enroll the data source again"
        ) from exc
    return values.astype(np.float32) if values.ndim == 2 else None


def load_mask(record: CaseRecord) -> NDArray[np.integer] | None:
    """Load a case's region mask as integer labels.

    Parameters
    ----------
    record : CaseRecord
        The case.

    Returns
    -------
    numpy.ndarray or None
        ``(H, W)`` integer labels (0 = background), or ``None`` when the case
        has no mask.

    Raises
    ------
    DataError
        If the mask file is missing or is not an integer label image.
    """
    if not isinstance(record, CaseRecord):
        raise InputError(f"record is a {type(record).__name__}; pass a CaseRecord from read_cases")
    if record.mask_path is None:
        return None
    try:
        return pil_mask(open_pil(record.mask_path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"case {record.case_key!r}: cannot read mask {str(record.mask_path)!r} ({exc}); "
            "restore the mask file or enroll the data source again"
        ) from exc
