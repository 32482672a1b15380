"""Tests of studyhub.stats.correlation.metric_correlation.

No published reference exists for a case-clustered bootstrap of Spearman's
rho, so the point estimate is checked against scipy, each bootstrap replicate
against explicit resampling of cases, and the interval by simulation against
a known population value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.correlation import _WeightedSpearman, metric_correlation

# Ratings = metric + case effect (sd 0.5) + noise (sd 1), metric ~ N(0, 1): every row's
# (rating, metric) pair is bivariate normal with Pearson rho = 1 / sqrt(1 + 0.25 + 1), whose
# Spearman rho is (6 / pi) * asin(rho / 2) (Pearson 1907; Kruskal 1958, JASA 53:814-861).
RHO = 1.0 / np.sqrt(2.25)
POPULATION_SPEARMAN = 6.0 / np.pi * np.arcsin(RHO / 2.0)


def simulate(
    rng: np.random.Generator, n_cases: int = 50, n_raters: int = 4, n_arms: int = 1
) -> pd.DataFrame:
    metric = rng.normal(size=(n_cases, n_arms))
    case_effect = rng.normal(0.0, 0.5, size=n_cases)
    rows = []
    for c in range(n_cases):
        for a in range(n_arms):
            for r in range(n_raters):
                rating = metric[c, a] + case_effect[c] + rng.normal()
                rows.append((f"case{c}", f"arm{a}", f"r{r}", rating, metric[c, a]))
    return pd.DataFrame(rows, columns=["case", "arm", "rater", "rating", "metric"])


def test_point_estimate_equals_scipy_spearman_with_ties() -> None:
    data = simulate(np.random.default_rng(1), n_arms=2)
    data["rating"] = np.clip(np.round(data["rating"]), -2, 2)  # a 5-point scale: many ties
    res = metric_correlation(data, cases="case", ratings="rating", metric="metric", n_boot=200)
    expected = stats.spearmanr(data["rating"], data["metric"]).statistic
    assert res.estimate == pytest.approx(expected, abs=1e-12)
    assert (res.n_cases, res.n_ratings) == (50, 400)


def test_bootstrap_replicate_equals_explicit_case_resampling() -> None:
    rng = np.random.default_rng(2)
    data = simulate(rng, n_cases=30, n_arms=2)
    data["rating"] = np.round(data["rating"])
    codes, _ = pd.factorize(data["case"])
    fast = _WeightedSpearman(data["rating"].to_numpy(), data["metric"].to_numpy())
    for _ in range(5):
        drawn = np.bincount(rng.integers(0, 30, 30), minlength=30)
        rows = np.repeat(np.arange(len(data)), drawn[codes])
        explicit = stats.spearmanr(data["rating"].to_numpy()[rows], data["metric"].to_numpy()[rows])
        weights = drawn[codes].astype(float)[None, :]
        assert fast.rho(weights)[0] == pytest.approx(explicit.statistic, abs=1e-12)


def test_known_monotone_relation_gives_positive_significant_estimate() -> None:
    data = simulate(np.random.default_rng(3))
    data["rating"] = np.exp(data["rating"])  # monotone transform: Spearman unchanged
    res = metric_correlation(data, cases="case", ratings="rating", metric="metric", raters="rater")
    assert res.estimate > 0
    assert 0 < res.ci_low < res.estimate < res.ci_high < 1
    assert res.p_value == pytest.approx(2 / 2001)  # every resample > 0: the smallest p-value
    assert res.method == "spearman" and res.n_boot_used == 2000
    assert res.per_rater is not None
    for rater, row in res.per_rater.iterrows():
        one = data[data["rater"] == rater]
        expected = stats.spearmanr(one["rating"], one["metric"]).statistic
        assert row["estimate"] == pytest.approx(expected, abs=1e-12)
        assert row["n_ratings"] == 50


def test_no_relation_gives_a_large_p_value_and_ci_covering_zero() -> None:
    rng = np.random.default_rng(4)
    data = simulate(rng)
    data["metric"] = data.groupby("case")["metric"].transform(lambda m: rng.normal(size=len(m)))
    res = metric_correlation(data, cases="case", ratings="rating", metric="metric", seed=1)
    assert res.ci_low < 0 < res.ci_high
    assert res.p_value > 0.05


def test_copied_rows_do_not_narrow_the_case_bootstrap_interval() -> None:
    # Each case's rows copied 5 times: a row bootstrap would shrink the interval, the case
    # bootstrap must not (the copies carry no new information).
    data = simulate(np.random.default_rng(5))
    copies = pd.concat([data] * 5, ignore_index=True)
    one = metric_correlation(data, cases="case", ratings="rating", metric="metric")
    five = metric_correlation(copies, cases="case", ratings="rating", metric="metric")
    assert five.estimate == pytest.approx(one.estimate, abs=0.01)
    width_one, width_five = one.ci_high - one.ci_low, five.ci_high - five.ci_low
    assert width_five == pytest.approx(width_one, rel=0.15)


def test_seed_makes_the_interval_reproducible() -> None:
    data = simulate(np.random.default_rng(6))
    kw: dict[str, Any] = {"cases": "case", "ratings": "rating", "metric": "metric"}
    a = metric_correlation(data, seed=7, **kw)
    b = metric_correlation(data, seed=7, **kw)
    c = metric_correlation(data, seed=8, **kw)
    assert (a.ci_low, a.ci_high, a.p_value) == (b.ci_low, b.ci_high, b.p_value)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.seed == 7


@pytest.mark.slow
def test_interval_covers_the_population_value() -> None:
    # 200 simulated studies of 50 cases x 4 raters; nominal 95% coverage. With 200 draws the
    # binomial standard error is about 1.5%, so 0.88-0.99 fails only for a real miscoverage.
    rng = np.random.default_rng(2024)
    covered = 0
    n_sims = 200
    for sim in range(n_sims):
        res = metric_correlation(
            simulate(rng), cases="case", ratings="rating", metric="metric", n_boot=1000, seed=sim
        )
        covered += res.ci_low <= POPULATION_SPEARMAN <= res.ci_high
    assert 0.88 <= covered / n_sims <= 0.99


def test_errors() -> None:
    data = simulate(np.random.default_rng(8), n_cases=10)
    kw: dict[str, Any] = {"cases": "case", "ratings": "rating", "metric": "metric"}
    with pytest.raises(DataError, match=r"column\(s\) metric='faithfulness' not in the data frame"):
        metric_correlation(data, cases="case", ratings="rating", metric="faithfulness")
    with pytest.raises(
        DataError, match=r"ratings column 'rating' is constant \(every value is 3\)"
    ):
        metric_correlation(data.assign(rating=3), **kw)
    with pytest.raises(DataError, match=r"metric column 'metric' is constant"):
        metric_correlation(data.assign(metric=0.5), **kw)
    with pytest.raises(DataError, match=r"ratings column 'rating' has non-numeric value 'high'"):
        metric_correlation(data.assign(rating="high"), **kw)
    two_cases = data[data["case"].isin(["case0", "case1"])]
    with pytest.raises(
        DataError,
        match=r"cases column 'case' has 2 distinct value\(s\) \(\['case0', 'case1'\]\); "
        r"this analysis needs at least 3",
    ):
        metric_correlation(two_cases, **kw)
    with pytest.raises(DataError, match=r"n_boot is 50; pass an integer of at least 100"):
        metric_correlation(data, n_boot=50, **kw)
    with pytest.raises(DataError, match=r"confidence is 1.5; pass a level strictly between"):
        metric_correlation(data, confidence=1.5, **kw)
    with pytest.raises(DataError, match=r"must be three different columns"):
        metric_correlation(data, cases="case", ratings="rating", metric="rating")
