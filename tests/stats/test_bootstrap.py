"""Tests of studyhub.stats.bootstrap: equivalence with explicit resampling, speed, coverage."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.bootstrap import (
    cluster_bootstrap,
    resampled_means,
    two_way_bootstrap_differences,
)


def _study(
    rng: np.random.Generator, n_raters: int = 6, n_cases: int = 10, n_arms: int = 3
) -> pd.DataFrame:
    a, r, c = np.meshgrid(np.arange(n_arms), np.arange(n_raters), np.arange(n_cases), indexing="ij")
    y = 0.4 * a + rng.normal(0, 0.5, n_raters)[r] + rng.normal(0, 0.8, n_cases)[c]
    y = y + rng.normal(0, 1, a.shape)
    return pd.DataFrame(
        {
            "arm": np.array(["none", "gradcam", "ig", "lime"])[a.ravel()],
            "rating": y.ravel(),
            "rater": r.ravel(),
            "case": [f"c{i:03d}" for i in c.ravel()],
        }
    )


def test_weights_equal_explicit_resampling_of_raters_and_cases() -> None:
    # Unbalanced: repeated ratings in some cells, empty cells elsewhere.
    rng = np.random.default_rng(0)
    data = _study(rng)
    data = pd.concat([data, data.sample(40, random_state=1)]).drop(data.index[::7])
    data = data.reset_index(drop=True)
    raters = np.sort(data["rater"].unique())
    cases = np.sort(data["case"].unique())
    for _ in range(20):
        pick_r = rng.choice(raters, size=raters.size)
        pick_c = rng.choice(cases, size=cases.size)
        # explicit: each drawn rater x drawn case cell contributes all its rows
        rows = [data[(data["rater"] == r) & (data["case"] == c)] for r in pick_r for c in pick_c]
        boot = pd.concat(rows)
        explicit = boot.groupby("arm")["rating"].mean()
        w = np.array([np.sum(pick_r == r) for r in raters], dtype=float)[None, None, :]
        v = np.array([np.sum(pick_c == c) for c in cases], dtype=float)[None, None, :]
        for arm in ("none", "gradcam", "ig"):
            sub = data[data["arm"] == arm]
            ri = np.searchsorted(raters, sub["rater"])
            ci = np.searchsorted(cases, sub["case"])
            sums = np.zeros((1, raters.size, cases.size))
            counts = np.zeros_like(sums)
            np.add.at(sums[0], (ri, ci), sub["rating"].to_numpy())
            np.add.at(counts[0], (ri, ci), 1.0)
            got = resampled_means(sums, counts, w, v)[0, 0]
            assert got == pytest.approx(explicit[arm], rel=1e-12)


def test_result_shape_and_point_estimates() -> None:
    data = _study(np.random.default_rng(1))
    kw = dict(arm="arm", rating="rating", rater="rater", case="case", reference="none")
    res = cluster_bootstrap(data, **kw, n_boot=300, seed=4)
    means = data.groupby("arm")["rating"].mean()
    table = res.contrasts.set_index("contrast")
    assert list(table.index) == ["gradcam - none", "ig - none"]
    row = table.loc["ig - none"]
    assert row["estimate"] == pytest.approx(means["ig"] - means["none"])
    assert res.replicates.shape == (300, 2)
    assert res.scheme == "rescaled"
    # t interval and two-sided t test on the corrected SE with Satterthwaite df
    q = stats.t.ppf(0.975, row["df"])
    assert row["ci_low"] == pytest.approx(row["estimate"] - q * row["se"])
    assert row["ci_high"] == pytest.approx(row["estimate"] + q * row["se"])
    assert row["statistic"] == pytest.approx(row["estimate"] / row["se"])
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(row["statistic"]), row["df"]))
    # the resamples are rescaled to the corrected variance (Rao & Wu), so their
    # spread is the SE up to Monte Carlo error, well below the pigeonhole SE
    assert np.std(res.replicates[:, 1], ddof=1) == pytest.approx(row["se"], rel=0.15)
    assert row["se"] < row["se_pigeonhole"]
    # the uncorrected scheme: SD and percentile interval of the raw resamples
    old = cluster_bootstrap(data, **kw, n_boot=300, seed=4, scheme="pigeonhole")
    raw = old.replicates[:, 1]
    old_row = old.contrasts.set_index("contrast").loc["ig - none"]
    assert old_row["se"] == pytest.approx(np.std(raw, ddof=1))
    assert old_row["ci_low"] == pytest.approx(np.quantile(raw, 0.025))
    assert math.isnan(old_row["df"])
    # same resamples before rescaling: rescaled = estimate + k (raw - estimate)
    k = row["se"] / row["se_pigeonhole"]
    np.testing.assert_allclose(res.replicates[:, 1], row["estimate"] + k * (raw - row["estimate"]))


def test_corrected_se_is_the_anova_estimator_in_a_complete_design() -> None:
    # Balanced: SE^2 = (MS_rater:arm + MS_case:arm - MS_residual) / (R C) of the
    # differences (McCullagh 2000), df by Satterthwaite; computed here with pandas.
    rng = np.random.default_rng(5)
    data = _study(rng, n_raters=7, n_cases=11, n_arms=2)
    gain = data["arm"] == "gradcam"  # rater x arm and case x arm variation
    case_no = data.loc[gain, "case"].str[1:].astype(int)
    data.loc[gain, "rating"] += rng.normal(0, 0.5, 7)[data.loc[gain, "rater"]]
    data.loc[gain, "rating"] += rng.normal(0, 0.5, 11)[case_no]
    wide = data.pivot_table(index=["rater", "case"], columns="arm", values="rating")
    z = (wide["gradcam"] - wide["none"]).unstack("case").to_numpy()
    r, c = z.shape
    grand = z.mean()
    ms_r = c * ((z.mean(axis=1) - grand) ** 2).sum() / (r - 1)
    ms_c = r * ((z.mean(axis=0) - grand) ** 2).sum() / (c - 1)
    resid = z - z.mean(axis=1, keepdims=True) - z.mean(axis=0, keepdims=True) + grand
    ms_e = (resid**2).sum() / ((r - 1) * (c - 1))
    var = (ms_r + ms_c - ms_e) / (r * c)
    df = (ms_r + ms_c - ms_e) ** 2 / (
        ms_r**2 / (r - 1) + ms_c**2 / (c - 1) + ms_e**2 / ((r - 1) * (c - 1))
    )
    res = cluster_bootstrap(
        data, arm="arm", rating="rating", rater="rater", case="case", reference="none", n_boot=100
    )
    row = res.contrasts.iloc[0]
    assert var > ms_e / (r * c)  # not floored here
    assert row["se"] == pytest.approx(math.sqrt(var), rel=1e-12)
    assert row["df"] == pytest.approx(df, rel=1e-12)


def test_seed_reproducible() -> None:
    data = _study(np.random.default_rng(2))
    kw = dict(arm="arm", rating="rating", rater="rater", case="case", reference="none", n_boot=200)
    a = cluster_bootstrap(data, **kw, seed=7).replicates
    b = cluster_bootstrap(data, **kw, seed=7).replicates
    c = cluster_bootstrap(data, **kw, seed=8).replicates
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batched_studies_equal_one_by_one() -> None:
    rng = np.random.default_rng(3)
    sums = rng.normal(size=(4, 2, 5, 7))
    counts = np.ones_like(sums)
    together = two_way_bootstrap_differences(
        sums, counts, [(1, 0)], n_boot=50, rng=np.random.default_rng(0)
    )
    assert together.shape == (4, 50, 1)
    # the raters' and cases' multiplicities are shared by the arms of one resample,
    # so rater and case effects cancel exactly in the differences
    shifted = sums + rng.normal(size=(4, 1, 5, 1)) + rng.normal(size=(4, 1, 1, 7))
    again = two_way_bootstrap_differences(
        shifted, counts, [(1, 0)], n_boot=50, rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(together, again, atol=1e-12)


def test_fast_on_a_full_size_study() -> None:
    # 2000 resamples of 20 raters x 300 cases x 4 arms: well under 10 s.
    data = _study(np.random.default_rng(4), n_raters=20, n_cases=300, n_arms=4)
    start = time.perf_counter()
    res = cluster_bootstrap(
        data,
        arm="arm",
        rating="rating",
        rater="rater",
        case="case",
        reference="none",
        n_boot=2000,
        seed=0,
    )
    elapsed = time.perf_counter() - start
    assert res.replicates.shape == (2000, 3)
    assert elapsed < 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": 10}, "n_boot is 10; pass an integer of at least 100"),
        ({"statistic": "median"}, "statistic 'median' is unknown; use 'mean_difference'"),
        ({"confidence": 95}, "confidence is 95; pass a coverage between 0 and 1"),
        ({"reference": "shap"}, "reference arm 'shap' is not in column 'arm'"),
        ({"reference": None}, "neither reference nor contrasts was given"),
        ({"case": "image"}, "column(s) case='image' not in the data frame"),
        ({"scheme": "wild"}, "scheme is 'wild'; pass 'rescaled' (the default) or 'pigeonhole'"),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    data = _study(np.random.default_rng(0))
    args = dict(arm="arm", rating="rating", rater="rater", case="case", reference="none")
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        cluster_bootstrap(data, **args)
    assert message in str(info.value)


def test_arm_missing_from_resamples_is_refused() -> None:
    data = _study(np.random.default_rng(0))
    # 'ig' rated by a single rater on a single case: most resamples lose it
    data = data[(data["arm"] != "ig") | ((data["rater"] == 0) & (data["case"] == "c000"))]
    with pytest.raises(DataError, match="resamples an arm had no ratings"):
        cluster_bootstrap(
            data,
            arm="arm",
            rating="rating",
            rater="rater",
            case="case",
            reference="none",
            n_boot=200,
        )


def test_raters_and_cases_not_crossed_is_refused() -> None:
    # each case read by a single rater: no rater x case structure to separate the
    # cell-level noise from the rater and case parts
    data = _study(np.random.default_rng(0), n_raters=4, n_cases=12, n_arms=2)
    data = data[data["case"].str[1:].astype(int) % 4 == data["rater"]]
    with pytest.raises(DataError) as info:
        cluster_bootstrap(
            data, arm="arm", rating="rating", rater="rater", case="case", reference="none"
        )
    assert "contrast 'gradcam - none': raters and cases are not crossed" in str(info.value)
    assert "rate cases by several raters" in str(info.value)


def test_constant_differences_are_refused() -> None:
    data = _study(np.random.default_rng(0), n_arms=2)
    none = data["arm"] == "none"
    data.loc[~none, "rating"] = data.loc[none, "rating"].to_numpy() + 0.5
    with pytest.raises(DataError) as info:
        cluster_bootstrap(
            data, arm="arm", rating="rating", rater="rater", case="case", reference="none"
        )
    msg = str(info.value)
    assert "contrast 'gradcam - none': the arm difference is the same for every rater" in msg
    assert "standard error 0" in msg
