"""Fixtures of the studyhub.cases tests: a folder of real photographs with a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cases.helpers import REAL, otsu_mask, write_csv


@pytest.fixture
def real_images(tmp_path: Path) -> dict[str, np.ndarray]:
    """Real photographs written as PNG into tmp_path/data/images (masks in masks/)."""
    arrays = {}
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for name, loader, *_ in REAL:
        pixels = loader()
        arrays[name] = pixels
        Image.fromarray(pixels).save(tmp_path / "data" / "images" / f"{name}.png")
        Image.fromarray(otsu_mask(pixels)).save(tmp_path / "data" / "masks" / f"{name}.png")
    return arrays


@pytest.fixture
def real_manifest(tmp_path: Path, real_images: dict[str, np.ndarray]) -> Path:
    """A manifest of the real photographs with labels, masks, splits and metadata."""
    header = [
        "image_path",
        "label",
        "mask_path",
        "split",
        "site",
        "scanner",
        "dose",
        "slices",
        "contrast",
    ]
    rows = [
        [
            f"images/{name}.png",
            label,
            f"masks/{name}.png" if has_mask else "",
            split,
            site,
            scanner,
            dose,
            slices,
            contrast,
        ]
        for name, _, label, site, scanner, dose, slices, contrast, split, has_mask in REAL
    ]
    return write_csv(tmp_path / "data" / "manifest.csv", header, rows)
