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


def stimuli(
    rng: np.random.Generator,
    *,
    n_raters: int = 4,
    n_cases: int = 12,
    arms: tuple[str, ...] = ("a", "b"),
    likert: bool = True,
) -> pd.DataFrame:
    """Cases shown under each arm (a unit ``case|arm``), rated by every rater.

    Sorted by case, arm and rater, with labels that sort in that order, so the
    units and their cases appear in the same order however a statistic orders
    them (first appearance or sorted); ratings share a case effect across arms.
    """
    rows = []
    rater_eff = rng.normal(0, 0.4, n_raters)
    for c in range(n_cases):
        case_eff = rng.normal(0, 0.9)
        for k, arm in enumerate(arms):
            arm_eff = case_eff + 0.3 * k + rng.normal(0, 0.3)
            for r in range(n_raters):
                y = 3 + arm_eff + rater_eff[r] + rng.normal(0, 0.7)
                rows.append(
                    {
                        "case": f"c{c:03d}",
                        "arm": arm,
                        "unit": f"c{c:03d}|{arm}",
                        "rater": f"r{r}",
                        "value": float(np.clip(np.rint(y), 1, 5)) if likert else float(y),
                    }
                )
    return pd.DataFrame(rows)


def resample_clusters(
    data: pd.DataFrame, counts: np.ndarray, *, clusters: str, units: str
) -> pd.DataFrame:
    """The rows of a cluster resample: cluster ``k`` (in sorted order) repeated
    ``counts[k]`` times with all its rows, its units renamed per copy."""
    labels = sorted(data[clusters].unique())
    parts = []
    for k, label in enumerate(labels):
        block = data[data[clusters] == label]
        for copy in range(int(counts[k])):
            parts.append(block.assign(**{units: block[units].astype(str) + f"#{copy}"}))
    return pd.concat(parts, ignore_index=True)
