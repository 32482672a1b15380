"""Attribution maps as arrays: checking, normalising, selecting the top k%.

Shared by the renderer, the narratives and the metrics. :func:`top_k_mask` is the
pixel-wise top k% that the metrics score; :func:`highlight_region` is the same
selection made on a smoothed map and cleaned of specks, which the renderer
outlines for raters (with ``smoothing_px=0`` and ``min_region_percent=0`` the two
are equal).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from skimage import filters, measure

from studyhub.errors import InputError

__all__ = [
    "check_image",
    "check_map",
    "highlight_region",
    "normalize_attribution",
    "signed_part",
    "top_k_mask",
]


def check_map(
    array: object, name: str, *, shape: tuple[int, ...] | None = None, against: str = "the image"
) -> NDArray[np.float64]:
    """Validate a 2-D map (attribution, image, uncertainty) and return it as float64.

    Singleton channel axes, ``(1, H, W)`` or ``(H, W, 1)``, are squeezed.

    Parameters
    ----------
    array : array-like
        The map; a ``torch.Tensor`` is accepted after ``.detach().cpu()``.
    name : str
        What the map is, for error messages.
    shape : tuple of int, optional
        The ``(H, W)`` the map must have.
    against : str, default "the image"
        What ``shape`` belongs to, for error messages.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``(H, W)``.

    Raises
    ------
    InputError
        If the map is not 2-D, has the wrong shape, or holds NaN or infinity.
    """
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    values = np.asarray(array)
    if values.ndim == 3 and 1 in (values.shape[0], values.shape[-1]):
        values = values[0] if values.shape[0] == 1 else values[..., 0]
    if values.ndim != 2 or values.size == 0:
        raise InputError(
            f"{name} has shape {values.shape}; pass one non-empty 2-D map of shape (H, W)"
        )
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise InputError(f"{name} has dtype {values.dtype}; pass a numeric array")
    if shape is not None and values.shape != tuple(shape):
        raise InputError(
            f"{name} has shape {values.shape} but {against} has shape {tuple(shape)}; "
            "compute the map at the image's resolution (upsample it first)"
        )
    out = values.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        raise InputError(
            f"{name} holds {int(bad.sum())} NaN or infinite value(s) (first at "
            f"{tuple(int(i) for i in np.argwhere(bad)[0])}); fix the method that made it "
            "(e.g. a zero division) or replace them with 0 before rendering"
        )
    return out


def check_image(image: object) -> NDArray[np.float64]:
    raw = np.asarray(image)
    values = check_map(raw, "image")
    if raw.dtype == np.uint8:
        return values / 255.0
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"image intensities span [{low:.3g}, {high:.3g}]; scale them to [0, 1] "
            "(or pass uint8 pixels)"
        )
    return values


def normalize_attribution(
    attribution: object, *, sign: str = "positive", percentile: float = 99.0
) -> NDArray[np.float64]:
    """Scale an attribution map to [0, 1] as the heat map shows it.

    ``sign="positive"`` keeps ``max(a, 0)``, ``sign="absolute"`` takes ``|a|``;
    the result is divided by its ``percentile``-th percentile (over all pixels)
    and clipped to [0, 1]. When that percentile is 0 (evidence on under
    ``100 - percentile`` % of the pixels) the maximum is used instead; an
    all-zero map stays all zero.

    Parameters
    ----------
    attribution : array-like
        ``(H, W)`` map.
    sign : {"positive", "absolute"}
        Which part of the map is shown.
    percentile : float
        In (0, 100].

    Returns
    -------
    numpy.ndarray
        ``float64`` map in [0, 1].

    Raises
    ------
    InputError
        On NaN values, a bad shape, an unknown sign or a percentile outside (0, 100].
    """
    values = signed_part(check_map(attribution, "attribution"), sign)
    if not 0.0 < percentile <= 100.0:
        raise InputError(
            f"normalize_percentile is {percentile!r}; pass a value in (0, 100], e.g. 99"
        )
    scale = float(np.percentile(values, percentile))
    if scale <= 0.0:
        scale = float(values.max())
    if scale <= 0.0:
        return np.zeros_like(values)
    return np.clip(values / scale, 0.0, 1.0)


def signed_part(values: NDArray[np.float64], sign: str) -> NDArray[np.float64]:
    if sign == "positive":
        return np.maximum(values, 0.0)
    if sign == "absolute":
        return np.abs(values)
    raise InputError(f"sign is {sign!r}; use 'positive' or 'absolute'")


def top_k_mask(values: object, percent: float) -> NDArray[np.bool_]:
    """The ``percent`` % of pixels with the largest values, among those above 0.

    Exactly ``max(1, round(percent / 100 * H * W))`` pixels are chosen (fewer
    when fewer are positive); ties are broken in row-major order, so the mask is
    deterministic.

    Parameters
    ----------
    values : array-like
        ``(H, W)`` map, already sign-transformed (e.g. ``max(a, 0)``).
    percent : float
        In (0, 100).

    Returns
    -------
    numpy.ndarray
        Boolean ``(H, W)`` mask.

    Raises
    ------
    InputError
        If ``percent`` is outside (0, 100) or the map is invalid.
    """
    array = check_map(values, "attribution")
    if not 0.0 < percent < 100.0:
        raise InputError(f"top_k_percent is {percent!r}; pass a value in (0, 100), e.g. 10")
    flat = array.ravel()
    n = max(1, round(percent / 100.0 * flat.size))
    order = np.argsort(-flat, kind="stable")[:n]
    order = order[flat[order] > 0.0]
    mask = np.zeros(flat.size, dtype=bool)
    mask[order] = True
    return mask.reshape(array.shape)


def highlight_region(
    values: object,
    percent: float,
    *,
    smoothing_px: float = 0.0,
    min_region_percent: float = 0.0,
) -> NDArray[np.bool_]:
    """The top ``percent`` % of a smoothed map, without specks or pinholes.

    1. The map is smoothed with a Gaussian of standard deviation
       ``smoothing_px`` image pixels (``skimage.filters.gaussian``, edges
       extended), so that scattered single-pixel peaks of a pixel-wise method
       (Integrated Gradients, saliency) merge into the areas they crowd.
    2. :func:`top_k_mask` of the smoothed map selects its top ``percent`` %.
    3. Connected parts (8-connectivity, ``skimage.measure.label``) smaller than
       the **minimum region size** ``ceil(min_region_percent / 100 * H * W)``
       pixels are dropped, except the largest part, which always stays, so a map
       with any positive value always has a region; holes (4-connected parts of
       the background not touching the border) smaller than the same size are
       filled.

    The result therefore holds about, not exactly, ``percent`` % of the pixels.

    Parameters
    ----------
    values : array-like
        ``(H, W)`` map, already sign-transformed (e.g. ``max(a, 0)``).
    percent : float
        In (0, 100).
    smoothing_px : float, default 0
        Standard deviation of the Gaussian in image pixels; 0 smooths nothing.
    min_region_percent : float, default 0
        Minimum region size as a share of the image's area, in percent; 0 keeps
        every part.

    Returns
    -------
    numpy.ndarray
        Boolean ``(H, W)`` mask; all false when no value is above 0.

    Raises
    ------
    InputError
        If ``percent`` is outside (0, 100), ``smoothing_px`` or
        ``min_region_percent`` is negative, or the map is invalid.
    """
    array = check_map(values, "attribution")
    if smoothing_px < 0.0:
        raise InputError(f"smoothing_px is {smoothing_px!r}; pass 0 (no smoothing) or more, e.g. 1")
    if not 0.0 <= min_region_percent < 100.0:
        raise InputError(
            f"min_region_percent is {min_region_percent!r}; pass a value in [0, 100), e.g. 1"
        )
    if smoothing_px > 0.0:
        smoothed = filters.gaussian(array, sigma=smoothing_px, mode="nearest", truncate=3.0)
        array = np.asarray(smoothed, dtype=np.float64)
    top = top_k_mask(array, percent)
    min_px = math.ceil(min_region_percent / 100.0 * top.size)
    if min_px <= 1 or not top.any():
        return top
    parts = measure.label(top, connectivity=2)
    sizes = np.bincount(parts.ravel())
    sizes[0] = 0
    keep = sizes >= min_px
    keep[int(np.argmax(sizes))] = True
    keep[0] = False
    top = keep[parts]
    gaps = measure.label(~top, connectivity=1)
    gap_sizes = np.bincount(gaps.ravel())
    border = np.unique(np.concatenate([gaps[0], gaps[-1], gaps[:, 0], gaps[:, -1]]))
    fill = gap_sizes < min_px
    fill[0] = False
    fill[border] = False
    return top | fill[gaps]
