"""Tests of studyhub.explain.png: pixels in, the same pixels out, and nothing else in the bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from studyhub.errors import InputError
from studyhub.explain.png import encode_palette_png, encode_png, png_chunks


def test_rgb_and_rgba_round_trip_through_pillow() -> None:
    rng = np.random.default_rng(0)
    for channels, mode in ((3, "RGB"), (4, "RGBA")):
        pixels = rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)
        data = encode_png(pixels)
        with Image.open(io.BytesIO(data)) as img:
            assert img.mode == mode and not img.info
            np.testing.assert_array_equal(np.asarray(img), pixels)
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        assert encode_png(pixels.copy()) == data


def test_palette_png_decodes_to_the_tables_rgba() -> None:
    rng = np.random.default_rng(1)
    index = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    table = rng.integers(0, 256, (256, 4), dtype=np.uint8)
    data = encode_palette_png(index, table)
    assert png_chunks(data) == ["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]
    with Image.open(io.BytesIO(data)) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGBA")), table[index])


def test_bad_pixels_name_shape_dtype_and_fix() -> None:
    with pytest.raises(InputError, match=r"pixels have shape \(4, 4\) and dtype uint8; pass"):
        encode_png(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(InputError, match=r"dtype float64; pass \(H, W, 3\) or \(H, W, 4\) uint8"):
        encode_png(np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match=r"palette has shape \(16, 4\)"):
        encode_palette_png(np.zeros((4, 4), dtype=np.uint8), np.zeros((16, 4), dtype=np.uint8))
