"""Tests of studyhub.explain.maps.highlight_region: the outlined region, smoothed and cleaned."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import measure

from studyhub.errors import InputError
from studyhub.explain.maps import highlight_region, top_k_mask


def speckled(seed: int = 0, side: int = 64) -> np.ndarray:
    """A pixel-wise map as Integrated Gradients draws it: a true blob under salt noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    blob = np.exp(-((yy - 20.0) ** 2 + (xx - 40.0) ** 2) / 60.0)
    return np.maximum(blob * rng.random((side, side)) + 0.9 * (rng.random((side, side)) > 0.97), 0)


def parts(mask: np.ndarray) -> list[int]:
    labels = measure.label(mask, connectivity=2)
    return sorted(np.bincount(labels.ravel())[1:].tolist())


def test_without_smoothing_or_minimum_it_is_the_pixel_top_k() -> None:
    a = speckled()
    np.testing.assert_array_equal(highlight_region(a, 10), top_k_mask(a, 10))


def test_pixel_top_k_of_a_speckled_map_has_islands_and_the_region_has_none() -> None:
    a = speckled()
    raw = parts(top_k_mask(a, 10))
    assert raw.count(1) >= 20  # the problem: dozens of one-pixel islands
    region = highlight_region(a, 10, smoothing_px=1.0, min_region_percent=1.0)
    sizes = parts(region)
    assert min(sizes) >= math.ceil(0.01 * 64 * 64)  # 41 pixels: the documented minimum
    assert len(sizes) <= 3
    assert region[20, 40]  # the blob's centre is inside
    assert 0.04 * a.size <= region.sum() <= 0.14 * a.size  # about, not exactly, 10%


def test_the_largest_part_stays_when_every_part_is_small() -> None:
    a = np.zeros((32, 32))
    a[5, 5], a[20, 20], a[21, 20] = 1.0, 2.0, 2.0
    region = highlight_region(a, 10, min_region_percent=5.0)  # minimum 52 pixels
    assert region[20, 20] and region[21, 20] and not region[5, 5]
    assert not highlight_region(np.zeros((8, 8)), 10, min_region_percent=5.0).any()


def test_small_holes_are_filled_and_the_border_background_is_not() -> None:
    a = np.zeros((20, 20))
    a[4:14, 4:14] = 1.0
    a[8, 8] = 0.0  # a pinhole in the region
    region = highlight_region(a, 40, min_region_percent=1.0)  # minimum 4 pixels
    assert region[8, 8]
    assert not region[0, 0] and not region[19, 19]
    assert region.sum() == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing_px": -1.0}, r"smoothing_px is -1.0; pass 0 \(no smoothing\) or more"),
        ({"min_region_percent": 100.0}, r"min_region_percent is 100.0; pass a value in \[0, 100\)"),
    ],
)
def test_bad_settings_name_value_and_fix(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        highlight_region(speckled(), 10, **kwargs)
