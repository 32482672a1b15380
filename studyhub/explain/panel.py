"""The panel under every rendered image: colour bar, "less"/"more", legend and key row.

The panel depends only on the look (canvas size, colormap, outline percentage,
legend, whether hatching is shown), never on the map, so it is drawn once per
look and reused (:func:`panel_pixels`). Geometry scales from the 448-pixel design
(:class:`Layout`). Text uses Pillow's built-in default font (FreeType rendering
of the bundled face; the bitmap default where Pillow lacks FreeType).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from studyhub.explain.colormaps import colormap_lut

__all__ = ["PANEL_BG", "Layout", "hatch_stripes", "panel_height", "panel_pixels"]

PANEL_BG = (255, 255, 255)
_INK = (33, 33, 33)
_HATCH_TEXT = "Hatched: map uncertain"


def panel_height(canvas_px: int) -> int:
    """Height in pixels of the colour-bar panel under a ``canvas_px`` image."""
    return Layout(canvas_px).panel


class Layout:
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


def hatch_stripes(mask: NDArray[np.bool_], layout: Layout) -> tuple[NDArray[np.bool_], ...]:
    """Dark and light diagonal stripes over ``mask`` (the uncertainty hatching)."""
    phase = _phase(mask.shape, layout.hatch_period)
    dark = mask & (phase < layout.hatch_width)
    light = mask & (phase >= layout.hatch_width) & (phase < 2 * layout.hatch_width)
    return dark, light


@lru_cache(maxsize=8)
def _phase(shape: tuple[int, ...], period: int) -> NDArray[np.intp]:
    yy, xx = np.indices(shape)
    phase = (xx + yy) % period
    phase.setflags(write=False)
    return phase


def _swatches(
    canvas: NDArray[np.uint8],
    layout: Layout,
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
            dark, light = hatch_stripes(inside, layout)
            patch[dark], patch[light] = 0, 255
        labels.append((x + size + layout.gap, text))
        x += size + 3 * layout.gap + round(font.getlength(text))
    return labels


@lru_cache(maxsize=32)
def panel_pixels(
    side: int, colormap: str, top_k: float | None, legend: str, hatch: bool
) -> NDArray[np.uint8]:
    layout = Layout(side)
    canvas = np.empty((layout.side + layout.panel, layout.side, 3), dtype=np.uint8)
    canvas[:] = PANEL_BG
    lut = colormap_lut(colormap)
    width = layout.bar_x1 - layout.bar_x0
    if width > 2:
        ramp = np.round(np.linspace(0.0, 255.0, width)).astype(np.intp)
        y0, y1 = layout.bar_y0, layout.bar_y0 + layout.bar_h
        canvas[y0:y1, layout.bar_x0 : layout.bar_x1] = lut[ramp][None, :, :]
    font = _font(layout.font_px)
    labels = _swatches(canvas, layout, font, outline=top_k, hatch=hatch)
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
    for i, line in enumerate(_wrap(legend, font, layout.side - 2 * layout.margin)):
        y = layout.legend_y0 + i * layout.line_h
        draw.text((layout.side // 2, y), line, fill=_INK, font=font, anchor="ma")
    for x, text in labels:
        draw.text((x, layout.key_y0), text, fill=_INK, font=font, anchor="la")
    panel = np.asarray(img)[layout.side :].copy()
    panel.setflags(write=False)
    return panel


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
