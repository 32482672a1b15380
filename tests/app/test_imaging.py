"""Blending the overlay in memory: the ends of the opacity scale, sizes, no metadata."""

from __future__ import annotations

import io

from PIL import Image

from studyhub.app.imaging import compose_overlay


def _png(mode: str, size: tuple[int, int], color: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _pixel(png: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(png)) as im:
        return tuple(im.convert("RGB").getpixel((0, 0)))  # type: ignore[arg-type]


BASE = _png("RGB", (4, 4), (0, 0, 200))
TOP = _png("RGBA", (4, 4), (200, 100, 0, 255))


def test_opacity_zero_is_the_original_and_one_the_overlay() -> None:
    assert _pixel(compose_overlay(BASE, TOP, 0.0)) == (0, 0, 200)
    assert _pixel(compose_overlay(BASE, TOP, 1.0)) == (200, 100, 0)
    assert _pixel(compose_overlay(BASE, TOP, 0.5)) == (100, 50, 100)
    assert _pixel(compose_overlay(BASE, TOP, 7.0)) == (200, 100, 0)  # clipped


def test_a_transparent_overlay_leaves_the_original_and_sizes_are_matched() -> None:
    clear = _png("RGBA", (2, 2), (255, 255, 255, 0))
    out = compose_overlay(BASE, clear, 1.0)
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (4, 4) and im.mode == "RGB"
        assert not im.info or set(im.info) <= {"dpi"}  # no text chunks
    assert _pixel(out) == (0, 0, 200)
