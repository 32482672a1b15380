"""Figures: PNGs of the expected size; the forest plot reads the margin from the hypothesis."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from studyhub.evidence import figures


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as im:
        return im.size


def test_margin_is_read_from_the_hypothesis_text() -> None:
    assert figures.margin_of("non-inferiority (margin 0.5)") == 0.5
    assert figures.margin_of("non-inferiority (margin 1e-1)") == 0.1
    assert figures.margin_of("superiority") is None


def test_forest_grows_with_endpoints_and_draws_open_intervals() -> None:
    one = {
        "endpoint": "a",
        "comparison": "ig - control",
        "hypothesis": "superiority",
        "verdict": "PASS",
        "estimate": 0.8,
        "ci_low": 0.3,
        "ci_high": None,
    }
    two = {**one, "endpoint": "b", "hypothesis": "non-inferiority (margin 0.5)", "ci_high": 1.2}
    w1, h1 = _size(figures.forest_figure([one]))
    _, h2 = _size(figures.forest_figure([one, two]))
    assert h2 > h1 and w1 > 200


def test_montage_has_one_row_per_arm() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    _, h_two = _size(figures.montage_figure([("a", png), ("b", png)]))
    _, h_three = _size(figures.montage_figure([("a", png), ("b", png), ("c", png)]))
    assert h_three > h_two


def test_distribution_covers_every_level() -> None:
    answers = pd.DataFrame({"item": "usefulness", "arm": ["a", "a", "b"], "value": [1.0, 5.0, 3.0]})
    w, h = _size(figures.distribution_figure(answers, "usefulness"))
    assert w > 300 and h > 150
