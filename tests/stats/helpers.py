"""Helpers the statistics tests share: reference data, printed precision, simulated designs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

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


def case_jackknife(
    data: pd.DataFrame, statistic: Any, *, raters: float | None, confidence: float = 0.95
) -> tuple[float, float]:
    """The interval a cluster jackknife over ``data["case"]`` should give, written out:
    ``statistic(frame)`` on all cases and with each case left out, Fisher's z for
    ``raters`` raters per unit (``-0.5 log(1 - r)`` when None), ``z -/+ t(C-1) se``.
    """
    cases = sorted(data["case"].unique())
    full = statistic(data)
    drops = np.array([statistic(data[data["case"] != c]) for c in cases])

    def z(r: np.ndarray | float) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        if raters is None:
            return -0.5 * np.log(1 - r)
        return 0.5 * np.log((1 + (raters - 1) * r) / (1 - r))

    def back(v: float) -> float:
        if raters is None:
            return float(1 - np.exp(-2 * v))
        return float((np.exp(2 * v) - 1) / (np.exp(2 * v) + raters - 1))

    n = len(cases)
    se = np.sqrt((n - 1) / n * ((z(drops) - z(drops).mean()) ** 2).sum())
    q = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return back(float(z(full)) - q * se), back(float(z(full)) + q * se)


class RaterPanel:
    """A fixed panel of raters reading random cases shown under arms (agreement simulations).

    Rater ``r`` rates case ``c`` under arm ``a`` as ``mu_a + severity_r +
    benefit_ra + case_c + case_arm_ca + noise`` (case SD 0.8, case x arm SD 0.3,
    noise SD 1); the severities (SD 0.5) and the rater x arm benefits (SD 0.3)
    are drawn once, so every simulated study has the same raters and new cases:
    the population an interval that resamples cases generalises to.
    """

    sd_case, sd_case_arm, sd_noise = 0.8, 0.3, 1.0

    def __init__(self, seed: int, n_raters: int, effects: tuple[float, ...] = (0.0, 0.5)) -> None:
        rng = np.random.default_rng(seed)
        self.mu = np.asarray(effects, dtype=float)
        self.severity = rng.normal(0, 0.5, n_raters)
        self.benefit = rng.normal(0, 0.3, (self.mu.size, n_raters))

    @property
    def rater_arm(self) -> np.ndarray:
        """``mu_a + severity_r + benefit_ra``, shape (arms, raters)."""
        return self.mu[:, None] + self.severity[None, :] + self.benefit

    def ratings(self, rng: np.random.Generator, n_cases: int) -> np.ndarray:
        """Latent ratings of one study, shape (arms, raters, cases)."""
        n_arms, n_raters = self.benefit.shape
        return (
            self.rater_arm[:, :, None]
            + rng.normal(0, self.sd_case, n_cases)[None, None, :]
            + rng.normal(0, self.sd_case_arm, (n_arms, 1, n_cases))
            + rng.normal(0, self.sd_noise, (n_arms, n_raters, n_cases))
        )

    @staticmethod
    def long(y: np.ndarray) -> pd.DataFrame:
        """Long data of (arms, raters, cases) ratings: unit = case x arm, clusters = cases."""
        a, r, c = np.meshgrid(*(np.arange(n) for n in y.shape), indexing="ij")
        return pd.DataFrame(
            {
                "case": c.ravel(),
                "unit": (c * y.shape[0] + a).ravel(),
                "rater": r.ravel(),
                "y": y.ravel(),
            }
        )
