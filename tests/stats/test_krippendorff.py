"""Tests of studyhub.stats.krippendorff against published reference numbers.

Reference data live in tests/data/reference/<folder>/ (CSV, expected.json and
SOURCE.md copied unchanged from the project's reference collection). Every
expected value carries its source in a comment beside the assertion.
"""

from __future__ import annotations

import math
import time
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.krippendorff import _AlphaParts, krippendorff_alpha
from tests.stats.helpers import (
    REFERENCE,
    RaterPanel,
    case_jackknife,
    expected,
    printed,
    stimuli,
)


@pytest.fixture(scope="module")
def kripp() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "krippendorff_alpha_2011_4x12" / "ratings_long.csv")


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_krippendorff_2011(kripp: pd.DataFrame, level: Any) -> None:
    res = krippendorff_alpha(
        kripp, units="unit", raters="observer", ratings="value", level=level, n_boot=200
    )
    exp = expected("krippendorff_alpha_2011_4x12")
    # Krippendorff (2011) Computing Krippendorff's Alpha-Reliability, UPenn ASC papers 43,
    # 3 decimals: nominal .743, ordinal .815, interval .849, ratio .797
    assert printed(res.estimate, exp["published_krippendorff_2011"][f"alpha_{level}"], 3)
    cc = exp["crosscheck_more_digits"]
    # krippendorff 0.9.0 + independent coincidence-matrix code (expected.json
    # crosscheck_more_digits, 6 decimals): alpha 0.743421 / 0.815388 / 0.849107 / 0.797403
    assert printed(res.estimate, cc[f"alpha_{level}"], 6)
    # same source: D_o 0.2 / 47.275 / 0.433333 / 0.022433 and
    # D_e 0.779487 / 256.076923 / 2.871795 / 0.110726 (6 decimals)
    assert printed(res.observed_disagreement, cc[f"Do_{level}"], 6)
    assert printed(res.expected_disagreement, cc[f"De_{level}"], 6)
    # same source: 40 pairable values; unit 12 (one value) drops out, leaving 11 units
    assert res.n_values == cc["n_pairable_values"]
    assert res.n_units == 11 and res.n_raters == 4
    assert res.ci_low <= res.estimate <= res.ci_high


def _simulate_reliability(
    rng: np.random.Generator, n_units: int, n_raters: int, missing: float, continuous: bool
) -> np.ndarray:
    truth = rng.integers(1, 6, n_units)
    x = truth[:, None] + rng.normal(0.0, 1.0, (n_units, n_raters))
    x = np.round(x, 1) + 5.0 if continuous else np.clip(np.round(x), 1, 5)
    x[rng.random((n_units, n_raters)) < missing] = np.nan
    return x


def _long(x: np.ndarray) -> pd.DataFrame:
    units, raters = np.indices(x.shape)
    return pd.DataFrame({"unit": units.ravel(), "rater": raters.ravel(), "y": x.ravel()})


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_fast_path_matches_krippendorff_package(level: Any, continuous: bool) -> None:
    rng = np.random.default_rng(5)
    x = _simulate_reliability(rng, 40, 6, missing=0.25, continuous=continuous)
    res = krippendorff_alpha(
        _long(x), units="unit", raters="rater", ratings="y", level=level, n_boot=100
    )
    assert res.estimate == pytest.approx(
        krippendorff.alpha(x.T, level_of_measurement=level), abs=1e-9
    )
    # A bootstrap replicate (weights = how often each unit is drawn) equals alpha on the
    # explicitly resampled reliability matrix.
    keep = (~np.isnan(x)).sum(axis=1) >= 2
    xp = x[keep]
    domain, codes = np.unique(xp[~np.isnan(xp)], return_inverse=True)
    counts = np.zeros((len(xp), domain.size))
    rows = np.nonzero(~np.isnan(xp))[0]
    np.add.at(counts, (rows, codes), 1.0)
    parts = _AlphaParts(counts, domain, level)
    for _ in range(3):
        draw = rng.integers(0, len(xp), len(xp))
        weights = np.bincount(draw, minlength=len(xp)).astype(float)[None, :]
        assert parts.alpha(weights)[0] == pytest.approx(
            krippendorff.alpha(xp[draw].T, level_of_measurement=level), abs=1e-9
        )


def test_alpha_bootstrap_covers_estimate_and_shrinks_with_units() -> None:
    rng = np.random.default_rng(21)
    widths = []
    for n_units in (30, 300):
        x = _simulate_reliability(rng, n_units, 5, missing=0.1, continuous=False)
        res = krippendorff_alpha(_long(x), units="unit", raters="rater", ratings="y")
        assert res.ci_low < res.estimate < res.ci_high
        assert res.n_boot_used == 2000
        widths.append(res.ci_high - res.ci_low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(10) in theory


def test_alpha_is_reproducible_and_accepts_ordered_categories(kripp: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"units": "unit", "raters": "observer", "ratings": "value"}
    a = krippendorff_alpha(kripp, seed=3, **kw)
    b = krippendorff_alpha(kripp, seed=3, **kw)
    c = krippendorff_alpha(kripp, seed=4, **kw)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    labels = {1: "none", 2: "low", 3: "mid", 4: "high", 5: "max"}
    ordered = kripp.assign(
        value=pd.Categorical(
            kripp["value"].map(labels), categories=list(labels.values()), ordered=True
        )
    )
    res = krippendorff_alpha(ordered, level="ordinal", **kw)
    assert res.estimate == pytest.approx(krippendorff_alpha(kripp, level="ordinal", **kw).estimate)
    nominal = krippendorff_alpha(
        kripp.assign(value=kripp["value"].map(labels)), level="nominal", **kw
    )
    assert printed(nominal.estimate, 0.743, 3)  # Krippendorff (2011) nominal .743


def test_alpha_is_fast_on_a_reader_study_sized_data_set() -> None:
    # 300 cases x 4 arms = 1200 stimuli (units), 20 raters, 2000 resamples.
    rng = np.random.default_rng(0)
    data = _long(_simulate_reliability(rng, 1200, 20, missing=0.1, continuous=False))
    for level in ("nominal", "ordinal", "interval", "ratio"):
        start = time.perf_counter()
        krippendorff_alpha(data, units="unit", raters="rater", ratings="y", level=level)
        assert time.perf_counter() - start < 5.0, level


def test_alpha_errors(kripp: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"units": "unit", "raters": "observer", "ratings": "value"}
    with pytest.raises(
        DataError,
        match=r"raters column 'observer' has 1 distinct value\(s\) \(\['A'\]\); "
        r"this analysis needs at least 2",
    ):
        krippendorff_alpha(kripp[kripp["observer"] == "A"], **kw)
    with pytest.raises(DataError, match=r"ratings column 'value' is constant \(every value is 2\)"):
        krippendorff_alpha(kripp.assign(value=2), **kw)
    with pytest.raises(DataError, match=r"column\(s\) ratings='score' not in the data frame"):
        krippendorff_alpha(kripp, units="unit", raters="observer", ratings="score")
    with pytest.raises(DataError, match=r"level is 'metric'; pass one of 'nominal'"):
        krippendorff_alpha(kripp, level="metric", **kw)  # type: ignore[arg-type]
    with pytest.raises(
        DataError, match=r"1 \(unit, observer\) pairs appear more than once \(e.g. unit=1, "
    ):
        krippendorff_alpha(pd.concat([kripp, kripp.iloc[:1]]), **kw)
    with pytest.raises(DataError, match=r"n_boot is 10; pass an integer of at least 100"):
        krippendorff_alpha(kripp, n_boot=10, **kw)
    with pytest.raises(DataError, match=r"has negative value -1; the ratio level needs"):
        krippendorff_alpha(kripp.assign(value=kripp["value"] - 2), level="ratio", **kw)
    unpaired = pd.DataFrame({"unit": [1, 2, 3], "observer": ["A", "B", "C"], "value": [1, 2, 3]})
    with pytest.raises(DataError, match=r"0 unit\(s\) have ratings from at least 2 raters"):
        krippendorff_alpha(unpaired, **kw)
    unordered = kripp.assign(value=pd.Categorical(kripp["value"]))
    with pytest.raises(DataError, match="is an unordered categorical"):
        krippendorff_alpha(unordered, level="ordinal", **kw)


# ------------------------------------------------------------------ clustered units


def test_alpha_cluster_jackknife_equals_leaving_out_each_case() -> None:
    # Units are stimuli (a case under one arm); the interval leaves out one case at
    # a time with all its arms and raters, on Fisher's z scale for k = 4 raters.
    data = stimuli(np.random.default_rng(1), n_raters=4, n_cases=12)
    kw: dict[str, Any] = {"units": "unit", "raters": "rater", "ratings": "value"}
    for level in ("interval", "ordinal"):
        res = krippendorff_alpha(data, **kw, level=level, clusters="case")
        assert (res.n_clusters, res.n_units, res.n_boot_used) == (12, 24, 0)
        assert res.interval == "cluster jackknife"
        low, high = case_jackknife(
            data,
            lambda d, lv=level: krippendorff_alpha(d, **kw, level=lv, n_boot=100).estimate,
            raters=4,
        )
        assert (res.ci_low, res.ci_high) == (pytest.approx(low), pytest.approx(high))
        plain = krippendorff_alpha(data, **kw, level=level, n_boot=100)
        assert plain.estimate == res.estimate
        assert (plain.n_clusters, plain.interval) == (None, "percentile bootstrap")


def test_alpha_refuses_a_unit_in_two_clusters_and_a_missing_cluster_column() -> None:
    data = stimuli(np.random.default_rng(3), n_raters=3, n_cases=6)
    data.loc[0, "case"] = "c999"
    kw: dict[str, Any] = {"units": "unit", "raters": "rater", "ratings": "value"}
    with pytest.raises(DataError) as info:
        krippendorff_alpha(data, **kw, clusters="case")
    assert str(info.value) == (
        "unit='c000|a' lies in 2 clusters (['c000', 'c999']); each unit must belong to one "
        "cluster of column 'case'"
    )
    with pytest.raises(DataError, match=r"column\(s\) clusters='site' not in the data frame"):
        krippendorff_alpha(data, **kw, clusters="site")


# ------------------------------------------------------------------ coverage (simulation)

# A fixed panel of 6 raters reads 60 new cases per study, each shown under 2 arms
# (120 stimuli); the interval leaves out cases, so it generalises to new cases read
# by this panel, and its target is the panel's alpha over infinitely many cases.
PANEL = RaterPanel(seed=77, n_raters=6)
STEP = 0.25  # continuous ratings on a 0.25 grid: ~40 distinct values, a fast metric
N_CASES = 60


def _alpha_interval_truth(panel: RaterPanel, step: float) -> float:
    """The panel's interval alpha over infinitely many cases, from the model.

    Within a stimulus two raters differ by their severity and benefit and by
    noise, so ``D_o`` is the mean over ordered rater pairs of the squared
    difference of ``mu_a + severity + benefit``, averaged over arms, plus twice the
    noise variance; ``D_e`` is twice the variance of all ratings (over arms and
    raters, cases, case x arm and noise). Rounding to ``step`` adds ``step^2/12``
    to the noise (Sheppard).
    """
    d = panel.rater_arm
    n_r = d.shape[1]
    noise = panel.sd_noise**2 + step**2 / 12
    between = np.mean([((row[:, None] - row[None, :]) ** 2).sum() / (n_r * (n_r - 1)) for row in d])
    d_o = between + 2 * noise
    d_e = 2 * (d.var() + panel.sd_case**2 + panel.sd_case_arm**2 + noise)
    return float(1 - d_o / d_e)


def _interval_alpha(y: np.ndarray) -> float:
    """Interval alpha of complete (arms, raters, cases) ratings, written out directly."""
    n_r = y.shape[1]
    within = 2 * ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / (n_r - 1)
    n = y.size
    return float(1 - within.mean() / (2 * y.var() * n / (n - 1)))


def _ordinal_alpha(counts: np.ndarray, n_raters: int) -> float:
    """Ordinal alpha of complete data from per-unit category counts (Krippendorff 2011)."""
    o = (counts.T @ counts - np.diag(counts.sum(axis=0))) / (n_raters - 1)
    n_c = o.sum(axis=1)
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    idx = np.arange(n_c.size)
    lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
    dist = (cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2) ** 2
    n = n_c.sum()
    return float(1 - (n - 1) * (o * dist).sum() / (n_c @ dist @ n_c))


def _likert_counts(y: np.ndarray) -> np.ndarray:
    """Per-stimulus counts of the Likert categories 1..5 of latent (arms, raters, cases)."""
    likert = np.clip(np.rint(3 + y), 1, 5).astype(int) - 1
    units = likert.transpose(2, 0, 1).reshape(-1, y.shape[1])
    counts = np.zeros((units.shape[0], 5))
    np.add.at(counts, (np.repeat(np.arange(units.shape[0]), units.shape[1]), units.ravel()), 1.0)
    return counts


def test_alpha_truths_match_the_estimator_and_a_large_simulation() -> None:
    rng = np.random.default_rng(78)
    small = np.round(PANEL.ratings(rng, 60) / STEP) * STEP
    est = krippendorff_alpha(
        RaterPanel.long(small),
        units="unit",
        raters="rater",
        ratings="y",
        level="interval",
        n_boot=100,
    ).estimate
    assert _interval_alpha(small) == pytest.approx(est, abs=1e-10)
    likert = np.clip(np.rint(3 + small), 1, 5)
    est = krippendorff_alpha(
        RaterPanel.long(likert),
        units="unit",
        raters="rater",
        ratings="y",
        level="ordinal",
        n_boot=100,
    ).estimate
    assert _ordinal_alpha(_likert_counts(small), 6) == pytest.approx(est, abs=1e-10)
    big = np.round(PANEL.ratings(rng, 100_000) / STEP) * STEP
    # 200,000 stimuli: the estimate's SD is about 0.002
    assert _interval_alpha(big) == pytest.approx(_alpha_interval_truth(PANEL, STEP), abs=0.006)


N_COVER = 1000  # studies: MC SE of a coverage near 0.95 is 0.0069
N_OLD = 300  # studies for the old unit bootstrap, which misses by far more


def _mcse(n: int) -> float:
    return math.sqrt(0.95 * 0.05 / n)


@pytest.mark.slow
def test_interval_alpha_case_jackknife_covers_the_panels_value() -> None:
    truth = _alpha_interval_truth(PANEL, STEP)
    rng = np.random.default_rng(79)
    kw: dict[str, Any] = {"units": "unit", "raters": "rater", "ratings": "y", "level": "interval"}
    cases, units = [], []
    for i in range(N_COVER):
        data = RaterPanel.long(np.round(PANEL.ratings(rng, N_CASES) / STEP) * STEP)
        res = krippendorff_alpha(data, **kw, clusters="case")
        cases.append(res.ci_low <= truth <= res.ci_high)
        if i < N_OLD:  # the old scheme: stimuli bootstrapped as if independent
            old = krippendorff_alpha(data, **kw, n_boot=300, seed=i)
            units.append(old.ci_low <= truth <= old.ci_high)
    coverage, old_coverage = float(np.mean(cases)), float(np.mean(units))
    assert abs(coverage - 0.95) <= 2 * _mcse(N_COVER), f"coverage {coverage:.4f}"
    assert old_coverage < 0.95 - 2 * _mcse(N_OLD), f"old scheme coverage {old_coverage:.4f}"


@pytest.mark.slow
def test_ordinal_alpha_case_jackknife_covers_the_panels_value_on_likert_ratings() -> None:
    rng = np.random.default_rng(80)
    # the panel's value: the statistic on 100,000 cases (SD about 0.002)
    truth = _ordinal_alpha(_likert_counts(PANEL.ratings(rng, 100_000)), 6)
    kw: dict[str, Any] = {"units": "unit", "raters": "rater", "ratings": "y", "level": "ordinal"}
    hits = []
    for _ in range(N_COVER):
        data = RaterPanel.long(np.clip(np.rint(3 + PANEL.ratings(rng, N_CASES)), 1, 5))
        res = krippendorff_alpha(data, **kw, clusters="case")
        hits.append(res.ci_low <= truth <= res.ci_high)
    coverage = float(np.mean(hits))
    assert abs(coverage - 0.95) <= 2 * _mcse(N_COVER), f"coverage {coverage:.4f}"
