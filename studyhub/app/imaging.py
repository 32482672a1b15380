"""Image work for the viewer, in memory: opacity, zoom, clicks to image fractions, marks.

Every PNG made here is fresh, with no text chunks or other metadata: it carries
nothing beyond pixels, as the blinding contract asks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

__all__ = ["View", "click_to_image", "compose_overlay", "draw_marks", "zoom_view"]


def compose_overlay(original_png: bytes, overlay_png: bytes, opacity: float) -> bytes:
    """Blend the overlay (RGBA) over the original at ``opacity``.

    Parameters
    ----------
    original_png : bytes
        The plain image (any mode Pillow reads).
    overlay_png : bytes
        The overlay alone; its own alpha channel is scaled by ``opacity``. It is
        resized to the original's size when the two differ.
    opacity : float
        0 shows the original only, 1 the overlay at its full alpha; values
        outside [0, 1] are clipped.

    Returns
    -------
    bytes
        An RGB PNG, without metadata.
    """
    alpha_scale = min(1.0, max(0.0, float(opacity)))
    with Image.open(io.BytesIO(original_png)) as raw_base:
        base = raw_base.convert("RGBA")
    with Image.open(io.BytesIO(overlay_png)) as raw_top:
        top = raw_top.convert("RGBA")
    if top.size != base.size:
        top = top.resize(base.size, Image.Resampling.BILINEAR)
    alpha = top.getchannel("A").point(lambda a: round(a * alpha_scale))
    top.putalpha(alpha)
    blended = Image.alpha_composite(base, top).convert("RGB")
    buf = io.BytesIO()
    blended.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class View:
    """The part of the image area a zoomed view shows, in fractions of its side.

    ``left`` and ``top`` locate the square's corner and ``size`` its side
    (``1 / zoom``); the full view is ``View(0, 0, 1)``.
    """

    left: float
    top: float
    size: float

    @classmethod
    def centred(cls, zoom: float, cx: float, cy: float) -> View:
        """The view of ``zoom`` (>= 1) centred as near ``(cx, cy)`` as the image allows."""
        size = 1.0 / max(1.0, float(zoom))
        half = size / 2.0
        left = min(max(float(cx) - half, 0.0), 1.0 - size)
        top = min(max(float(cy) - half, 0.0), 1.0 - size)
        return cls(left, top, size)

    @property
    def full(self) -> bool:
        return self.size >= 1.0


def zoom_view(png: bytes, view: View) -> bytes:
    """The square image area of a rendered stimulus, cropped to ``view`` and scaled back up.

    A stimulus is a square image area with the colour-bar panel below it; the
    panel is dropped from a zoomed view (the page shows the legend in words).
    The full view returns ``png`` unchanged. The result is a PNG without
    metadata, of the image area's size.
    """
    if view.full:
        return png
    with Image.open(io.BytesIO(png)) as raw:
        img = raw.convert("RGB")
    side = img.width
    x0, y0 = round(view.left * side), round(view.top * side)
    span = max(1, round(view.size * side))
    box = (x0, y0, min(side, x0 + span), min(side, y0 + span))
    zoomed = img.crop(box).resize((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    zoomed.save(buf, format="PNG")
    return buf.getvalue()


def click_to_image(
    click: dict[str, float], shown_width: int, shown_height: int, view: View
) -> tuple[float, float] | None:
    """Where a click on the shown image falls in the image area, in fractions (x, y).

    Parameters
    ----------
    click : dict
        ``x``, ``y`` (pixels from the top-left corner) and the ``width``,
        ``height`` the browser drew the image at.
    shown_width, shown_height : int
        The pixel size of the PNG that was shown (its image area is the top
        ``shown_width`` x ``shown_width`` square; anything below is the panel).
    view : View
        The zoomed view that was shown.

    Returns
    -------
    tuple of float or None
        ``(x, y)`` in [0, 1] of the whole image area, or None for a click on
        the panel or outside the image.
    """
    try:
        fx = float(click["x"]) / float(click["width"])
        fy = float(click["y"]) / float(click["height"]) * shown_height / shown_width
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0):
        return None
    return (view.left + fx * view.size, view.top + fy * view.size)


def draw_marks(png: bytes, marks: list[dict[str, Any]], view: View) -> Image.Image:
    """The shown image with the cue marks inside ``view`` drawn as numbered rings.

    Correct cues are blue rings, misleading cues orange rings with a cross
    (shape as well as colour, for colour-blind raters).
    """
    with Image.open(io.BytesIO(png)) as raw:
        img = raw.convert("RGB")
    draw = ImageDraw.Draw(img)
    side = img.width
    radius = max(4, side // 40)
    for n, mark in enumerate(marks, 1):
        fx = (float(mark["x"]) - view.left) / view.size
        fy = (float(mark["y"]) - view.top) / view.size
        if not (0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0):
            continue
        x, y = fx * side, fy * side
        colour = _MARK_COLOURS.get(str(mark.get("tag")), (255, 255, 255))
        box = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(box, outline=(0, 0, 0), width=max(3, radius // 2))
        draw.ellipse(box, outline=colour, width=max(2, radius // 3))
        if mark.get("tag") == "misleading":
            r = radius * 0.6
            draw.line((x - r, y - r, x + r, y + r), fill=colour, width=2)
            draw.line((x - r, y + r, x + r, y - r), fill=colour, width=2)
        draw.text((x + radius + 2, y - radius), str(n), fill=colour)
    return img


# Blue and orange: told apart by the common colour-vision deficiencies.
_MARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "correct": (0, 114, 178),
    "misleading": (230, 159, 0),
}
