"""Reading one DICOM image: modality values, the display window and safe metadata.

A DICOM case is one single-frame image. Its stored pixel values go through the
modality LUT given by the file's own ``RescaleSlope`` and ``RescaleIntercept``
(``value = stored * slope + intercept``; slope 1 and intercept 0 when the tags
are absent), which gives physical units such as Hounsfield units for CT.

For display and for the models, :func:`to_unit_range` maps those values to
``[0, 1]``: with the file's first ``WindowCenter``/``WindowWidth`` pair when it
has one (the linear VOI function of DICOM PS3.3 C.11.2.1.2.1), else by the
image's own minimum and maximum. ``MONOCHROME1`` images (low values bright) are
inverted after that, so 1 is always bright. Colour images (three samples per
pixel) are divided by the largest stored value, ``2**BitsStored - 1``.
:func:`apply_window` is that linear VOI function alone, for other windows (the
protocol's ``rendering.window_presets``).

:func:`modality_bytes` stores a grayscale image's modality values losslessly
(``float32`` ``.npy``, zlib-compressed, no pickle) so that the plain image can be
re-windowed after it was rendered; :func:`modality_from_bytes` reads them back.

Only technical tags are copied into the case metadata (:data:`DICOM_METADATA_KEYS`);
no patient, study or institution identifier leaves the file.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DICOM_METADATA_KEYS",
    "DicomImage",
    "apply_window",
    "has_dicom_suffix",
    "is_dicom",
    "modality_bytes",
    "modality_from_bytes",
    "read_dicom",
    "to_unit_range",
]

DICOM_METADATA_KEYS: tuple[str, ...] = (
    "modality",
    "photometric_interpretation",
    "rescale_slope",
    "rescale_intercept",
    "window_center",
    "window_width",
)
"""Metadata keys a DICOM case gets from its header (window keys only when present)."""

_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True, eq=False)
class DicomImage:
    """One decoded DICOM image.

    Attributes
    ----------
    values : numpy.ndarray
        ``float64`` modality values (stored values after slope and intercept),
        shape ``(rows, columns)``; for colour images the stored values,
        shape ``(rows, columns, 3)``.
    window_center, window_width : float or None
        The file's first display window, or ``None`` when it has none.
    monochrome1 : bool
        Whether low values are displayed bright (``PhotometricInterpretation``
        ``MONOCHROME1``).
    max_stored : float
        Largest representable stored value, ``2**BitsStored - 1``.
    metadata : dict
        The values of :data:`DICOM_METADATA_KEYS` found in the file.
    """

    values: NDArray[np.float64] = field(repr=False)
    window_center: float | None
    window_width: float | None
    monochrome1: bool
    max_stored: float
    metadata: dict[str, str | float]


def has_dicom_suffix(name: str) -> bool:
    """Whether a file name ends in ``.dcm`` or ``.dicom`` (any case).

    Parameters
    ----------
    name : str
        A file name or path.

    Returns
    -------
    bool
        True for the DICOM suffixes :func:`is_dicom` recognises.
    """
    return name.lower().endswith(_SUFFIXES)


def is_dicom(path: Path, head: bytes | None = None) -> bool:
    """Whether ``path`` looks like a DICOM file: a ``.dcm``/``.dicom`` suffix or the preamble.

    Parameters
    ----------
    path : Path
        A file.
    head : bytes, optional
        The file's bytes (at least its first 132) when already read; else the
        file is opened.

    Returns
    -------
    bool
        True when the suffix is ``.dcm`` or ``.dicom`` (any case) or bytes 128-131
        are ``DICM``.
    """
    if path.suffix.lower() in _SUFFIXES:
        return True
    if head is None:
        try:
            with path.open("rb") as handle:
                head = handle.read(132)
        except OSError:
            return False
    return head[128:132] == b"DICM"


def _first_number(value: object) -> float | None:
    """The first number of a (possibly multi-valued) DICOM element, or None."""
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        items = list(value)  # type: ignore[call-overload]
        if not items:
            return None
        value = items[0]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def read_dicom(source: Path | bytes) -> DicomImage:
    """Read a single-frame DICOM image and apply its modality rescale.

    Parameters
    ----------
    source : Path or bytes
        The DICOM file, or its bytes.

    Returns
    -------
    DicomImage
        Modality values, window and metadata.

    Raises
    ------
    ValueError
        If the file is not DICOM, has no pixel data, has several frames or its
        pixel data cannot be decoded (for example a compressed transfer syntax
        without its decoder plug-in installed). Callers turn this into a
        :class:`~studyhub.errors.DataError` that names the file.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    def _open(force: bool) -> pydicom.Dataset:
        if isinstance(source, bytes):
            return pydicom.dcmread(io.BytesIO(source), force=force)
        return pydicom.dcmread(source, force=force)

    try:
        ds = _open(False)
    except InvalidDicomError:
        # Old files may lack the 128-byte preamble; accept them only with pixel data.
        ds = _open(True)
    if "PixelData" not in ds:
        raise ValueError("it is not a DICOM image (no PixelData element)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"it has {frames} frames; export each frame as its own file")
    try:
        stored = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises several types for undecodable data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        raise ValueError(
            f"its pixel data cannot be decoded (transfer syntax {name}: {exc}); "
            "install the pydicom decoder plug-in for it or store it uncompressed"
        ) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    bits = int(ds.get("BitsStored", 8) or 8)
    metadata: dict[str, str | float] = {
        "modality": str(ds.get("Modality", "")),
        "photometric_interpretation": photometric,
    }
    center = width = None
    if stored.ndim == 2:
        slope = _first_number(ds.get("RescaleSlope"))
        intercept = _first_number(ds.get("RescaleIntercept"))
        slope = 1.0 if slope is None else slope
        intercept = 0.0 if intercept is None else intercept
        values = stored.astype(np.float64) * slope + intercept
        metadata["rescale_slope"] = slope
        metadata["rescale_intercept"] = intercept
        center = _first_number(ds.get("WindowCenter"))
        width = _first_number(ds.get("WindowWidth"))
        if center is None or width is None:
            center = width = None
        else:
            metadata["window_center"] = center
            metadata["window_width"] = width
    elif stored.ndim == 3 and stored.shape[-1] == 3:
        values = stored.astype(np.float64)
    else:
        raise ValueError(f"its pixel array has shape {stored.shape}; expected one 2-D image")
    return DicomImage(
        values=values,
        window_center=center,
        window_width=width,
        monochrome1=photometric == "MONOCHROME1",
        max_stored=float(2**bits - 1),
        metadata=metadata,
    )


def to_unit_range(image: DicomImage) -> NDArray[np.float32]:
    """Map a DICOM image's values to ``float32`` in ``[0, 1]`` for display and models.

    Parameters
    ----------
    image : DicomImage
        From :func:`read_dicom`.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` for grayscale, ``(rows, columns, 3)`` for colour.

    Notes
    -----
    With a window of centre ``c`` and width ``w >= 1`` the linear VOI function of
    DICOM PS3.3 C.11.2.1.2.1 is used: ``0`` for ``x <= c - 0.5 - (w - 1) / 2``,
    ``1`` for ``x > c - 0.5 + (w - 1) / 2``, else ``(x - (c - 0.5)) / (w - 1) + 0.5``.
    Without a window (or with ``w < 1``) values are scaled by their minimum and
    maximum; a constant image maps to 0. ``MONOCHROME1`` is inverted afterwards.
    """
    x = image.values
    if x.ndim == 3:
        return np.clip(x / image.max_stored, 0.0, 1.0).astype(np.float32)
    c, w = image.window_center, image.window_width
    if c is not None and w is not None and w >= 1.0:
        unit = apply_window(x, c, w)
    else:
        lo, hi = float(x.min()), float(x.max())
        unit = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if image.monochrome1:
        unit = 1.0 - unit
    return unit.astype(np.float32)


def apply_window(values: NDArray[np.floating], center: float, width: float) -> NDArray[np.float64]:
    """Map modality values to ``[0, 1]`` with a linear display window.

    Parameters
    ----------
    values : numpy.ndarray
        Modality values (stored values after slope and intercept), any shape.
    center, width : float
        The window's centre (level) and width, in the values' units; ``width > 0``.

    Returns
    -------
    numpy.ndarray
        ``float64`` in ``[0, 1]``, the shape of ``values``.

    Raises
    ------
    ValueError
        If ``center`` or ``width`` is not finite, or ``width <= 0``.

    Notes
    -----
    The linear VOI function of DICOM PS3.3 C.11.2.1.2.1: ``0`` for
    ``x <= c - 0.5 - (w - 1) / 2``, ``1`` for ``x > c - 0.5 + (w - 1) / 2``, else
    ``(x - (c - 0.5)) / (w - 1) + 0.5``. DICOM requires ``w >= 1``; with ``w <= 1``
    the window is the step ``x > c - 0.5`` (what the function is at ``w = 1``).
    """
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0.0:
        raise ValueError(
            f"window centre {center!r} / width {width!r} is not usable; give a finite centre "
            "and a width greater than 0"
        )
    x = np.asarray(values, dtype=np.float64)
    if width <= 1.0:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def modality_bytes(values: NDArray[np.floating]) -> bytes:
    """Store a grayscale image's modality values compactly and losslessly as ``float32``.

    Parameters
    ----------
    values : numpy.ndarray
        ``(rows, columns)`` modality values, e.g. :attr:`DicomImage.values`.

    Returns
    -------
    bytes
        zlib-compressed ``.npy`` bytes of the little-endian ``float32`` array
        (written without pickle); :func:`modality_from_bytes` reads them.

    Raises
    ------
    ValueError
        If ``values`` is not one 2-D array.
    """
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"modality values have shape {array.shape}; pass one 2-D image")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return zlib.compress(buffer.getvalue(), 6)


def modality_from_bytes(data: bytes) -> NDArray[np.float32]:
    """Read modality values written by :func:`modality_bytes`.

    Parameters
    ----------
    data : bytes
        What :func:`modality_bytes` returned.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(rows, columns)``.

    Raises
    ------
    ValueError
        If ``data`` is not zlib-compressed ``.npy`` bytes of a 2-D ``float32`` array.
    """
    try:
        array = np.load(io.BytesIO(zlib.decompress(data)), allow_pickle=False)
    except (zlib.error, OSError, ValueError) as exc:
        raise ValueError(f"the stored modality values cannot be read ({exc})") from exc
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype != np.dtype("<f4"):
        kind = getattr(array, "dtype", type(array).__name__)
        raise ValueError(
            f"the stored modality values are {kind} of shape {getattr(array, 'shape', None)}; "
            "expected a 2-D float32 array"
        )
    return array.astype(np.float32, copy=False)
