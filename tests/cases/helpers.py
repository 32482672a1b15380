"""Helpers of the studyhub.cases tests: real photographs and manifest writing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from skimage import data as skdata
from skimage.filters import threshold_otsu

LABELS = ["benign", "malignant", "normal"]

# (name, loader, label, site, scanner, dose, slices, contrast, split, with mask).
# Real photographs shipped with scikit-image (no download needed).
REAL = [
    ("camera", skdata.camera, "benign", "north", "007", "1.5", "12", "true", "test", True),
    ("coins", skdata.coins, "malignant", "north", "012", "2.25", "30", "false", "test", True),
    ("moon", skdata.moon, "normal", "south", "007", "0.5", "8", "TRUE", "train", True),
    ("page", skdata.page, "benign", "south", "3", "1", "4", "false", "test", False),
    ("astronaut", skdata.astronaut, "malignant", "east", "12", "3e-1", "16", "true", "test", True),
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a CSV manifest (a helper, not a fixture)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def otsu_mask(pixels: np.ndarray) -> np.ndarray:
    """Integer label mask (0 background, 1 object) of a real image, at its size."""
    gray = pixels.mean(axis=2) if pixels.ndim == 3 else pixels
    return (gray > threshold_otsu(gray)).astype(np.uint8)
