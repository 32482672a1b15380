"""The viewer's image work: opacity blending, zoom, clicks to image fractions, drawn marks."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from studyhub.app.imaging import View, click_to_image, compose_overlay, draw_marks, zoom_view


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


def _stimulus_like() -> bytes:
    """100 x 100 image area (left half black, right half white) over a 30-pixel grey panel."""
    img = Image.new("RGB", (100, 130), (128, 128, 128))
    img.paste((0, 0, 0), (0, 0, 50, 100))
    img.paste((255, 255, 255), (50, 0, 100, 100))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("zoom", "cx", "cy", "expected"),
    [
        (1.0, 0.9, 0.9, View(0.0, 0.0, 1.0)),
        (2.0, 0.5, 0.5, View(0.25, 0.25, 0.5)),
        (2.0, 0.9, 0.1, View(0.5, 0.0, 0.5)),  # clamped to the image
        (4.0, 0.0, 1.0, View(0.0, 0.75, 0.25)),
        (0.5, 0.5, 0.5, View(0.0, 0.0, 1.0)),  # below 1: the whole image
    ],
)
def test_views_are_centred_and_clamped_inside_the_image(
    zoom: float, cx: float, cy: float, expected: View
) -> None:
    assert View.centred(zoom, cx, cy) == expected


def test_zoom_crops_the_image_area_drops_the_panel_and_keeps_the_size() -> None:
    png = _stimulus_like()
    assert zoom_view(png, View(0.0, 0.0, 1.0)) == png
    right = zoom_view(png, View.centred(2.0, 0.75, 0.5))  # the white half only
    with Image.open(io.BytesIO(right)) as im:
        assert im.size == (100, 100)
        assert im.convert("L").getextrema() == (255, 255)
        assert set(im.info) <= {"dpi"}  # no text chunks
    left = zoom_view(png, View.centred(2.0, 0.25, 0.5))
    with Image.open(io.BytesIO(left)) as im:
        assert im.convert("L").getextrema() == (0, 0)


def test_a_click_maps_to_the_whole_image_through_display_scale_and_zoom() -> None:
    # shown at 200 x 260 (twice the PNG's 100 x 130); the image area is the top 200 x 200
    click = {"x": 50, "y": 25, "width": 200, "height": 260}
    assert click_to_image(click, 100, 130, View(0.0, 0.0, 1.0)) == pytest.approx((0.25, 0.125))
    # the same click on a 2x view of the right half: 0.5 + 0.25 * 0.5, 0 + 0.125 * 0.5
    zoomed = View(0.5, 0.0, 0.5)
    assert click_to_image(click, 100, 130, zoomed) == pytest.approx((0.625, 0.0625))
    # on a zoomed view (100 x 100, no panel) y scales by the square shape
    square = {"x": 100, "y": 100, "width": 200, "height": 200}
    assert click_to_image(square, 100, 100, zoomed) == pytest.approx((0.75, 0.25))
    assert (
        click_to_image({"x": 50, "y": 250, "width": 200, "height": 260}, 100, 130, zoomed) is None
    )
    assert click_to_image({"x": 1}, 100, 130, zoomed) is None


def test_marks_are_drawn_where_they_point_and_only_inside_the_view() -> None:
    png = _stimulus_like()
    marks = [{"x": 0.25, "y": 0.5, "tag": "correct"}, {"x": 0.75, "y": 0.5, "tag": "misleading"}]
    drawn = draw_marks(png, marks, View(0.0, 0.0, 1.0))
    radius = max(4, 100 // 40)
    ring_left = drawn.getpixel((25 - radius, 50))  # on the first ring's left edge
    assert ring_left != (0, 0, 0) or drawn.getpixel((25 - radius + 1, 50)) != (0, 0, 0)
    assert drawn.getpixel((75, 50)) != (255, 255, 255)  # the misleading cross's centre
    # a view of the left half shows the first mark only, at the view's scale
    zoomed = draw_marks(zoom_view(png, View(0.0, 0.0, 0.5)), marks, View(0.0, 0.0, 0.5))
    with Image.open(io.BytesIO(zoom_view(png, View(0.0, 0.0, 0.5)))) as plain:
        plain_rgb = plain.convert("RGB")
    changed = [
        (x, y)
        for x in range(100)
        for y in range(100)
        if zoomed.getpixel((x, y)) != plain_rgb.getpixel((x, y))
    ]
    assert changed
    xs = [x for x, _ in changed]
    ys = [y for _, y in changed]
    # the first mark (0.25, 0.5) lands at (50, 100) of the 2x view: its ring is around there
    assert min(xs) >= 50 - radius - 3 and max(ys) <= 100
    assert min(ys) >= 100 - radius - 12  # the ring and its number label
