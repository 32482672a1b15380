"""Composing the overlay on the original image in memory, at a chosen opacity.

The result is a fresh PNG with no text chunks or other metadata: it carries
nothing beyond pixels, as the blinding contract asks.
"""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["compose_overlay"]


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
