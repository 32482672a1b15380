"""Tests of studyhub.stats.compare against published references and by simulation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.bootstrap import cluster_bootstrap
from studyhub.stats.compare import compare_arms
from tests.stats.helpers import REFERENCE, crossed, depression

# ------------------------------------------------------------------ mixed model


def _with_interactions(
    rng: np.random.Generator, data: pd.DataFrame, sd: tuple[float, float, float]
) -> pd.DataFrame:
    """Add rater x arm, case x arm and rater x case intercepts with SDs ``sd``."""
    a = data["arm"].map({"control": 0, "gradcam": 1, "ig": 2}).to_numpy()
    r = data["reader"].str[1:].astype(int).to_numpy()
    c = data["case"].to_numpy()
    n_r, n_c = r.max() + 1, c.max() + 1
    extra = (
        rng.normal(0, sd[0], (3, n_r))[a, r]
        + rng.normal(0, sd[1], (3, n_c))[a, c]
        + rng.normal(0, sd[2], (n_r, n_c))[r, c]
    )
    return data.assign(score=data["score"] + extra)


def test_mixed_model_agrees_with_statsmodels_mixedlm() -> None:
    # The default model, rating ~ arm + (1|rater) + (1|case) + (1|rater:arm) +
    # (1|case:arm) + (1|rater:case), written in statsmodels' own formula interface.
    import statsmodels.api as sm
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    rng = np.random.default_rng(12)
    data = _with_interactions(rng, crossed(rng, n_raters=6, n_cases=12), (0.5, 0.4, 0.4))
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
    assert result.details["random_effects"] == [
        "rater",
        "case",
        "rater:arm",
        "case:arm",
        "rater:case",
    ]
    assert result.details["converged"]
    frame = data.assign(
        g=0,
        ra=data["reader"] + data["arm"],
        ca=data["case"].astype(str) + data["arm"],
        rc=data["reader"] + data["case"].astype(str),
    )
    model = sm.MixedLM.from_formula(
        "score ~ C(arm)",
        data=frame,
        groups="g",
        re_formula="0",
        vc_formula={
            "reader": "0 + C(reader)",
            "case": "0 + C(case)",
            "ra": "0 + C(ra)",
            "ca": "0 + C(ca)",
            "rc": "0 + C(rc)",
        },
    )
    # statsmodels' REML criterion at studyhub's estimates is studyhub's, and its own
    # optimizer, started there, finds nothing better (from its default start it takes
    # 18 s here, and stops short of the optimum on about half of such studies).
    vc = result.variance_components
    ours = {"reader": "rater", "case": "case", "ra": "rater:arm", "ca": "case:arm"}
    ours["rc"] = "rater:case"
    start = MixedLMParams.from_components(
        cov_re=np.zeros((0, 0)),
        vcomp=np.array([vc[ours[name]] / vc["residual"] for name in model.exog_vc.names]),
    )
    fit = model.fit(reml=True, start_params=start, method="bfgs", gtol=1e-10)
    assert fit.converged
    assert -2 * fit.llf == pytest.approx(result.details["reml_criterion"], abs=1e-6)
    np.testing.assert_allclose(result.contrasts["estimate"], fit.fe_params[1:], rtol=1e-6)
    np.testing.assert_allclose(result.contrasts["se"], fit.bse_fe[1:], rtol=1e-5)
    sm_vc = dict(zip(fit.model.exog_vc.names, fit.vcomp, strict=True))
    ours = result.variance_components
    for name, theirs in [
        ("rater", "reader"),
        ("case", "case"),
        ("rater:arm", "ra"),
        ("case:arm", "ca"),
        ("rater:case", "rc"),
    ]:
        assert ours[name] == pytest.approx(sm_vc[theirs], rel=1e-4), name
    assert ours["residual"] == pytest.approx(fit.scale, rel=1e-5)


NO_INTERACTIONS = {"rater_by_arm": False, "case_by_arm": False, "rater_by_case": False}


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param({}, id="default"),
        pytest.param({"rater_by_case": False}, id="no_rc"),
        pytest.param(NO_INTERACTIONS, id="none"),
    ],
)
def test_statsmodels_engine_agrees_with_studyhub_engine(terms: dict) -> None:
    # The same model fitted by statsmodels MixedLM (one group, vc_formula-style
    # variance components, REML) and by the sufficient-statistics REML; both give
    # t tests with Satterthwaite degrees of freedom.
    rng = np.random.default_rng(21)
    data = _with_interactions(rng, crossed(rng, n_raters=6, n_cases=15), (0.5, 0.4, 0.4))
    common = dict(
        arm="arm",
        rating="score",
        rater="reader",
        case="case",
        reference="control",
        hypothesis="two_sided",
        multiplicity="none",
        **terms,
    )
    ours = compare_arms(data, **common)
    sm = compare_arms(data, **common, engine="statsmodels")
    assert sm.details["converged"], sm.details["convergence"]
    np.testing.assert_allclose(sm.contrasts["estimate"], ours.contrasts["estimate"], atol=1e-4)
    np.testing.assert_allclose(sm.contrasts["se"], ours.contrasts["se"], rtol=1e-3)
    np.testing.assert_allclose(sm.contrasts["df"], ours.contrasts["df"], rtol=1e-2)
    assert set(sm.variance_components) == set(ours.variance_components)
    for name, value in ours.variance_components.items():
        assert value > 0.01, name  # interior solution: components comparable
        assert sm.variance_components[name] == pytest.approx(value, rel=1e-3), name
    assert sm.details["engine"] == "statsmodels" and ours.details["engine"] == "studyhub"
    assert sm.details["reml_criterion"] == pytest.approx(ours.details["reml_criterion"], abs=1e-4)
    # t tests, not Wald z: p-values and intervals from t with the Satterthwaite df
    df = sm.contrasts["df"].to_numpy()
    assert np.all(np.isfinite(df))
    t = sm.contrasts["statistic"].to_numpy()
    np.testing.assert_allclose(sm.contrasts["p_value"], 2 * stats.t.sf(abs(t), df), rtol=1e-10)
    half = stats.t.ppf(0.975, df) * sm.contrasts["se"]
    np.testing.assert_allclose(sm.contrasts["ci_high"], sm.contrasts["estimate"] + half)


def test_statsmodels_stopping_short_is_reported() -> None:
    # statsmodels 0.15 MixedLM stops 0.76 above the REML optimum of this study while
    # reporting convergence (with every interaction it stopped short on about half of
    # such studies): the cross-check engine says so instead of passing it on.
    rng = np.random.default_rng(42)
    a, r, c = np.meshgrid(range(2), range(4), range(6), indexing="ij")
    y = (
        rng.normal(0, 0.5, 4)[r]
        + rng.normal(0, 0.8, 6)[c]
        + rng.normal(0, 0.3, (2, 4))[a, r]
        + rng.normal(0, 0.3, (2, 6))[a, c]
        + rng.normal(0, 1, a.shape)
    )
    data = pd.DataFrame({"arm": a.ravel(), "y": y.ravel(), "rater": r.ravel(), "case": c.ravel()})
    args = dict(arm="arm", rating="y", rater="rater", case="case", reference=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own warnings
        sm = compare_arms(data, **args, engine="statsmodels")
    ours = compare_arms(data, **args)
    gap = sm.details["reml_criterion"] - ours.details["reml_criterion"]
    assert gap > 0.5  # the premise: statsmodels stopped short
    assert ours.details["converged"] and not sm.details["converged"]
    assert sm.details["convergence"] == (
        f"statsmodels stopped at REML criterion {sm.details['reml_criterion']:.6f}, "
        f"{gap:.3g} above the optimum {ours.details['reml_criterion']:.6f} that studyhub's "
        "engine found for the same model (statsmodels reports convergence); use "
        "engine='studyhub'"
    )


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


def test_interactions_widen_the_intervals_to_new_raters_and_cases() -> None:
    rng = np.random.default_rng(8)
    data = _with_interactions(rng, crossed(rng, n_raters=8, n_cases=15), (0.8, 0.6, 0.0))
    args = dict(arm="arm", rating="score", rater="reader", case="case", reference="control")
    base = compare_arms(data, **args, **NO_INTERACTIONS)
    wide = compare_arms(data, **args)
    assert set(base.variance_components) == {"rater", "case", "residual"}
    assert wide.variance_components["rater:arm"] > 0.1
    assert wide.variance_components["case:arm"] > 0.1
    # generalising to new raters and cases: wider intervals, few degrees of freedom
    assert (wide.contrasts["se"] > 1.3 * base.contrasts["se"]).all()
    assert (wide.contrasts["df"] < 30).all() and (base.contrasts["df"] > 200).all()
    # the point estimates of a balanced design are the arm-mean differences either way
    np.testing.assert_allclose(wide.contrasts["estimate"], base.contrasts["estimate"], atol=1e-9)


def test_rater_by_case_is_left_to_the_residual_when_not_separable() -> None:
    # Each rater reads each case under one arm (a split-plot reading): the rater x
    # case variance is part of the residual, the same model without the term.
    rng = np.random.default_rng(4)
    data = crossed(rng, n_arms=2, n_raters=6, n_cases=12, effects=(0.0, 0.4))
    rater = data["reader"].str[1:].astype(int)
    data = data[(rater + data["case"]) % 2 == (data["arm"] == "gradcam")]
    res = compare_arms(
        data, arm="arm", rating="score", rater="reader", case="case", reference="control"
    )
    assert "rater:case" not in res.variance_components
    assert res.details["random_effects"] == ["rater", "case", "rater:arm", "case:arm"]
    assert res.details["rater_by_case"].startswith("not separable from the residual")
    assert res.details["converged"]


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
        compare_arms(data[data["reader"] == "r0"], **args)
    with pytest.raises(DataError, match="needs at least 3 rating categories, found 2"):
        compare_arms(data.assign(score=(data["score"] > 0).astype(float)), **args, method="ordinal")


# ------------------------------------------------------------------ degenerate data


def _args(**extra: object) -> dict:
    return dict(arm="arm", rating="score", rater="reader", case="case", reference="control") | (
        extra
    )


@pytest.mark.parametrize("method", ["mixed_model", "friedman", "cluster_bootstrap", "ordinal"])
def test_duplicate_readings_are_refused_by_every_method(method: str) -> None:
    # two rows for one (rater, case, arm) were silently averaged or double-counted
    data = crossed(np.random.default_rng(0)).rename(index=lambda i: i + 2)
    doubled = pd.concat([data, data.loc[[5, 9]].assign(score=4.0)])
    with pytest.raises(DataError) as info:
        compare_arms(doubled, **_args(method=method))
    assert str(info.value) == (
        "2 (rater, case, arm) combination(s) have more than one rating (rows 5, 9, 5, 9; "
        "e.g. reader='r0', case=3, arm='control'); keep one rating per rater, case and arm: "
        "drop repeat readings (they belong to the intra-rater analysis) and superseded answers"
    )


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_ratings_are_refused(value: float) -> None:
    data = crossed(np.random.default_rng(0))
    data.loc[7, "score"] = value
    for engine in ("studyhub", "statsmodels"):
        with pytest.raises(DataError) as info:
            compare_arms(data, **_args(engine=engine))
        assert str(info.value) == (
            f"rating column 'score' has an infinite value ({value:g} at row 7); every value in "
            "'score' must be a finite number: correct it or drop the row"
        )


def test_ratings_constant_within_each_arm_are_refused() -> None:
    # once: p = 0 with SE 1e-9 and df = inf
    data = crossed(np.random.default_rng(0))
    constant = data.assign(score=data["arm"].map({"control": 2.0, "gradcam": 3.0, "ig": 4.0}))
    with pytest.raises(DataError) as info:
        compare_arms(constant, **_args())
    assert str(info.value) == (
        "rating column 'score' is constant within each arm of 'arm' ('control': 2, "
        "'gradcam': 3, 'ig': 4), so the ratings have no variance left to test the arm "
        "differences against; check that the right column was passed"
    )


def test_zero_residual_variance_is_refused() -> None:
    # ratings that are arm + rater + case effects exactly: no residual variance
    data = crossed(np.random.default_rng(0))
    r = data["reader"].str[1:].astype(int)
    exact = data.assign(
        score=data["arm"].map({"control": 0.0, "gradcam": 0.5, "ig": 1.0})
        + 0.3 * r
        + 0.1 * data["case"]
    )
    with pytest.raises(DataError) as info:
        compare_arms(exact, **_args())
    assert str(info.value).startswith(
        "the residual variance is estimated as zero: the fixed and random effects (rater, "
        "case, rater:arm, case:arm, rater:case) explain the response exactly"
    )


def test_a_large_offset_leaves_the_comparison_unchanged() -> None:
    # Satterthwaite df drifted from 214 to 8,505 after adding 1e4 to every rating
    rng = np.random.default_rng(3)
    data = _with_interactions(rng, crossed(rng), (0.3, 0.3, 0.3))
    base = compare_arms(data, **_args()).contrasts
    moved = compare_arms(data.assign(score=data["score"] + 1e4), **_args()).contrasts
    for column in ("estimate", "se", "df", "p_value", "ci_low"):
        np.testing.assert_allclose(moved[column], base[column] + 0.0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d[d["reader"].isin(["r0", "r1"])],
            "the mixed model with a random rater x arm intercept needs at least 3 raters to "
            "estimate how much raters differ in their benefit from arm to arm, but has 2; add "
            "raters, or pass rater_by_arm=False for an analysis conditional on these raters "
            "(a sensitivity analysis, not a primary one)",
        ),
        (
            lambda d: d[d["case"] < 2],
            "the mixed model with a random case x arm intercept needs at least 3 cases to "
            "estimate how much cases differ from arm to arm, but has 2; add cases, or pass "
            "case_by_arm=False for an analysis conditional on these cases (a sensitivity "
            "analysis, not a primary one)",
        ),
        (
            # each case read under each arm by one rater only (raters see every arm)
            lambda d: d[
                d["reader"].str[1:].astype(int)
                == (d["case"] + d["arm"].map({"control": 0, "gradcam": 1, "ig": 2})) % 6
            ],
            "every case x arm cell has one rating only (36 cells), so the case x arm variance "
            "cannot be told apart from the residual variance; have each case rated by at least "
            "2 raters under each arm (a fully crossed design), or pass case_by_arm=False",
        ),
        (
            # each rater reads one arm only: rater x arm is the rater variance
            lambda d: d[
                (d["reader"].str[1:].astype(int) % 3)
                == d["arm"].map({"control": 0, "gradcam": 1, "ig": 2})
            ].assign(case=lambda f: f["case"] * 10 + f["reader"].str[1:].astype(int) // 3),
            "no rater has ratings under more than one arm, so the rater x arm variance cannot "
            "be told apart from the rater variance: each of the 6 raters saw one arm only; use "
            "a design where raters see several arms, or pass rater_by_arm=False",
        ),
    ],
    ids=["two_raters", "two_cases", "one_rater_per_case_arm", "one_arm_per_rater"],
)
def test_too_little_data_for_the_interactions_is_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = crossed(np.random.default_rng(0))
    with pytest.raises(DataError) as info:
        compare_arms(change(data), **_args())
    assert str(info.value) == message


def test_the_old_two_intercept_model_is_still_available() -> None:
    # conditional on these raters and cases: a sensitivity analysis
    data = crossed(np.random.default_rng(0))
    res = compare_arms(data.loc[data["reader"].isin(["r0", "r1"])], **_args(**NO_INTERACTIONS))
    assert res.details["random_effects"] == ["rater", "case"]
    assert set(res.variance_components) == {"rater", "case", "residual"}
