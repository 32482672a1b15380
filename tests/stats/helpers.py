"""Helpers the statistics tests share: reference data, printed precision, simulated designs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from tests.paths import DATA

REFERENCE = DATA / "reference"


def expected(folder: str) -> dict[str, Any]:
    """The ``expected.json`` of a reference data set in tests/data/reference/<folder>/."""
    return json.loads((REFERENCE / folder / "expected.json").read_text())


def printed(actual: float, value: float, decimals: int) -> bool:
    """True when ``actual`` rounds to ``value`` as printed with ``decimals`` decimals."""
    return abs(actual - value) <= 0.5 * 10.0**-decimals + 1e-12


def crossed(
    rng: np.random.Generator,
    n_arms: int = 3,
    n_raters: int = 6,
    n_cases: int = 12,
    effects: tuple[float, ...] = (0.0, 0.3, 0.5),
    sd_rater: float = 0.5,
    sd_case: float = 0.7,
) -> pd.DataFrame:
    """A simulated arm x rater x case design with crossed random rater and case effects."""
    a, r, c = np.meshgrid(np.arange(n_arms), np.arange(n_raters), np.arange(n_cases), indexing="ij")
    y = (
        np.asarray(effects)[a]
        + rng.normal(0, sd_rater, n_raters)[r]
        + rng.normal(0, sd_case, n_cases)[c]
        + rng.normal(0, 1, a.shape)
    )
    return pd.DataFrame(
        {
            "arm": np.array(["control", "gradcam", "ig"])[a.ravel()],
            "score": y.ravel(),
            "reader": [f"r{i}" for i in r.ravel()],
            "case": c.ravel(),
        }
    )


def depression() -> pd.DataFrame:
    """Hollander & Wolfe (1973, p. 29f) depression scores: the ?wilcox.test example of R."""
    return pd.read_csv(REFERENCE / "wilcoxon_signed_rank_depression" / "paired_data.csv")
