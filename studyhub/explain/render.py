"""One standard rendering for every arm: the image, its heat map, a colour bar and a legend.

Raters compare maps, not styles, so every arm of a study goes through
:func:`render_stimulus` with the protocol's :class:`~studyhub.protocol.schema.Rendering`.

Layout (``s = canvas_px``)
--------------------------
The PNG is ``s`` pixels wide and ``s + panel_height(s)`` tall, RGB, 8 bits:

* **image area** ``s × s`` at the top: the grayscale image upscaled with
  *nearest-neighbour* resampling (no invented detail: every screen block is one
  camera pixel, and the heat map, the outline and the hatching line up with the
  pixels they describe). The heat map is upscaled the same way.
* **heat map**: the attribution's positive part (``sign: positive``) or its
  magnitude (``sign: absolute``), divided by its ``normalize_percentile``-th
  percentile and clipped to [0, 1] (:func:`normalize_attribution`), looked up in
  the colormap (matplotlib's table, 256 entries) and blended over the image at
  ``opacity``. The blend fades in over the lowest quarter of the scale (weight
  ``min(1, v / 0.25)``), so faint evidence does not paint the dark end of the
  colormap over the whole image and pixels with no evidence stay untinted.
* **top-k outline** (``top_k_percent``): the edge of the top-k% pixels
  (:func:`top_k_mask`), drawn white inside and black outside so it reads on
  any colour.
* **uncertainty hatching**: where ``uncertainty >= uncertainty_threshold``,
  diagonal black-and-white stripes.
* **panel** below the image, white: a horizontal colour bar with the words
  "less" and "more" at its ends, the plain-words ``colorbar_legend`` (wrapped to
  two lines) and a key row for the outline and hatching when they are shown.

:func:`render_original` draws the same canvas with no overlay and a blank
panel; :func:`render_overlay_layer` draws only the heat map, opaque, on a
transparent canvas of the same size, for viewers with their own opacity slider.

Encoding: every PNG holds exactly the chunks IHDR, IDAT..., IEND
(:func:`png_chunks`): no text, time, physical-size or colour-profile chunks,
so no name or date travels in the bytes. The same input gives the same bytes.
Text uses Pillow's built-in default font (FreeType rendering of the bundled
face; the bitmap default where Pillow lacks FreeType).
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from studyhub.errors import InputError
from studyhub.explain.maps import (
    check_image,
    check_map,
    normalize_attribution,
    signed_part,
    top_k_mask,
)
from studyhub.protocol.schema import Cues, Rendering

__all__ = [
    "COLORMAPS",
    "check_map",
    "colormap_lut",
    "normalize_attribution",
    "panel_height",
    "png_chunks",
    "render_original",
    "render_overlay_layer",
    "render_stimulus",
    "top_k_mask",
]

COLORMAPS: tuple[str, ...] = ("cividis", "viridis", "magma", "inferno")
"""Perceptually uniform, colour-blind-safe colormaps a rendering may use."""

_PANEL_BG = (255, 255, 255)
_INK = (33, 33, 33)
_KEEP_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HATCH_TEXT = "Hatched: map uncertain"
_FADE_IN = 0.25
"""Normalised value at which the overlay reaches full ``opacity`` (it fades in below)."""


@lru_cache(maxsize=8)
def colormap_lut(name: str) -> NDArray[np.uint8]:
    """The colormap as a ``(256, 3)`` uint8 table (matplotlib's values).

    Raises
    ------
    InputError
        If ``name`` is not one of :data:`COLORMAPS`.
    """
    if name not in COLORMAPS:
        raise InputError(
            f"colormap is {name!r}; use one of {', '.join(COLORMAPS)} "
            "(perceptually uniform and colour-blind safe)"
        )
    from matplotlib import colormaps

    table = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    lut = np.round(table * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def panel_height(canvas_px: int) -> int:
    """Height in pixels of the colour-bar panel under a ``canvas_px`` image."""
    return _Layout(canvas_px).panel


class _Layout:
    """Pixel geometry of the panel, scaled from the 448-pixel design."""

    def __init__(self, canvas_px: int) -> None:
        s = canvas_px / 448.0
        self.side = canvas_px
        self.margin = max(3, round(10 * s))
        self.bar_h = max(4, round(14 * s))
        self.font_px = max(8, round(14 * s))
        self.line_h = round(self.font_px * 1.3)
        self.gap = max(2, round(6 * s))
        self.outline = max(1, round(2 * s))
        self.halo = max(1, round(1 * s))
        self.hatch_period = max(4, round(10 * s))
        self.hatch_width = max(1, round(2 * s))
        label_w = round(self.font_px * 2.6)
        self.bar_x0 = self.margin + label_w
        self.bar_x1 = canvas_px - self.margin - label_w
        self.bar_y0 = canvas_px + self.margin
        self.legend_y0 = self.bar_y0 + self.bar_h + self.gap
        self.key_y0 = self.legend_y0 + 2 * self.line_h + self.gap
        self.panel = self.key_y0 + self.line_h + self.margin - canvas_px


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _upscale(values: NDArray[np.uint8], side: int) -> NDArray[np.uint8]:
    resized = Image.fromarray(values).resize((side, side), Image.Resampling.NEAREST)
    return np.asarray(resized)


def _upscale_bool(mask: NDArray[np.bool_], side: int) -> NDArray[np.bool_]:
    return _upscale(mask.astype(np.uint8) * 255, side) > 127


def _base(image: NDArray[np.float64], layout: _Layout) -> NDArray[np.uint8]:
    gray = _upscale(np.round(image * 255.0).astype(np.uint8), layout.side)
    canvas = np.empty((layout.side + layout.panel, layout.side, 3), dtype=np.uint8)
    canvas[: layout.side] = gray[..., None]
    canvas[layout.side :] = _PANEL_BG
    return canvas


def _heat(
    attribution: NDArray[np.float64], settings: Rendering, side: int
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Colours and coverage (0..1, fading in up to :data:`_FADE_IN`) on the canvas."""
    lut = colormap_lut(settings.colormap)
    norm = normalize_attribution(
        attribution, sign=settings.sign, percentile=settings.normalize_percentile
    )
    index = _upscale(np.round(norm * 255.0).astype(np.uint8), side)
    coverage = np.where(index > 0, np.minimum(index / (255.0 * _FADE_IN), 1.0), 0.0)
    return lut[index], coverage


def _edges(mask: NDArray[np.bool_], layout: _Layout) -> tuple[NDArray[np.bool_], ...]:
    inner = mask & ~ndimage.binary_erosion(mask, iterations=layout.outline)
    outer = ndimage.binary_dilation(mask, iterations=layout.halo) & ~mask
    return inner, outer


def _hatch(mask: NDArray[np.bool_], layout: _Layout) -> tuple[NDArray[np.bool_], ...]:
    yy, xx = np.indices(mask.shape)
    phase = (xx + yy) % layout.hatch_period
    dark = mask & (phase < layout.hatch_width)
    light = mask & (phase >= layout.hatch_width) & (phase < 2 * layout.hatch_width)
    return dark, light


def _swatches(
    canvas: NDArray[np.uint8],
    layout: _Layout,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    *,
    outline: float | None,
    hatch: bool,
) -> list[tuple[int, str]]:
    """Draw the key-row swatches into ``canvas``, left to right; return (x, text) labels."""
    keys = [] if outline is None else [("outline", f"Outline: top {outline:g}%")]
    keys += [("hatch", _HATCH_TEXT)] if hatch else []
    y0, size, x = layout.key_y0 + 1, max(4, layout.line_h - 2), layout.margin
    labels: list[tuple[int, str]] = []
    for kind, text in keys:
        patch = canvas[y0 : y0 + size, x : x + size]
        patch[:] = 160
        inside = np.zeros(patch.shape[:2], dtype=bool)
        if kind == "outline":
            inside[2:-2, 2:-2] = True
            patch[ndimage.binary_dilation(inside) & ~inside] = 0
            patch[inside & ~ndimage.binary_erosion(inside)] = 255
        else:
            inside[1:-1, 1:-1] = True
            dark, light = _hatch(inside, layout)
            patch[dark], patch[light] = 0, 255
        labels.append((x + size + layout.gap, text))
        x += size + 3 * layout.gap + round(font.getlength(text))
    return labels


def _panel(
    canvas: NDArray[np.uint8],
    settings: Rendering,
    layout: _Layout,
    *,
    hatch: bool,
) -> Image.Image:
    lut = colormap_lut(settings.colormap)
    width = layout.bar_x1 - layout.bar_x0
    if width > 2:
        ramp = np.round(np.linspace(0.0, 255.0, width)).astype(np.intp)
        y0, y1 = layout.bar_y0, layout.bar_y0 + layout.bar_h
        canvas[y0:y1, layout.bar_x0 : layout.bar_x1] = lut[ramp][None, :, :]
    font = _font(layout.font_px)
    labels = _swatches(canvas, layout, font, outline=settings.top_k_percent, hatch=hatch)
    img = Image.fromarray(canvas, mode="RGB")
    draw = ImageDraw.Draw(img)
    if width > 2:
        draw.rectangle(
            (layout.bar_x0 - 1, layout.bar_y0 - 1, layout.bar_x1, layout.bar_y0 + layout.bar_h),
            outline=_INK,
        )
    mid = layout.bar_y0 + layout.bar_h // 2
    draw.text((layout.margin, mid), "less", fill=_INK, font=font, anchor="lm")
    draw.text((layout.side - layout.margin, mid), "more", fill=_INK, font=font, anchor="rm")
    for i, line in enumerate(
        _wrap(settings.colorbar_legend, font, layout.side - 2 * layout.margin)
    ):
        y = layout.legend_y0 + i * layout.line_h
        draw.text((layout.side // 2, y), line, fill=_INK, font=font, anchor="ma")
    for x, text in labels:
        draw.text((x, layout.key_y0), text, fill=_INK, font=font, anchor="la")
    return img


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels, at most two lines (the second ends in "…")."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > 2:
        lines = [lines[0], lines[1] + " …"]
    return lines


def _encode(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False, compress_level=6)
    return _strip(buffer.getvalue())


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(_PNG_SIGNATURE):
        raise InputError("data is not a PNG (its signature is missing); pass PNG bytes")
    out, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise InputError(f"PNG chunk {kind!r} at byte {pos} is truncated; re-render it")
        out.append((kind, data[pos:end]))
        pos = end
    return out


def _strip(data: bytes) -> bytes:
    kept = [raw for kind, raw in _chunks(data) if kind in _KEEP_CHUNKS]
    return _PNG_SIGNATURE + b"".join(kept)


def png_chunks(data: bytes) -> list[str]:
    """List the chunk types of a PNG in file order, e.g. ``["IHDR", "IDAT", "IEND"]``.

    Raises
    ------
    InputError
        If ``data`` is not a PNG or a chunk is truncated.
    """
    for kind, raw in _chunks(data):
        crc = struct.unpack(">I", raw[-4:])[0]
        if zlib.crc32(raw[4:-4]) != crc:
            raise InputError(f"PNG chunk {kind.decode('latin-1')!r} fails its CRC; re-render it")
    return [kind.decode("latin-1") for kind, _ in _chunks(data)]


def render_original(image: object, settings: Rendering) -> bytes:
    """The image alone, on the same canvas as :func:`render_stimulus`, panel blank.

    Parameters
    ----------
    image : array-like
        ``(H, W)`` grayscale image in [0, 1] (or uint8 pixels).
    settings : Rendering
        The protocol's rendering rules (only ``canvas_px`` matters here).

    Returns
    -------
    bytes
        RGB PNG, pixel-aligned with every stimulus of the same settings.
    """
    layout = _Layout(settings.canvas_px)
    return _encode(Image.fromarray(_base(check_image(image), layout), mode="RGB"))


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
        Colormap, sign, normalisation percentile, top-k outline, canvas size,
        opacity and legend; see the module documentation for the layout.
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
        RGB PNG with chunks IHDR, IDAT..., IEND only; same inputs, same bytes.

    Raises
    ------
    InputError
        On shape mismatches, NaN values, an image outside [0, 1] or an unknown colormap.
    """
    if attribution is None:
        return render_original(image, settings)
    pixels = check_image(image)
    attr = check_map(attribution, "attribution", shape=pixels.shape)
    layout = _Layout(settings.canvas_px)
    canvas = _base(pixels, layout)
    area = canvas[: layout.side].astype(np.float64)
    colours, coverage = _heat(attr, settings, layout.side)
    alpha = settings.opacity * coverage[..., None]
    area = np.round(area * (1.0 - alpha) + colours * alpha).astype(np.uint8)
    hatch = uncertainty is not None and (cues is None or cues.show_uncertainty)
    if hatch:
        unc = check_map(uncertainty, "uncertainty", shape=pixels.shape)
        dark, light = _hatch(_upscale_bool(unc >= uncertainty_threshold, layout.side), layout)
        area[dark], area[light] = 0, 255
    if settings.top_k_percent is not None:
        top = top_k_mask(signed_part(attr, settings.sign), settings.top_k_percent)
        inner, outer = _edges(_upscale_bool(top, layout.side), layout)
        area[outer], area[inner] = 0, 255
    canvas[: layout.side] = area
    return _encode(_panel(canvas, settings, layout, hatch=hatch))


def render_overlay_layer(
    attribution: object, settings: Rendering, *, image_shape: tuple[int, int] | None = None
) -> bytes:
    """The heat map alone as an RGBA PNG, for a viewer's own opacity slider.

    The layer has the stimulus's size (image area plus panel): heat-map
    colours, fully opaque where the normalised attribution is at least 0.25,
    fading in below it as in :func:`render_stimulus`, and transparent where it
    is 0 and over the panel. Stack it over :func:`render_original` with the
    viewer's opacity.

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
        RGBA PNG with chunks IHDR, IDAT..., IEND only.
    """
    attr = check_map(attribution, "attribution", shape=image_shape)
    layout = _Layout(settings.canvas_px)
    colours, coverage = _heat(attr, settings, layout.side)
    layer = np.zeros((layout.side + layout.panel, layout.side, 4), dtype=np.uint8)
    layer[: layout.side, :, :3] = np.where(coverage[..., None] > 0.0, colours, 0)
    layer[: layout.side, :, 3] = np.round(coverage * 255.0).astype(np.uint8)
    return _encode(Image.fromarray(layer, mode="RGBA"))
