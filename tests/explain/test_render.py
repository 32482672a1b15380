"""Tests of studyhub.explain.render: one standard look, clean bytes, honest colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from studyhub.errors import InputError
from studyhub.explain.render import (
    COLORMAPS,
    colormap_lut,
    normalize_attribution,
    panel_height,
    png_chunks,
    render_original,
    render_overlay_layer,
    render_stimulus,
    top_k_mask,
)
from studyhub.protocol.schema import Cues, Rendering

SETTINGS = Rendering(canvas_px=128)
BLOCKS = {"interpolation": "nearest", "smoothing_px": 0.0, "min_region_percent": 0.0}
"""Pixel blocks, pixel-wise outline: every canvas pixel maps to one image pixel (tests by hand)."""
GRAY = np.full((16, 16), 0.5)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.mode == "P":
            return np.asarray(img.convert("RGBA"))
        return np.asarray(img)


def mode_and_size(data: bytes) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as img:
        return img.mode, img.size


def blob(shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((yy - 5.0) ** 2 + (xx - 9.0) ** 2) / 8.0)


MAPS = {
    "blob": blob(),
    "signed": np.random.default_rng(0).normal(size=(16, 16)),
    "negative": -np.ones((16, 16)),
    "zero": np.zeros((16, 16)),
    "constant": np.full((16, 16), 3.0),
    "huge": blob() * 1e12,
    "single_peak": np.pad(np.ones((1, 1)), ((3, 12), (7, 8))),
}


# --- encoding --------------------------------------------------------------------------


def test_chunks_are_exactly_ihdr_idat_iend() -> None:
    renders = [
        render_stimulus(GRAY, MAPS["blob"], SETTINGS, uncertainty=blob()),
        render_stimulus(GRAY, None, SETTINGS),
        render_original(GRAY, SETTINGS),
        render_overlay_layer(MAPS["blob"], SETTINGS),
    ]
    for data in renders[:3]:
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    # The overlay is a palette image: its colour tables, nothing else.
    assert png_chunks(renders[3]) == ["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]
    for data in renders:
        with Image.open(io.BytesIO(data)) as img:
            assert not img.info or set(img.info) == {"transparency"}


def test_png_chunks_sees_metadata_that_pillow_would_write() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "arm=integrated_gradients")
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info, dpi=(72, 72))
    chunks = png_chunks(buffer.getvalue())
    assert "tEXt" in chunks and "pHYs" in chunks
    with pytest.raises(InputError, match="not a PNG"):
        png_chunks(b"GIF89a")


def test_every_arm_has_the_same_size_mode_and_encoding() -> None:
    expected = ("RGB", (128, 128 + panel_height(128)))
    shapes = {name: mode_and_size(render_stimulus(GRAY, a, SETTINGS)) for name, a in MAPS.items()}
    shapes["none"] = mode_and_size(render_stimulus(GRAY, None, SETTINGS))
    shapes["original"] = mode_and_size(render_original(GRAY, SETTINGS))
    shapes["uncertain"] = mode_and_size(
        render_stimulus(GRAY, MAPS["blob"], SETTINGS, uncertainty=np.ones((16, 16)))
    )
    assert set(shapes.values()) == {expected}
    layer = decode(render_overlay_layer(MAPS["blob"], SETTINGS))
    assert layer.shape == (expected[1][1], expected[1][0], 4)


def test_same_input_same_bytes() -> None:
    a = render_stimulus(GRAY, MAPS["signed"], SETTINGS, uncertainty=blob())
    b = render_stimulus(GRAY.copy(), MAPS["signed"].copy(), SETTINGS, uncertainty=blob())
    assert a == b
    assert render_original(GRAY, SETTINGS) == render_stimulus(GRAY, None, SETTINGS)


# --- colours and normalisation ----------------------------------------------------------


def test_normalize_attribution_by_hand() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(normalize_attribution(a, percentile=100), [[0.25, 0.5], [0.75, 1]])
    signed = np.array([[-4.0, 2.0], [1.0, 0.0]])
    # positive part [0, 2, 1, 0] / 2; magnitude [4, 2, 1, 0] / 4
    np.testing.assert_allclose(normalize_attribution(signed, percentile=100), [[0, 1], [0.5, 0]])
    np.testing.assert_allclose(
        normalize_attribution(signed, sign="absolute", percentile=100), [[1, 0.5], [0.25, 0]]
    )
    # The 50th percentile of [1, 2, 3, 4] is 2.5: values above it clip to 1.
    np.testing.assert_allclose(normalize_attribution(a, percentile=50), [[0.4, 0.8], [1, 1]])
    # One positive pixel of 100: the 99th percentile is 0, so the maximum is used.
    one = np.zeros((10, 10))
    one[3, 3] = 5.0
    assert normalize_attribution(one, percentile=99).max() == 1.0
    assert not normalize_attribution(-one).any()


@pytest.mark.parametrize("colormap", COLORMAPS)
def test_heat_map_colours_come_from_the_colormap(colormap: str) -> None:
    settings = Rendering(
        canvas_px=64,
        colormap=colormap,
        opacity=1.0,
        opacity_floor=0.0,
        top_k_percent=None,
        normalize_percentile=100,
        interpolation="nearest",
    )
    # Four column blocks of 1, 2, 3, 4, normalised by the maximum: 0.25, 0.5, 0.75, 1.
    a = np.repeat(np.arange(1.0, 5.0), 4)[None, :].repeat(16, axis=0)
    pixels = decode(render_stimulus(GRAY, a, settings)).astype(float)
    lut = colormap_lut(colormap).astype(float)
    # The rightmost block (normalised 1.0, opacity 1) is the colormap's top colour.
    assert tuple(pixels[10, 63]) == tuple(lut[255])
    # Opacity rises with the value: 0.25 -> a quarter of lut[64] over the grey (128), by hand.
    expected = 128 + 64 / 255 * (lut[64] - 128)  # index 64 = round(0.25 * 255), opacity 64/255
    np.testing.assert_allclose(pixels[10, 0], expected, atol=1.0)
    expected = 128 + 191 / 255 * (lut[191] - 128)  # 0.75 -> index 191
    np.testing.assert_allclose(pixels[10, 40], expected, atol=1.0)


def test_opacity_rises_from_the_floor_and_leaves_weak_evidence_untouched() -> None:
    settings = Rendering(canvas_px=64, top_k_percent=None, normalize_percentile=100, **BLOCKS)
    # Column blocks normalised to 0.1, 0.2, 0.6, 1.0; floor 0.2, opacity 0.5.
    a = np.repeat(np.array([0.1, 0.2, 0.6, 1.0]), 4)[None, :].repeat(16, axis=0)
    pixels = decode(render_stimulus(GRAY, a, settings)).astype(float)
    assert np.all(pixels[:64, :32] == 128)  # at or below the floor: the image as it is
    lut = colormap_lut(settings.colormap).astype(float)
    np.testing.assert_allclose(pixels[5, 63], 128 + 0.5 * (lut[255] - 128), atol=1.0)
    half = 0.5 * (0.6 - 0.2) / (1 - 0.2)  # opacity * rise: 0.25
    np.testing.assert_allclose(pixels[5, 40], 128 + half * (lut[153] - 128), atol=1.0)
    layer = decode(render_overlay_layer(a, settings))
    assert np.all(layer[:64, :32, 3] == 0)
    assert layer[5, 63, 3] == 255 and abs(int(layer[5, 40, 3]) - 128) <= 1  # rise 0.5


def test_percentile_clips_an_outlier() -> None:
    settings = Rendering(
        canvas_px=64, opacity=1.0, top_k_percent=None, normalize_percentile=90, **BLOCKS
    )
    a = blob()
    a[0, 0] = 1e6  # one outlier does not wash out the rest of the map
    pixels = decode(render_stimulus(GRAY, a, settings))
    lut = colormap_lut(settings.colormap)
    assert tuple(pixels[0, 0]) == tuple(lut[255])
    peak = pixels[5 * 4 + 1, 9 * 4 + 1]  # the blob's centre, 4 canvas pixels per image pixel
    assert tuple(peak) == tuple(lut[255])  # clipped at the 90th percentile


def test_zero_evidence_leaves_the_image_untouched() -> None:
    settings = Rendering(canvas_px=128, top_k_percent=None, **BLOCKS)
    a = np.zeros((16, 16))
    a[0:4, 0:4] = 1.0
    stim, orig = decode(render_stimulus(GRAY, a, settings)), decode(render_original(GRAY, settings))
    assert np.array_equal(stim[32:128], orig[32:128])  # rows below the evidence: aligned
    assert not np.array_equal(stim[:32, :32], orig[:32, :32])


# --- outline, hatching, legend -------------------------------------------------------------


def extremes(pixels: np.ndarray) -> tuple[int, int]:
    area = pixels[:128].reshape(-1, 3)
    return int(np.all(area == 255, axis=1).sum()), int(np.all(area == 0, axis=1).sum())


def test_top_k_outline_present_when_set_and_absent_when_null() -> None:
    # no heat colour: only the outline can be white/black
    base = {"canvas_px": 128, "opacity": 0.0, **BLOCKS}
    with_outline = decode(render_stimulus(GRAY, blob(), Rendering(**base, top_k_percent=10)))
    without = decode(render_stimulus(GRAY, blob(), Rendering(**base, top_k_percent=None)))
    white, black = extremes(with_outline)
    assert white > 0 and black > 0
    assert extremes(without) == (0, 0)
    assert np.array_equal(without[:128], decode(render_original(GRAY, SETTINGS))[:128])
    # The outline hugs the top-10% pixels: every white pixel lies on the top-k set.
    top = np.kron(top_k_mask(blob(), 10), np.ones((8, 8), dtype=bool))
    assert np.all(top[np.all(with_outline[:128] == 255, axis=2)])


def test_top_k_mask_counts_and_ties() -> None:
    a = np.array([[3.0, 1.0], [3.0, 0.0]])
    np.testing.assert_array_equal(
        top_k_mask(a, 25), [[True, False], [False, False]]
    )  # row-major tie
    np.testing.assert_array_equal(top_k_mask(a, 99), [[True, True], [True, False]])  # zeros never
    with pytest.raises(InputError, match="top_k_percent is 100"):
        top_k_mask(a, 100)


def test_uncertainty_hatching() -> None:
    settings = Rendering(canvas_px=128, opacity=0.0, top_k_percent=None, **BLOCKS)
    high = np.zeros((16, 16))
    high[8:, 8:] = 0.9
    hatched = decode(render_stimulus(GRAY, blob(), settings, uncertainty=high))
    white, black = extremes(hatched)
    assert white > 0 and black > 0
    # Only the uncertain quarter is hatched.
    assert np.all(hatched[:64, :128] == 128) and np.all(hatched[:128, :64] == 128)
    calm = decode(render_stimulus(GRAY, blob(), settings, uncertainty=high * 0.5))
    assert extremes(calm) == (0, 0)
    off = decode(
        render_stimulus(GRAY, blob(), settings, uncertainty=high, cues=Cues(show_uncertainty=False))
    )
    assert extremes(off) == (0, 0)


def test_panel_holds_colour_bar_and_legend_and_is_blank_in_the_original() -> None:
    stim = decode(render_stimulus(GRAY, blob(), SETTINGS))
    orig = decode(render_original(GRAY, SETTINGS))
    assert np.all(orig[128:] == 255)
    panel = stim[128:]
    lut = colormap_lut(SETTINGS.colormap)
    bar_row = panel[panel_height(128) // 8 + 1]
    assert tuple(lut[0]) in {tuple(c) for c in bar_row} and tuple(lut[255]) in {
        tuple(c) for c in bar_row
    }
    other = Rendering(canvas_px=128, colorbar_legend="Brighter = matters more")
    changed = decode(render_stimulus(GRAY, blob(), other))
    assert changed.shape == stim.shape
    assert not np.array_equal(changed[128:], panel)
    assert np.array_equal(changed[:128], stim[:128])


def test_overlay_layer_is_transparent_without_evidence() -> None:
    a = np.zeros((16, 16))
    a[0:2, 0:2] = 1.0
    settings = Rendering(canvas_px=128, **BLOCKS)
    layer = decode(render_overlay_layer(a, settings, image_shape=(16, 16)))
    assert layer.shape == (128 + panel_height(128), 128, 4)
    assert np.all(layer[:16, :16, 3] == 255)
    assert int((layer[..., 3] > 0).sum()) == 16 * 16  # only the 2×2 image pixels
    assert tuple(layer[0, 0, :3]) == tuple(colormap_lut(settings.colormap)[255])


def test_demo_stimulus_renders_at_protocol_size() -> None:
    from studyhub.demo.synth import generate

    case = next(c for c in generate(8, split="test", seed=0) if c.label == "crack")
    a = (case.mask == 1).astype(float)
    data = render_stimulus(case.image, a, Rendering(), uncertainty=np.zeros((64, 64)))
    assert mode_and_size(data) == ("RGB", (448, 448 + panel_height(448)))
    chunks = png_chunks(data)
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks[1:-1]) == {"IDAT"}


# --- errors ----------------------------------------------------------------------------


def test_errors_name_problem_value_and_fix() -> None:
    with pytest.raises(
        InputError, match=r"attribution has shape \(8, 8\) but the image has shape \(16, 16\)"
    ):
        render_stimulus(GRAY, np.zeros((8, 8)), SETTINGS)
    nan = blob()
    nan[2, 3] = np.nan
    with pytest.raises(InputError, match=r"attribution holds 1 NaN .*first at \(2, 3\)"):
        render_stimulus(GRAY, nan, SETTINGS)
    with pytest.raises(InputError, match=r"uncertainty has shape \(4, 4\)"):
        render_stimulus(GRAY, blob(), SETTINGS, uncertainty=np.zeros((4, 4)))
    with pytest.raises(InputError, match="colormap is 'jet'; use one of plasma, YlOrRd"):
        jet = Rendering.model_construct(**{**SETTINGS.model_dump(), "colormap": "jet"})
        render_stimulus(GRAY, blob(), jet)
    with pytest.raises(
        InputError, match=r"image intensities span \[2, 2\]; scale them to \[0, 1\]"
    ):
        render_original(GRAY * 4, SETTINGS)
    with pytest.raises(InputError, match="image has shape"):
        render_original(np.zeros((2, 2, 3)), SETTINGS)


# --- readable maps: interpolation, smoothed outline, one call for the three views ---------


def test_render_views_equals_the_three_renderings() -> None:
    from studyhub.explain.render import render_views

    for settings in (SETTINGS, Rendering(canvas_px=128, **BLOCKS)):
        views = render_views(GRAY, MAPS["signed"], settings, uncertainty=blob())
        assert views.stimulus == render_stimulus(GRAY, MAPS["signed"], settings, uncertainty=blob())
        assert views.original == render_original(GRAY, settings)
        assert views.overlay == render_overlay_layer(MAPS["signed"], settings)
    control = render_views(GRAY, None, SETTINGS)
    assert control.stimulus == control.original and control.overlay is None


def test_render_arrays_is_what_the_png_decodes_to() -> None:
    from studyhub.explain.render import render_arrays

    pixels = render_arrays(GRAY, blob(), SETTINGS, uncertainty=blob())
    np.testing.assert_array_equal(
        decode(render_stimulus(GRAY, blob(), SETTINGS, uncertainty=blob())), pixels
    )


def test_interpolation_smooths_small_images_and_keeps_the_canvas() -> None:
    from studyhub.explain.render import render_arrays

    ramp = np.tile(np.linspace(0.0, 1.0, 16), (16, 1))
    looks = {
        how: render_arrays(ramp, None, Rendering(canvas_px=128, interpolation=how))[:128]
        for how in ("nearest", "bilinear", "bicubic")
    }
    # nearest: 16 grey levels in 8-pixel blocks; the others interpolate between them
    assert len(np.unique(looks["nearest"][64, :, 0])) == 16
    assert len(np.unique(looks["bilinear"][64, :, 0])) > 64
    assert len(np.unique(looks["bicubic"][64, :, 0])) > 64
    assert {v.shape for v in looks.values()} == {(128, 128, 3)}


def test_default_outline_draws_regions_not_islands() -> None:
    from skimage import measure

    from studyhub.explain.render import render_arrays
    from tests.explain.test_maps import speckled

    image = np.full((64, 64), 0.5)
    settings = Rendering(canvas_px=448, opacity=0.0)  # only the outline is white or black
    canvas = render_arrays(image, speckled(), settings)[:448]
    white = np.all(canvas == 255, axis=2)
    rings = np.bincount(measure.label(white, connectivity=2).ravel())[1:]
    assert 1 <= len(rings) <= 3  # one outline per region
    pixelwise = Rendering(canvas_px=448, opacity=0.0, **BLOCKS)
    islands = np.all(render_arrays(image, speckled(), pixelwise)[:448] == 255, axis=2)
    assert len(np.bincount(measure.label(islands, connectivity=2).ravel())[1:]) > 20
