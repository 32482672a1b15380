"""Tests of studyhub.stats._balanced: the exact balanced REML equals compare_arms, and the
default arm comparison's size and coverage by simulation with rater x arm and case x arm
variation (the hard case)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.stats._balanced import _pieces, _tree_solution, balanced_mixed_model_test
from studyhub.stats.compare import compare_arms
from studyhub.stats.multiplicity import adjust_pvalue_matrix

TERMS = ("rater_by_arm", "case_by_arm", "rater_by_case")
MODELS = {
    "default": {},
    "no_rater_by_case": {"rater_by_case": False},
    "no_case_by_arm": {"case_by_arm": False},
    "no_rater_by_arm": {"rater_by_arm": False},
    "none": dict.fromkeys(TERMS, False),
}
THRESHOLDS = np.array([-1.5, -0.5, 0.5, 1.5])  # latent -> Likert 1..5


@dataclass(frozen=True)
class Design:
    """A simulated fully crossed study: sizes, SDs and the rating scale."""

    arms: int
    raters: int
    cases: int
    likert: bool
    sd_rater_arm: float
    sd_case_arm: float
    sd_rater_case: float = 0.3
    sd_rater: float = 0.5
    sd_case: float = 0.8
    sd_residual: float = 1.0

    def simulate(self, rng: np.random.Generator, n: int, effects: np.ndarray) -> np.ndarray:
        """Ratings of shape (n, arms, raters, cases)."""
        a, r, c = self.arms, self.raters, self.cases
        y = (
            rng.normal(0, self.sd_residual, (n, a, r, c))
            + rng.normal(0, self.sd_rater, (n, 1, r, 1))
            + rng.normal(0, self.sd_case, (n, 1, 1, c))
            + rng.normal(0, self.sd_rater_arm, (n, a, r, 1))
            + rng.normal(0, self.sd_case_arm, (n, a, 1, c))
            + rng.normal(0, self.sd_rater_case, (n, 1, r, c))
            + effects[None, :, None, None]
        )
        if self.likert:  # thresholding a latent rating, as raters use a 1-5 scale
            return 1.0 + np.sum(y[..., None] > THRESHOLDS, axis=-1)
        return y

    def true_differences(self, effects: np.ndarray) -> np.ndarray:
        """Population mean rating of each arm minus arm 0's (over raters and cases)."""
        if not self.likert:
            return effects[1:] - effects[0]
        sd = math.sqrt(
            self.sd_residual**2
            + self.sd_rater**2
            + self.sd_case**2
            + self.sd_rater_arm**2
            + self.sd_case_arm**2
            + self.sd_rater_case**2
        )
        means = 1.0 + stats.norm.cdf((effects[:, None] - THRESHOLDS[None, :]) / sd).sum(axis=1)
        return means[1:] - means[0]


def _frame(y: np.ndarray) -> pd.DataFrame:
    a, r, c = (g.ravel() for g in np.meshgrid(*map(range, y.shape), indexing="ij"))
    return pd.DataFrame({"arm": a, "rating": y.ravel(), "rater": [f"r{i}" for i in r], "case": c})


def _compare(y: np.ndarray, **terms: bool) -> pd.DataFrame:
    res = compare_arms(
        _frame(y),
        arm="arm",
        rating="rating",
        rater="rater",
        case="case",
        reference=0,
        hypothesis="two_sided",
        multiplicity="none",
        **terms,
    )
    assert res.details["converged"], res.details["convergence"]
    return res.contrasts


def _assert_same(table: pd.DataFrame, est: np.ndarray, se: np.ndarray, df: np.ndarray, p) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(table["estimate"], est, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["se"], se, rtol=1e-5)
    np.testing.assert_allclose(table["df"], df, rtol=1e-4)
    np.testing.assert_allclose(table["p_value"], p, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ equal to compare_arms


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("seed", range(8))
def test_balanced_test_equals_compare_arms(seed: int, model: str) -> None:
    # The exact closed-form REML used by power_simulation and the simulations below
    # equals the fitted model, including seeds where variance components are zero
    # (pooled mean squares and degrees of freedom) and Likert ratings.
    rng = np.random.default_rng(seed)
    sds = [0.0, 0.3, 0.8]
    design = Design(
        arms=3,
        raters=5,
        cases=8,
        likert=seed % 4 == 1,
        sd_rater_arm=sds[seed % 3],
        sd_case_arm=sds[(seed + 1) % 3],
        sd_rater_case=sds[(seed + 2) % 3],
        sd_rater=0.0 if seed % 2 else 0.6,
        sd_case=0.3 * (seed % 3),
    )
    y = design.simulate(rng, 1, np.array([0.0, 0.3, 0.6]))
    terms = MODELS[model]
    table = _compare(y[0], **terms)
    est, se, df, p = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided", **terms)
    _assert_same(table, est[0], se[0], df[0], p[0])


def test_main_effect_at_zero_under_two_interactions_is_solved_numerically() -> None:
    # Rater variance at zero with rater x arm and rater x case in the model: the REML
    # maximum has no closed form; the numerical solution still equals the fit.
    hard = []
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        design = Design(3, 5, 8, False, 0.6, 0.3, sd_rater_case=0.6, sd_rater=0.0)
        y = design.simulate(rng, 1, np.zeros(3))
        ss, df = _pieces(y)
        _, flagged = _tree_solution(
            ss / df, df, ["rater", "case", "rater:arm", "case:arm", "rater:case", "residual"]
        )
        if flagged[0]:
            hard.append(y)
    assert len(hard) >= 3
    for y in hard[:3]:
        table = _compare(y[0])
        est, se, df_, p = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided")
        _assert_same(table, est[0], se[0], df_[0], p[0])


def test_non_inferiority_shift() -> None:
    y = Design(2, 6, 10, False, 0.3, 0.3).simulate(np.random.default_rng(3), 1, np.zeros(2))
    res = compare_arms(
        _frame(y[0]),
        arm="arm",
        rating="rating",
        rater="rater",
        case="case",
        reference=0,
        hypothesis="non_inferiority",
        margin=0.4,
    )
    _, _, _, p = balanced_mixed_model_test(y, null=-0.4, hypothesis="non_inferiority")
    assert res.contrasts["p_value"].iloc[0] == pytest.approx(p[0, 0], rel=1e-4)


# ------------------------------------------------------------------ size and coverage

# The hard case: raters differ in their benefit (rater x arm SD 0.2-0.3), arms help
# more on some cases (case x arm SD 0.2-0.3) and raters find some cases harder (rater
# x case SD 0.3); Likert (thresholded latent) and continuous; 2 and 4 arms; 6 x 30 to
# 20 x 100. 4000 studies per design: the Monte Carlo SE of a 5 % rate is 0.0034 (one
# contrast; averaged over the contrasts of 4 arms it is computed from the per-study
# means, which share the reference arm).
SCENARIOS = {
    "6x30_2arms_continuous": Design(2, 6, 30, False, 0.3, 0.2),
    "6x30_4arms_likert": Design(4, 6, 30, True, 0.2, 0.3),
    "12x60_2arms_likert": Design(2, 12, 60, True, 0.2, 0.2),
    "20x100_4arms_likert": Design(4, 20, 100, True, 0.3, 0.3),
    "20x100_2arms_continuous": Design(2, 20, 100, False, 0.2, 0.3),
}
N_SIMS = 4000


def _rate_and_mcse(hits: np.ndarray) -> tuple[float, float]:
    """Mean over studies and contrasts, and its Monte Carlo SE from the per-study means
    (contrasts of one study share its reference arm, so they are not independent)."""
    per_study = hits.reshape(hits.shape[0], -1).mean(axis=1)
    return float(per_study.mean()), float(per_study.std(ddof=1) / math.sqrt(per_study.size))


def _batches(design: Design, rng: np.random.Generator, effects: np.ndarray, **terms: bool):  # type: ignore[no-untyped-def]
    """The balanced test over N_SIMS studies, in batches of at most 4e6 ratings."""
    size = max(1, min(N_SIMS, int(4e6 // (design.arms * design.raters * design.cases))))
    out = []
    for start in range(0, N_SIMS, size):
        y = design.simulate(rng, min(size, N_SIMS - start), effects)
        out.append(balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided", **terms))
    return [np.concatenate(parts) for parts in zip(*out, strict=True)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_default_comparison_keeps_size_and_coverage(name: str) -> None:
    design = SCENARIOS[name]
    seed = 20_261_129 + list(SCENARIOS).index(name)
    rng = np.random.default_rng(seed)
    # size: two-sided tests at alpha = 0.05 under the null (every arm alike)
    _, _, _, p = _batches(design, rng, np.zeros(design.arms))
    size, size_mcse = _rate_and_mcse(p <= 0.05)
    assert abs(size - 0.05) <= 2 * size_mcse, (name, size, size_mcse)
    if design.arms > 2:  # Holm across the contrasts keeps the family-wise error
        fwer = float(np.mean((adjust_pvalue_matrix(p, "holm") <= 0.05).any(axis=1)))
        assert fwer <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / N_SIMS), (name, fwer)
    # coverage: 95 % intervals of the population mean differences under an alternative
    effects = np.linspace(0.0, 0.3 * (design.arms - 1), design.arms)
    est, se, df, _ = _batches(design, rng, effects)
    truth = design.true_differences(effects)
    half = stats.t.ppf(0.975, df) * se
    coverage, cover_mcse = _rate_and_mcse(np.abs(est - truth[None, :]) <= half)
    assert abs(coverage - 0.95) <= 2 * cover_mcse, (name, coverage, cover_mcse)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["6x30_2arms_continuous", "20x100_4arms_likert"])
def test_the_old_default_fails_the_size_test(name: str) -> None:
    # The model without interactions (the default before issue 11) on the same kind
    # of null studies: the test above can fail, and would have.
    design = SCENARIOS[name]
    rng = np.random.default_rng(7 + list(SCENARIOS).index(name))
    _, _, _, p = _batches(design, rng, np.zeros(design.arms), **MODELS["none"])
    size, _ = _rate_and_mcse(p <= 0.05)
    assert size > 0.05 + 10 * math.sqrt(0.05 * 0.95 / N_SIMS), (name, size)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "n_fits"), [("6x30_2arms_continuous", 100), ("6x30_4arms_likert", 40)]
)
def test_full_fits_agree_with_the_balanced_test(name: str, n_fits: int) -> None:
    # Ties the simulations to the analysis users run: full compare_arms fits (REML
    # from scratch, Satterthwaite by finite differences) of null studies of the same
    # designs give the balanced test's numbers, study by study.
    design = SCENARIOS[name]
    rng = np.random.default_rng(99 + n_fits)
    y = design.simulate(rng, n_fits, np.zeros(design.arms))
    est, se, df, p = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided")
    for k in range(n_fits):
        _assert_same(_compare(y[k]), est[k], se[k], df[k], p[k])
