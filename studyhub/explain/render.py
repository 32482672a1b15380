"""One standard rendering for every arm: the image, its heat map, a colour bar and a legend.

Raters compare maps, not styles, so every arm of a study goes through
:func:`render_stimulus` with the protocol's :class:`~studyhub.protocol.schema.Rendering`.

Layout (``s = canvas_px``)
--------------------------
The PNG is ``s`` pixels wide and ``s + panel_height(s)`` tall, RGB, 8 bits:

* **image area** ``s × s`` at the top: the grayscale image scaled up with the
  protocol's ``interpolation`` (``bicubic`` by default; ``nearest`` shows each
  camera pixel as a block, ``bilinear`` in between). The heat map, the outline
  and the hatching are scaled the same way, so they line up with the image.
* **heat map**: the attribution's positive part (``sign: positive``) or its
  magnitude (``sign: absolute``), divided by its ``normalize_percentile``-th
  percentile and clipped to [0, 1] (:func:`normalize_attribution`), scaled up,
  looked up in the colormap (matplotlib's table, 256 entries) and blended over
  the image. The blend's **opacity rises with the attribution**: 0 up to
  ``opacity_floor``, then linearly to ``opacity`` at 1
  (``opacity * clip((v - floor) / (1 - floor), 0, 1)``), so pixels without
  evidence, and faint evidence, leave the image as it is and the strongest
  evidence is the most opaque.
* **top-k outline** (``top_k_percent``): the edge of
  :func:`~studyhub.explain.maps.highlight_region`, the top-k% of the map after
  a Gaussian of ``smoothing_px`` image pixels, without parts smaller than
  ``min_region_percent`` % of the image (the largest part always stays) and
  with holes of that size filled, so the outline draws a few regions rather
  than hundreds of one-pixel islands. It is drawn white inside and black
  outside so it reads on any colour.
* **uncertainty hatching**: where ``uncertainty >= uncertainty_threshold``,
  diagonal black-and-white stripes.
* **panel** below the image, white: a horizontal colour bar with the words
  "less" and "more" at its ends, the plain-words ``colorbar_legend`` (wrapped to
  two lines) and a key row for the outline and hatching when they are shown.

Colormaps: see :mod:`studyhub.explain.colormaps` (colour-blind safe; the default,
``plasma``, and ``YlOrRd`` never turn grey, so they stay distinct from greyscale images).

:func:`render_original` draws the same canvas with no overlay and a blank
panel; :func:`render_overlay_layer` draws only the heat map, with the opacity
ramp as its alpha channel (1 at the strongest attribution), on a transparent
canvas of the same size, for viewers with their own opacity slider.

Encoding (:mod:`studyhub.explain.png`): the stimulus and the original are RGB
PNGs with exactly the chunks IHDR, IDAT, IEND; the overlay layer is a palette
PNG (IHDR, PLTE, tRNS, IDAT, IEND: the colormap's colours and the ramp's alpha,
one byte per pixel). No text, time, physical-size or colour-profile chunks, so
no name or date travels in the bytes. The same input gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from studyhub.explain.colormaps import COLORMAPS, colormap_lut
from studyhub.explain.maps import (
    check_image,
    check_map,
    highlight_region,
    normalize_attribution,
    signed_part,
    top_k_mask,
)
from studyhub.explain.panel import PANEL_BG, Layout, hatch_stripes, panel_height, panel_pixels
from studyhub.explain.png import encode_palette_png, encode_png, png_chunks
from studyhub.protocol.schema import Cues, Rendering

__all__ = [
    "COLORMAPS",
    "RenderedViews",
    "check_map",
    "colormap_lut",
    "highlight_region",
    "normalize_attribution",
    "opacity_ramp",
    "outline_region",
    "panel_height",
    "png_chunks",
    "render_arrays",
    "render_original",
    "render_overlay_layer",
    "render_stimulus",
    "render_views",
    "top_k_mask",
]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def opacity_ramp(values: NDArray[np.floating], settings: Rendering) -> NDArray[np.float32]:
    """The overlay's opacity for normalised values: 0 up to ``opacity_floor``, ``opacity`` at 1.

    Parameters
    ----------
    values : numpy.ndarray
        Normalised attribution in [0, 1] (:func:`normalize_attribution`).
    settings : Rendering
        ``opacity`` and ``opacity_floor`` are used.

    Returns
    -------
    numpy.ndarray
        ``float32`` opacity in [0, ``opacity``], same shape as ``values``.
    """
    return _rise(np.asarray(values, dtype=np.float32), settings) * np.float32(settings.opacity)


def _rise(values: NDArray[np.float32], settings: Rendering | _Ramp) -> NDArray[np.float32]:
    floor = np.float32(settings.opacity_floor)
    return np.clip((values - floor) / (np.float32(1.0) - floor), 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=32)
def _tables(
    colormap: str, opacity: float, floor: float
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    """Per heat-map index (0..255): RGB, blend opacity (0..255) and the overlay's RGBA."""
    lut = colormap_lut(colormap)
    rise = _rise(np.arange(256, dtype=np.float32) / np.float32(255.0), _Ramp(opacity, floor))
    blend = np.round(rise * np.float32(opacity) * np.float32(255.0)).astype(np.uint8)
    layer = np.zeros((256, 4), dtype=np.uint8)
    visible = rise > 0.0
    layer[visible, :3] = lut[visible]
    layer[:, 3] = np.round(rise * np.float32(255.0)).astype(np.uint8)
    for table in (blend, layer):
        table.setflags(write=False)
    return lut, blend, layer


@dataclass(frozen=True)
class _Ramp:
    opacity: float
    opacity_floor: float


def outline_region(attribution: object, settings: Rendering) -> NDArray[np.bool_] | None:
    """The region the rendering outlines, at the map's resolution; None without an outline.

    :func:`~studyhub.explain.maps.highlight_region` of the shown part of the map
    (``sign``) with the protocol's ``top_k_percent``, ``smoothing_px`` and
    ``min_region_percent``.
    """
    if settings.top_k_percent is None:
        return None
    values = signed_part(check_map(attribution, "attribution"), settings.sign)
    return highlight_region(
        values,
        settings.top_k_percent,
        smoothing_px=settings.smoothing_px,
        min_region_percent=settings.min_region_percent,
    )


def _scale(values: NDArray[np.floating], side: int, interpolation: str) -> NDArray[np.float32]:
    """Scale a ``(H, W)`` float map up to ``side × side`` (float32, not clipped)."""
    small = np.ascontiguousarray(values, dtype=np.float32)
    if small.shape == (side, side):
        return small
    resized = Image.fromarray(small).resize((side, side), _RESAMPLE[interpolation])
    return np.asarray(resized, dtype=np.float32)


def _scale_mask(mask: NDArray[np.bool_], side: int, interpolation: str) -> NDArray[np.bool_]:
    """Scale a mask up; smooth interpolations round its staircase edges (threshold 0.5)."""
    small = Image.fromarray(mask.astype(np.uint8) * np.uint8(255))
    return np.asarray(small.resize((side, side), _RESAMPLE[interpolation])) >= 128


def _gray(image: NDArray[np.float64], settings: Rendering) -> NDArray[np.uint8]:
    """The image area's grey levels, ``canvas_px × canvas_px`` uint8."""
    big = _scale(image, settings.canvas_px, settings.interpolation)
    return np.round(np.clip(big, 0.0, 1.0) * 255.0).astype(np.uint8)


def _base(gray: NDArray[np.uint8], layout: Layout) -> NDArray[np.uint8]:
    canvas = np.empty((layout.side + layout.panel, layout.side, 3), dtype=np.uint8)
    canvas[: layout.side] = gray[..., None]
    canvas[layout.side :] = PANEL_BG
    return canvas


def _heat(attribution: NDArray[np.float64], settings: Rendering) -> NDArray[np.uint8]:
    """The heat map on the canvas as indices 0..255 into the colormap (and :func:`_tables`)."""
    norm = normalize_attribution(
        attribution, sign=settings.sign, percentile=settings.normalize_percentile
    )
    big = np.clip(_scale(norm, settings.canvas_px, settings.interpolation), 0.0, 1.0)
    return np.round(big * np.float32(255.0)).astype(np.uint8)


def _shrink(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """One step of binary erosion (4-neighbour cross, outside the canvas counts as empty)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def _grow(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """One step of binary dilation (4-neighbour cross)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _edges(mask: NDArray[np.bool_], layout: Layout) -> tuple[NDArray[np.bool_], ...]:
    """The outline: ``layout.outline`` pixels inside the region's edge, ``layout.halo`` outside."""
    core, grown = mask, mask
    for _ in range(layout.outline):
        core = _shrink(core)
    for _ in range(layout.halo):
        grown = _grow(grown)
    return mask & ~core, grown & ~mask


@dataclass(frozen=True)
class RenderedViews:
    """The three PNGs of one stimulus (:func:`render_views`).

    Attributes
    ----------
    stimulus : bytes
        :func:`render_stimulus`.
    original : bytes
        :func:`render_original`.
    overlay : bytes or None
        :func:`render_overlay_layer`; None for the no-map control.
    """

    stimulus: bytes
    original: bytes
    overlay: bytes | None


def render_original(image: object, settings: Rendering) -> bytes:
    """The image alone, on the same canvas as :func:`render_stimulus`, panel blank.

    Parameters
    ----------
    image : array-like
        ``(H, W)`` grayscale image in [0, 1] (or uint8 pixels).
    settings : Rendering
        The protocol's rendering rules (``canvas_px`` and ``interpolation`` matter here).

    Returns
    -------
    bytes
        RGB PNG, pixel-aligned with every stimulus of the same settings.
    """
    layout = Layout(settings.canvas_px)
    return encode_png(_base(_gray(check_image(image), settings), layout))


def render_arrays(
    image: object,
    attribution: object | None,
    settings: Rendering,
    *,
    uncertainty: object | None = None,
    uncertainty_threshold: float = 0.5,
    cues: Cues | None = None,
) -> NDArray[np.uint8]:
    """The pixels of :func:`render_stimulus`, before PNG encoding.

    Same parameters as :func:`render_stimulus`.

    Returns
    -------
    numpy.ndarray
        ``(canvas_px + panel_height(canvas_px), canvas_px, 3)`` uint8 RGB; the
        PNG of :func:`render_stimulus` decodes to exactly this array.
    """
    pixels = check_image(image)
    original = _base(_gray(pixels, settings), Layout(settings.canvas_px))
    if attribution is None:
        return original
    attr = check_map(attribution, "attribution", shape=pixels.shape)
    index = _heat(attr, settings)
    return _stimulus(original, attr, index, settings, uncertainty, uncertainty_threshold, cues)


def _stimulus(
    original: NDArray[np.uint8],
    attr: NDArray[np.float64],
    index: NDArray[np.uint8],
    settings: Rendering,
    uncertainty: object | None,
    uncertainty_threshold: float,
    cues: Cues | None,
) -> NDArray[np.uint8]:
    layout = Layout(settings.canvas_px)
    lut, blend, _ = _tables(settings.colormap, settings.opacity, settings.opacity_floor)
    side = layout.side
    base = Image.fromarray(original[:side])
    colours = Image.fromarray(np.take(lut, index, axis=0))
    weight = Image.fromarray(np.take(blend, index))
    canvas = np.empty_like(original)
    canvas[:side] = np.asarray(Image.composite(colours, base, weight))
    area = canvas[:side]
    hatch = uncertainty is not None and (cues is None or cues.show_uncertainty)
    if hatch:
        unc = check_map(uncertainty, "uncertainty", shape=attr.shape)
        uncertain = _scale_mask(unc >= uncertainty_threshold, side, settings.interpolation)
        dark, light = hatch_stripes(uncertain, layout)
        area[dark], area[light] = 0, 255
    region = outline_region(attr, settings)
    if region is not None:
        inner, outer = _edges(_scale_mask(region, side, settings.interpolation), layout)
        area[outer], area[inner] = 0, 255
    canvas[side:] = panel_pixels(
        settings.canvas_px,
        settings.colormap,
        settings.top_k_percent,
        settings.colorbar_legend,
        hatch,
    )
    return canvas


def _layer(index: NDArray[np.uint8], settings: Rendering) -> bytes:
    """The overlay layer as a palette PNG: the heat-map indices, the panel transparent."""
    layout = Layout(settings.canvas_px)
    _, _, rgba = _tables(settings.colormap, settings.opacity, settings.opacity_floor)
    layer = np.zeros((layout.side + layout.panel, layout.side), dtype=np.uint8)
    layer[: layout.side] = index
    return encode_palette_png(layer, rgba)


def render_stimulus(
    image: object,
    attribution: object | None,
    settings: Rendering,
    *,
    uncertainty: object | None = None,
    uncertainty_threshold: float = 0.5,
    cues: Cues | None = None,
) -> bytes:
    """Render one stimulus: image, heat map, top-k outline, uncertainty hatching, colour bar.

    Parameters
    ----------
    image : array-like
        ``(H, W)`` grayscale image in [0, 1] (or uint8 pixels).
    attribution : array-like or None
        ``(H, W)`` attribution map; ``None`` (the no-explanation control) gives
        :func:`render_original`.
    settings : Rendering
        Colormap, sign, normalisation percentile, top-k outline and its
        smoothing and minimum region size, interpolation, canvas size, opacity
        and its floor, and legend; see the module documentation for the layout.
    uncertainty : array-like, optional
        ``(H, W)`` map of the attribution's uncertainty (e.g. its standard
        deviation across noise samples, on the normalised scale).
    uncertainty_threshold : float, default 0.5
        Pixels with ``uncertainty >= uncertainty_threshold`` are hatched.
    cues : Cues, optional
        When given and ``cues.show_uncertainty`` is false, no hatching is drawn.

    Returns
    -------
    bytes
        RGB PNG with chunks IHDR, IDAT, IEND only; same inputs, same bytes.

    Raises
    ------
    InputError
        On shape mismatches, NaN values, an image outside [0, 1] or an unknown colormap.
    """
    return encode_png(
        render_arrays(
            image,
            attribution,
            settings,
            uncertainty=uncertainty,
            uncertainty_threshold=uncertainty_threshold,
            cues=cues,
        )
    )


def render_overlay_layer(
    attribution: object, settings: Rendering, *, image_shape: tuple[int, int] | None = None
) -> bytes:
    """The heat map alone as an RGBA PNG, for a viewer's own opacity slider.

    The layer has the stimulus's size (image area plus panel): heat-map
    colours, with the opacity ramp at full opacity as alpha (255 at the strongest
    attribution), transparent where the attribution is at or below
    ``opacity_floor`` and over the panel. Stacked over :func:`render_original`
    at the viewer's opacity ``opacity`` it gives :func:`render_stimulus`'s heat
    map (without outline and hatching).

    Parameters
    ----------
    attribution : array-like
        ``(H, W)`` attribution map.
    settings : Rendering
        The protocol's rendering rules.
    image_shape : tuple of int, optional
        The image's ``(H, W)``; when given, the map must match it.

    Returns
    -------
    bytes
        Palette PNG with chunks IHDR, PLTE, tRNS, IDAT, IEND only; it decodes
        to RGBA (``Image.convert("RGBA")``).
    """
    attr = check_map(attribution, "attribution", shape=image_shape)
    return _layer(_heat(attr, settings), settings)


def render_views(
    image: object,
    attribution: object | None,
    settings: Rendering,
    *,
    uncertainty: object | None = None,
    uncertainty_threshold: float = 0.5,
    cues: Cues | None = None,
) -> RenderedViews:
    """:func:`render_stimulus`, :func:`render_original` and :func:`render_overlay_layer` at once.

    The same bytes as the three calls, for less work: the image is scaled and
    the heat map coloured once. Same parameters as :func:`render_stimulus`.
    """
    pixels = check_image(image)
    canvas = _base(_gray(pixels, settings), Layout(settings.canvas_px))
    original = encode_png(canvas)
    if attribution is None:
        return RenderedViews(stimulus=original, original=original, overlay=None)
    attr = check_map(attribution, "attribution", shape=pixels.shape)
    index = _heat(attr, settings)
    stimulus = _stimulus(canvas, attr, index, settings, uncertainty, uncertainty_threshold, cues)
    return RenderedViews(
        stimulus=encode_png(stimulus),
        original=original,
        overlay=_layer(index, settings),
    )
