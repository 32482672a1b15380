"""Tests of studyhub.stats.compare against published references and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.bootstrap import cluster_bootstrap
from studyhub.stats.compare import compare_arms
from studyhub.stats.power import balanced_mixed_model_test
from tests.stats.helpers import REFERENCE, crossed, depression

# ------------------------------------------------------------------ mixed model


def test_mixed_model_agrees_with_statsmodels_mixedlm() -> None:
    import statsmodels.api as sm

    data = crossed(np.random.default_rng(11))
    result = compare_arms(
        data,
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        hypothesis="two_sided",
        multiplicity="none",
    )
    frame = data.assign(g=0, rid=data["reader"], cid=data["case"])
    model = sm.MixedLM.from_formula(
        "score ~ C(arm)",
        data=frame,
        groups="g",
        re_formula="0",
        vc_formula={"reader": "0 + C(rid)", "case": "0 + C(cid)"},
    )
    fit = model.fit(reml=True)
    np.testing.assert_allclose(result.contrasts["estimate"], fit.fe_params[1:], rtol=1e-6)
    np.testing.assert_allclose(result.contrasts["se"], fit.bse_fe[1:], rtol=1e-3)
    names = list(fit.model.exog_vc.names)
    sm_vc = dict(zip(names, fit.vcomp, strict=True))
    assert result.variance_components["rater"] == pytest.approx(sm_vc["reader"], rel=1e-3)
    assert result.variance_components["case"] == pytest.approx(sm_vc["case"], rel=1e-3)
    assert result.variance_components["residual"] == pytest.approx(fit.scale, rel=1e-3)


@pytest.mark.parametrize("rater_by_arm", [False, True])
def test_statsmodels_engine_agrees_with_studyhub_engine(rater_by_arm: bool) -> None:
    # The same model fitted by statsmodels MixedLM (one group, vc_formula-style
    # variance components, REML) and by the sufficient-statistics REML.
    rng = np.random.default_rng(21)
    data = crossed(rng, n_raters=6, n_cases=15)
    a = data["arm"].map({"control": 0, "gradcam": 1, "ig": 2}).to_numpy()
    r = data["reader"].str[1:].astype(int).to_numpy()
    data["score"] += rng.normal(0, 0.5, (3, 6))[a, r]
    common = dict(
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        hypothesis="two_sided",
        multiplicity="none",
        rater_by_arm=rater_by_arm,
    )
    ours = compare_arms(data, **common)
    sm = compare_arms(data, **common, engine="statsmodels")
    np.testing.assert_allclose(sm.contrasts["estimate"], ours.contrasts["estimate"], atol=1e-4)
    np.testing.assert_allclose(sm.contrasts["se"], ours.contrasts["se"], rtol=1e-3)
    assert set(sm.variance_components) == set(ours.variance_components)
    for name, value in ours.variance_components.items():
        assert value > 0.01, name  # interior solution: components comparable
        assert sm.variance_components[name] == pytest.approx(value, rel=1e-3), name
    assert sm.details["engine"] == "statsmodels" and ours.details["engine"] == "studyhub"
    assert sm.details["reml_criterion"] == pytest.approx(ours.details["reml_criterion"], abs=1e-4)
    # statsmodels gives no denominator df: Wald z tests, normal intervals
    assert np.isinf(sm.contrasts["df"]).all()
    z = sm.contrasts["statistic"].to_numpy()
    np.testing.assert_allclose(sm.contrasts["p_value"], 2 * stats.norm.sf(abs(z)), rtol=1e-10)
    half = stats.norm.ppf(0.975) * sm.contrasts["se"]
    np.testing.assert_allclose(sm.contrasts["ci_high"], sm.contrasts["estimate"] + half)


@pytest.mark.parametrize("rater_by_arm", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_mixed_model_equals_balanced_anova_shortcut(seed: int, rater_by_arm: bool) -> None:
    # The exact closed-form REML test used by power_simulation must equal the
    # fitted model, including seeds where variance components hit zero (pooled
    # mean squares and degrees of freedom).
    rng = np.random.default_rng(seed)
    sd_rater = 0.0 if seed % 2 else 0.6
    data = crossed(rng, n_raters=5, n_cases=8, sd_rater=sd_rater, sd_case=0.3 * (seed % 3))
    a = data["arm"].map({"control": 0, "gradcam": 1, "ig": 2}).to_numpy()
    r = data["reader"].str[1:].astype(int).to_numpy()
    data["score"] += rng.normal(0, [0.0, 0.3, 0.8][seed % 3], (3, 5))[a, r]
    result = compare_arms(
        data,
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        hypothesis="two_sided",
        multiplicity="none",
        rater_by_arm=rater_by_arm,
    )
    cube = data.assign(r=r).sort_values(["arm", "r", "case"])["score"].to_numpy()
    est, se, df, p = balanced_mixed_model_test(
        cube.reshape(1, 3, 5, 8), null=0.0, hypothesis="two_sided", rater_by_arm=rater_by_arm
    )
    np.testing.assert_allclose(result.contrasts["estimate"], est[0], rtol=1e-9)
    np.testing.assert_allclose(result.contrasts["se"], se[0], rtol=1e-5)
    np.testing.assert_allclose(result.contrasts["df"], df[0], rtol=1e-3)
    np.testing.assert_allclose(result.contrasts["p_value"], p[0], rtol=1e-4, atol=1e-8)


def test_hypotheses_direction_and_interval_consistency() -> None:
    data = crossed(np.random.default_rng(5), effects=(0.0, 0.25, -0.1))
    common = dict(arm="arm", rating="score", rater="reader", case="case", reference="control")
    sup = compare_arms(data, **common, hypothesis="superiority", multiplicity="none").contrasts
    two = compare_arms(data, **common, hypothesis="two_sided", multiplicity="none").contrasts
    ni = compare_arms(
        data, **common, hypothesis="non_inferiority", margin=0.5, multiplicity="none"
    ).contrasts
    # one-sided p for "difference > 0"; two-sided p is twice the smaller tail
    t = sup["statistic"].to_numpy()
    np.testing.assert_allclose(sup["p_value"], stats.t.sf(t, sup["df"]), rtol=1e-10)
    np.testing.assert_allclose(two["p_value"], 2 * stats.t.sf(abs(t), two["df"]), rtol=1e-10)
    # non-inferiority shifts the null to -margin: statistic (estimate + margin) / se
    np.testing.assert_allclose(ni["statistic"], (ni["estimate"] + 0.5) / ni["se"], rtol=1e-10)
    # one-sided tests report the (1 - 2 alpha) interval: reject <=> ci_low > -margin
    assert list(ni["reject"]) == list(ni["ci_low"] > -0.5)
    assert list(sup["reject"]) == list(sup["ci_low"] > 0)
    assert (ni["p_value"] < sup["p_value"]).all()


def test_multiplicity_is_applied() -> None:
    data = crossed(np.random.default_rng(2))
    res = compare_arms(
        data,
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        contrasts=[("ig", "control"), ("gradcam", "control"), ("ig", "gradcam")],
        multiplicity="bonferroni",
    )
    table = res.contrasts
    assert list(table["contrast"]) == ["ig - control", "gradcam - control", "ig - gradcam"]
    np.testing.assert_allclose(table["p_adjusted"], np.minimum(1, 3 * table["p_value"]))
    assert list(table["reject"]) == list(table["p_adjusted"] <= 0.05)
    assert res.confidence == pytest.approx(0.90)


def test_rater_by_arm_component() -> None:
    rng = np.random.default_rng(8)
    data = crossed(rng, n_raters=8, n_cases=15)
    extra = rng.normal(0, 0.8, size=(3, 8))
    a = data["arm"].map({"control": 0, "gradcam": 1, "ig": 2}).to_numpy()
    r = data["reader"].str[1:].astype(int).to_numpy()
    data["score"] += extra[a, r]
    base = compare_arms(
        data, arm="arm", rating="score", rater="reader", case="case", reference="control"
    )
    wide = compare_arms(
        data,
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        rater_by_arm=True,
    )
    assert wide.variance_components["rater:arm"] > 0.1
    # generalising to new raters: wider intervals, few degrees of freedom
    assert (wide.contrasts["se"] > base.contrasts["se"]).all()
    assert (wide.contrasts["df"] < 30).all()


# ------------------------------------------------------------------ Friedman / Wilcoxon


def test_friedman_through_compare_arms() -> None:
    data = pd.read_csv(REFERENCE / "friedman_rounding_times" / "ratings_long.csv").assign(
        rater="H&W"
    )
    res = compare_arms(
        data,
        arm="method",
        rating="time",
        rater="rater",
        case="player",
        reference="round_out",
        method="friedman",
        hypothesis="two_sided",
    )
    assert res.omnibus is not None
    # R 4.2.2 friedman.test(RoundingTimes): chi-squared 11.142857, p 0.003805041
    assert res.omnibus.statistic == pytest.approx(11.142857142857, abs=1e-9)
    assert res.omnibus.p_value == pytest.approx(0.003805040776, abs=1e-10)
    assert set(res.contrasts["contrast"]) == {
        "narrow_angle - round_out",
        "wide_angle - round_out",
    }


def test_wilcoxon_through_compare_arms() -> None:
    d = depression()
    long = d.melt(id_vars="patient", var_name="visit", value_name="hamilton").assign(rater="HW")
    common = dict(
        arm="visit",
        rating="hamilton",
        rater="rater",
        case="patient",
        reference="second_visit_y",
        method="friedman",
        multiplicity="none",
    )
    sup = compare_arms(long, **common, hypothesis="superiority")
    # R wilcox.test(x, y, paired = TRUE, alternative = "greater"): V = 40, p = 0.01953125
    assert sup.contrasts["statistic"].iloc[0] == 40
    assert sup.contrasts["p_value"].iloc[0] == pytest.approx(0.01953125, abs=1e-9)
    two = compare_arms(long, **common, hypothesis="two_sided")
    assert two.contrasts["p_value"].iloc[0] == pytest.approx(0.0390625, abs=1e-9)
    assert math.isnan(sup.contrasts["se"].iloc[0])


# ------------------------------------------------------------------ bootstrap


def test_cluster_bootstrap_method() -> None:
    data = crossed(np.random.default_rng(6), effects=(0.0, 1.0, 0.0), n_raters=8, n_cases=20)
    res = compare_arms(
        data,
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        method="cluster_bootstrap",
        n_boot=400,
        seed=1,
    )
    table = res.contrasts.set_index("contrast")
    assert table.loc["gradcam - control", "reject"]
    assert table.loc["gradcam - control", "ci_low"] > 0
    assert res.details == {"n_boot": 400, "seed": 1, "scheme": "rescaled"}
    # the one-sided t test on the bootstrap's corrected SE and Satterthwaite df
    boot = cluster_bootstrap(
        data.rename(columns={"score": "y", "reader": "rater"}),
        arm="arm",
        rating="y",
        rater="rater",
        case="case",
        reference="control",
        n_boot=400,
        seed=1,
    ).contrasts.set_index("contrast")
    row, ref = table.loc["ig - control"], boot.loc["ig - control"]
    assert (row["se"], row["df"]) == (ref["se"], ref["df"])
    assert row["p_value"] == pytest.approx(stats.t.sf(ref["estimate"] / ref["se"], ref["df"]))
    q = stats.t.ppf(0.95, ref["df"])  # one-sided 5%: the 90% two-sided interval
    assert row["ci_low"] == pytest.approx(ref["estimate"] - q * ref["se"])


def test_missing_ratings_are_counted() -> None:
    data = crossed(np.random.default_rng(1))
    data.loc[[0, 5], "score"] = np.nan
    res = compare_arms(
        data, arm="arm", rating="score", rater="reader", case="case", reference="control"
    )
    assert res.n_missing_ratings == 2
    assert res.n_obs == len(data) - 2
    assert list(res.arm_means["arm"]) == ["control", "gradcam", "ig"]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating": "usefulness"}, "column(s) rating='usefulness' not in the data frame"),
        ({"reference": None}, "neither reference nor contrasts was given"),
        ({"reference": "lime"}, "reference arm 'lime' is not in column 'arm'"),
        ({"contrasts": [("ig", "shap")]}, "names arm 'shap', which is not in column 'arm'"),
        ({"contrasts": [("ig", "ig")]}, "compares an arm with itself"),
        ({"method": "anova"}, "method 'anova' is unknown; use one of mixed_model"),
        ({"hypothesis": "equivalence"}, "hypothesis 'equivalence' is unknown"),
        ({"hypothesis": "non_inferiority"}, "with margin=0 is a superiority test"),
        ({"margin": 0.3}, "margin=0.3 is only used with hypothesis='non_inferiority'"),
        (
            {"hypothesis": "non_inferiority", "margin": 0.3, "method": "ordinal"},
            "method='ordinal' estimates log odds ratios",
        ),
        ({"alpha": 0.7}, "alpha is 0.7; pass a significance level between 0 and 0.5"),
        ({"multiplicity": "hommel"}, "multiplicity 'hommel' is unknown"),
        ({"rater_by_arm": True, "method": "friedman"}, "rater_by_arm=True applies to"),
        (
            {"engine": "statsmodels", "method": "friedman"},
            "engine='statsmodels' applies to method='mixed_model' only (got 'friedman'); "
            "drop engine= or use method='mixed_model'",
        ),
        ({"engine": "lme4"}, "engine 'lme4' is unknown; use one of studyhub, statsmodels"),
    ],
)
def test_errors_name_the_problem(kwargs: dict, message: str) -> None:
    data = crossed(np.random.default_rng(0))
    args = dict(arm="arm", rating="score", rater="reader", case="case", reference="control")
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        compare_arms(data, **args)
    assert message in str(info.value)


def test_errors_on_bad_data() -> None:
    data = crossed(np.random.default_rng(0))
    args = dict(arm="arm", rating="score", rater="reader", case="case", reference="control")
    with pytest.raises(DataError, match="rating column 'score' is constant"):
        compare_arms(data.assign(score=3.0), **args)
    with pytest.raises(DataError, match="has non-numeric value 'good'"):
        compare_arms(
            data.assign(score=data["score"].astype(object).where(data.index > 0, "good")), **args
        )
    with pytest.raises(
        DataError, match=r"arm column 'arm' has a missing value \(row 0\); every row needs its arm"
    ):
        compare_arms(data.assign(arm=data["arm"].where(data.index > 0, None)), **args)
    with pytest.raises(DataError, match="rater column 'reader' has 1 distinct value"):
        compare_arms(data.assign(reader="r0"), **args)
    with pytest.raises(DataError, match="needs at least 3 rating categories, found 2"):
        compare_arms(data.assign(score=(data["score"] > 0).astype(float)), **args, method="ordinal")


# ------------------------------------------------------------------ simulation


@pytest.mark.slow
def test_mixed_model_type_i_error_and_coverage() -> None:
    # 4000 simulated null studies (6 raters x 10 cases x 2 arms) analysed with the
    # exact closed-form REML test, shown identical to compare_arms above.
    rng = np.random.default_rng(2024)
    n = 4000
    y = (
        rng.normal(0, 1, (n, 2, 6, 10))
        + rng.normal(0, 0.7, (n, 1, 6, 1))
        + rng.normal(0, 0.9, (n, 1, 1, 10))
    )
    est, se, df, p_one = balanced_mixed_model_test(y, null=0.0, hypothesis="superiority")
    _, _, _, p_two = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided")
    mcse = math.sqrt(0.05 * 0.95 / n)
    assert abs(float(np.mean(p_one <= 0.05)) - 0.05) < 3 * mcse
    assert abs(float(np.mean(p_two <= 0.05)) - 0.05) < 3 * mcse
    half = stats.t.ppf(0.975, df) * se
    covered = float(np.mean((est - half <= 0) & (est + half >= 0)))
    assert abs(covered - 0.95) < 3 * mcse
    # and the non-inferiority test at the margin boundary (true difference = -margin)
    _, _, _, p_ni = balanced_mixed_model_test(
        y - 0.3 * (np.arange(2) == 1)[None, :, None, None], null=-0.3, hypothesis="non_inferiority"
    )
    assert abs(float(np.mean(p_ni <= 0.05)) - 0.05) < 3 * mcse


@pytest.mark.slow
def test_mixed_model_fits_reject_at_nominal_rate() -> None:
    # 300 full compare_arms fits (not the shortcut) under the null: a coarse check
    # that the fitted model itself is calibrated (3 Monte Carlo SE).
    rng = np.random.default_rng(99)
    rejections = 0
    n = 300
    for _ in range(n):
        data = crossed(rng, n_arms=2, n_raters=5, n_cases=8, effects=(0.0, 0.0))
        res = compare_arms(
            data, arm="arm", rating="score", rater="reader", case="case", reference="control"
        )
        rejections += bool(res.contrasts["reject"].iloc[0])
    assert abs(rejections / n - 0.05) < 3 * math.sqrt(0.05 * 0.95 / n)
