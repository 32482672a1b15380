"""Tests of studyhub.stats.bootstrap_variance: the corrected two-way variance, its size.

The slow tests simulate null and alternative reader studies with rater x arm and
case x arm variation (and without), normal and Likert 1-5 ratings, 2 and 4 arms,
designs from 6 x 30 to 20 x 100, and check the two-sided 5% test and the 95%
interval of :func:`studyhub.stats.bootstrap.cluster_bootstrap` (which are those of
:func:`two_way_variance`) to 2 Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from studyhub.stats.bootstrap import two_way_bootstrap_differences
from studyhub.stats.bootstrap_variance import two_way_t_tests, two_way_variance

ALPHA = 0.05


def _studies(
    rng: np.random.Generator,
    n: int,
    *,
    raters: int,
    cases: int,
    arms: int = 2,
    sd_rater_arm: float = 0.0,
    sd_case_arm: float = 0.0,
    likert: bool = False,
    effects: tuple[float, ...] | None = None,
) -> np.ndarray:
    """``n`` fully crossed studies, shape (n, arms, raters, cases): rater SD 0.5,
    case SD 0.8, residual SD 1 (the issue's design), optional interactions and
    effects; Likert: the latent rating rounded and clipped to 1..5 around 3."""
    mu = np.zeros(arms) if effects is None else np.asarray(effects, dtype=float)
    y = (
        mu[None, :, None, None]
        + rng.normal(0, 0.5, (n, 1, raters, 1))
        + rng.normal(0, 0.8, (n, 1, 1, cases))
        + rng.normal(0, sd_rater_arm, (n, arms, raters, 1))
        + rng.normal(0, sd_case_arm, (n, arms, 1, cases))
        + rng.normal(0, 1.0, (n, arms, raters, cases))
    )
    return np.clip(np.rint(3 + y), 1, 5) if likert else y


def _likert_mean(effect: float, sd_rater_arm: float, sd_case_arm: float) -> float:
    """Population mean of the Likert rating of an arm with latent shift ``effect``.

    The latent rating 3 + effect + (random effects) is normal with SD ``tau``;
    rounding and clipping to 1..5 gives 1 + the number of thresholds 1.5, 2.5,
    3.5, 4.5 it exceeds, so the mean is 1 + sum Phi((3 + effect - j) / tau).
    """
    tau = math.sqrt(0.5**2 + 0.8**2 + sd_rater_arm**2 + sd_case_arm**2 + 1.0)
    return 1 + sum(stats.norm.cdf((3 + effect - j) / tau) for j in (1.5, 2.5, 3.5, 4.5))


def _mcse(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ fast


def test_ideal_pigeonhole_variance_is_the_resamples_variance() -> None:
    # The closed form is the B -> infinity variance of the pigeonhole resamples:
    # exactly for a balanced design, where the difference is linear in the
    # resampling weights; to first order (the linearisation) for unbalanced data.
    rng = np.random.default_rng(0)
    y = _studies(rng, 3, raters=8, cases=15, sd_rater_arm=0.3, sd_case_arm=0.3)
    v = two_way_variance(y, np.ones_like(y), [(1, 0)])
    reps = two_way_bootstrap_differences(y, np.ones_like(y), [(1, 0)], n_boot=40_000, rng=rng)
    # Monte Carlo SD of a variance from 40,000 draws: under 1 %
    np.testing.assert_allclose(reps[:, :, 0].var(axis=1) / v.pigeonhole[:, 0], 1.0, atol=0.03)
    # unbalanced: 10 % of cells empty, 5 % of ratings repeated
    counts = np.where(rng.random((3, 1, 8, 15)) < 0.1, 0.0, np.ones_like(y))
    counts += (rng.random(y.shape) < 0.05) * (counts > 0)
    sums = y * counts
    v = two_way_variance(sums, counts, [(1, 0)])
    for s in range(3):
        mean_a = sums[s, 1].sum() / counts[s, 1].sum()
        mean_b = sums[s, 0].sum() / counts[s, 0].sum()
        u = (sums[s, 1] - mean_a * counts[s, 1]) / counts[s, 1].sum() - (
            sums[s, 0] - mean_b * counts[s, 0]
        ) / counts[s, 0].sum()
        w = rng.multinomial(8, np.full(8, 1 / 8), size=100_000).astype(float)
        c = rng.multinomial(15, np.full(15, 1 / 15), size=100_000).astype(float)
        linear = np.einsum("br,rc,bc->b", w, u, c)
        assert linear.var() / v.pigeonhole[s, 0] == pytest.approx(1.0, abs=0.02)
    reps = two_way_bootstrap_differences(sums, counts, [(1, 0)], n_boot=40_000, rng=rng)
    # the ratio of sums is not linear in the weights: a few per cent here
    np.testing.assert_allclose(reps[:, :, 0].var(axis=1) / v.pigeonhole[:, 0], 1.0, atol=0.06)


def test_batched_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    y = _studies(rng, 4, raters=5, cases=8, arms=3, sd_rater_arm=0.3)
    together = two_way_variance(y, np.ones_like(y), [(1, 0), (2, 1)])
    for s in range(4):
        alone = two_way_variance(y[s], np.ones_like(y[s]), [(1, 0), (2, 1)])
        for name in ("estimate", "variance", "df", "pigeonhole", "rater", "case", "cell"):
            np.testing.assert_allclose(getattr(alone, name)[0], getattr(together, name)[s])


def test_floored_at_the_cell_level_part() -> None:
    # rater and case parts below the cell-level part (no interaction, by chance):
    # the variance is the cell-level part, with its degrees of freedom
    rng = np.random.default_rng(2)
    y = _studies(rng, 200, raters=6, cases=20)
    v = two_way_variance(y, np.ones_like(y), [(1, 0)])
    low = v.floored[:, 0]
    assert 0 < low.sum() < 200
    np.testing.assert_array_equal(v.variance[low, 0], v.cell[low, 0])
    np.testing.assert_array_equal(v.df[low, 0], 5 * 19)
    high = ~low
    total = v.rater[high, 0] + v.case[high, 0] - v.cell[high, 0]
    np.testing.assert_allclose(v.variance[high, 0], total)


def test_t_tests_use_the_corrected_variance() -> None:
    rng = np.random.default_rng(3)
    y = _studies(rng, 5, raters=6, cases=20, sd_rater_arm=0.3, effects=(0.0, 0.4))
    v = two_way_variance(y, np.ones_like(y), [(1, 0)])
    t = (v.estimate - 0.1) / np.sqrt(v.variance)
    one = two_way_t_tests(y, np.ones_like(y), [(1, 0)], null=0.1, hypothesis="superiority")
    two = two_way_t_tests(y, np.ones_like(y), [(1, 0)], null=0.1)
    np.testing.assert_allclose(one, stats.t.sf(t, v.df))
    np.testing.assert_allclose(two, 2 * stats.t.sf(np.abs(t), v.df))


def test_likert_population_mean_matches_a_large_simulation() -> None:
    rng = np.random.default_rng(4)
    latent = 3 + 0.4 + rng.normal(0, math.sqrt(0.25 + 0.64 + 0.09 + 0.04 + 1.0), 2_000_000)
    mean = np.clip(np.rint(latent), 1, 5).mean()
    assert _likert_mean(0.4, 0.3, 0.2) == pytest.approx(mean, abs=0.003)  # ~3 MC SE


# ------------------------------------------------------------------ slow: size and coverage

WITH_INTERACTIONS = [
    # raters, cases, arms, sd rater x arm, sd case x arm, likert
    pytest.param(6, 30, 2, 0.3, 0.3, False, id="6x30-normal-2arms-ra.3-ca.3"),
    pytest.param(6, 30, 2, 0.2, 0.2, True, id="6x30-likert-2arms-ra.2-ca.2"),
    pytest.param(8, 40, 4, 0.3, 0.2, False, id="8x40-normal-4arms-ra.3-ca.2"),
    pytest.param(12, 60, 4, 0.2, 0.3, True, id="12x60-likert-4arms-ra.2-ca.3"),
    pytest.param(20, 100, 2, 0.2, 0.2, False, id="20x100-normal-2arms-ra.2-ca.2"),
]
N_SIZE = 4000  # studies per design: MC SE of a rate near 0.05 is 0.0034


@pytest.mark.slow
@pytest.mark.parametrize(("raters", "cases", "arms", "ra", "ca", "likert"), WITH_INTERACTIONS)
def test_size_under_the_null_with_interactions(
    raters: int, cases: int, arms: int, ra: float, ca: float, likert: bool
) -> None:
    rng = np.random.default_rng(1000 + raters * arms + int(likert))
    y = _studies(
        rng,
        N_SIZE,
        raters=raters,
        cases=cases,
        arms=arms,
        sd_rater_arm=ra,
        sd_case_arm=ca,
        likert=likert,
    )
    p = two_way_t_tests(y, np.ones_like(y), [(k, 0) for k in range(1, arms)])
    # every contrast against the reference; averaging correlated contrasts cannot
    # make the MC SE larger than that of one contrast, which is used
    size = float(np.mean(p < ALPHA))
    assert abs(size - ALPHA) <= 2 * _mcse(ALPHA, N_SIZE), f"size {size:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize(("raters", "cases", "arms", "ra", "ca", "likert"), WITH_INTERACTIONS)
def test_coverage_under_an_alternative_with_interactions(
    raters: int, cases: int, arms: int, ra: float, ca: float, likert: bool
) -> None:
    rng = np.random.default_rng(2000 + raters * arms + int(likert))
    effects = (0.0, 0.5, 0.3, 0.2)[:arms]
    y = _studies(
        rng,
        N_SIZE,
        raters=raters,
        cases=cases,
        arms=arms,
        sd_rater_arm=ra,
        sd_case_arm=ca,
        likert=likert,
        effects=effects,
    )
    v = two_way_variance(y, np.ones_like(y), [(k, 0) for k in range(1, arms)])
    if likert:
        truth = np.array([_likert_mean(e, ra, ca) - _likert_mean(0.0, ra, ca) for e in effects[1:]])
    else:
        truth = np.asarray(effects[1:])
    half = stats.t.ppf(0.975, v.df) * np.sqrt(v.variance)
    covered = np.abs(v.estimate - truth[None, :]) <= half
    coverage = float(covered.mean())
    assert abs(coverage - 0.95) <= 2 * _mcse(0.95, N_SIZE), f"coverage {coverage:.4f}"


NO_INTERACTION = [
    pytest.param(12, 60, False, id="12x60-normal"),
    pytest.param(6, 30, True, id="6x30-likert"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("raters", "cases", "likert"), NO_INTERACTION)
def test_no_interaction_unbiased_se_and_not_liberal(raters: int, cases: int, likert: bool) -> None:
    # Without rater x arm or case x arm variation the corrected variance is never
    # below the true variance of the difference (2 s_e^2 / (R C) for normal ratings;
    # for Likert ones the spread of the 4000 estimates, relative SE 2 %), but the
    # floor at the cell-level part (both interaction variances estimated as zero)
    # makes it about 20 % too large on average, and the test does not reject more
    # often than nominal: conservative, never liberal.
    rng = np.random.default_rng(3000 + raters)
    y = _studies(rng, N_SIZE, raters=raters, cases=cases, likert=likert)
    v = two_way_variance(y, np.ones_like(y), [(1, 0)])
    est = v.estimate[:, 0]
    true_var = 2.0 / (raters * cases) if not likert else float(np.var(est, ddof=1))
    ratio = float(v.variance[:, 0].mean() / true_var)
    assert 0.96 < ratio < 1.35, f"mean variance / true variance {ratio:.3f}"
    size = float(np.mean(two_way_t_tests(y, np.ones_like(y), [(1, 0)])[:, 0] < ALPHA))
    assert size <= ALPHA + 2 * _mcse(ALPHA, N_SIZE), f"size {size:.4f}"


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known and documented: with no interaction at all the corrected bootstrap is "
    "conservative (size about 0.03): its degrees of freedom allow for an interaction the "
    "data cannot rule out",
)
@pytest.mark.parametrize(("raters", "cases", "likert"), NO_INTERACTION)
def test_no_interaction_size_is_nominal(raters: int, cases: int, likert: bool) -> None:
    rng = np.random.default_rng(3000 + raters)
    y = _studies(rng, N_SIZE, raters=raters, cases=cases, likert=likert)
    size = float(np.mean(two_way_t_tests(y, np.ones_like(y), [(1, 0)])[:, 0] < ALPHA))
    assert abs(size - ALPHA) <= 2 * _mcse(ALPHA, N_SIZE), f"size {size:.4f}"


OLD_SCHEME = [
    pytest.param(0.2, id="12x60-ra.2 (the issue: 0.030)"),
    pytest.param(0.0, id="12x60-no-interaction (the issue: 0/400)"),
]


@pytest.mark.slow
@pytest.mark.parametrize("ra", OLD_SCHEME)
def test_old_pigeonhole_scheme_fails_the_size_check(ra: float) -> None:
    # The uncorrected scheme (percentile interval of the raw resamples, its
    # two-sided p-value by inversion) on the 12 x 60 design: far below the
    # nominal size, outside the 2 MC SE band the corrected scheme meets.
    n, n_boot = 1000, 300
    rng = np.random.default_rng(4000 + int(ra * 10))
    y = _studies(rng, n, raters=12, cases=60, sd_rater_arm=ra)
    reps = two_way_bootstrap_differences(y, np.ones_like(y), [(1, 0)], n_boot=n_boot, rng=rng)
    lower = (1 + np.sum(reps[:, :, 0] <= 0, axis=1)) / (n_boot + 1)
    upper = (1 + np.sum(reps[:, :, 0] >= 0, axis=1)) / (n_boot + 1)
    size = float(np.mean(np.minimum(1.0, 2 * np.minimum(lower, upper)) < ALPHA))
    assert size < ALPHA - 2 * _mcse(ALPHA, n), f"old scheme size {size:.4f}"
    new = float(np.mean(two_way_t_tests(y, np.ones_like(y), [(1, 0)])[:, 0] < ALPHA))
    assert new > size
