"""Tests of studyhub.stats.power: the closed-form mixed-model test, power and type I error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.mixed import fit_crossed_mixed_model
from studyhub.stats.power import balanced_mixed_model_test, power_simulation

DESIGN = dict(n_raters=6, n_cases=20, sd_rater=0.5, sd_case=0.8, sd_residual=1.0)


NO_INTERACTIONS = {"rater_by_arm": False, "case_by_arm": False, "rater_by_case": False}


def test_shortcut_agrees_with_statsmodels_mixedlm() -> None:
    # The closed-form balanced REML of the default model against statsmodels MixedLM
    # fitted to the same model (the statsmodels engine, checked against studyhub's
    # optimum), on a study with every variance component away from zero.
    rng = np.random.default_rng(13)
    n_arms, n_r, n_c = 3, 6, 12
    y = (
        rng.normal(0, 1, (1, n_arms, n_r, n_c))
        + rng.normal(0, 0.6, (1, 1, n_r, 1))
        + rng.normal(0, 0.8, (1, 1, 1, n_c))
        + rng.normal(0, 0.5, (1, n_arms, n_r, 1))
        + rng.normal(0, 0.4, (1, n_arms, 1, n_c))
        + rng.normal(0, 0.4, (1, 1, n_r, n_c))
        + np.array([0.0, 0.3, 0.6])[None, :, None, None]
    )
    est, se, df, _ = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided")
    a, r, c = (g.ravel() for g in np.meshgrid(range(n_arms), range(n_r), range(n_c), indexing="ij"))
    x = np.eye(n_arms)[a]
    factors = {
        "rater": r,
        "case": c,
        "rater:arm": r * n_arms + a,
        "case:arm": c * n_arms + a,
        "rater:case": r * n_c + c,
    }
    fit = fit_crossed_mixed_model(y.ravel(), x, factors, engine="statsmodels")
    assert fit.converged, fit.convergence
    contrasts = np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(est[0], contrasts @ fit.fe_params, rtol=1e-8)
    np.testing.assert_allclose(
        se[0], np.sqrt(np.diag(contrasts @ fit.cov_fe @ contrasts.T)), rtol=1e-3
    )
    # with no component at zero, the DBM quasi-F error term and its Satterthwaite df
    ss = {}
    g = y[0].mean()
    ar, ac = y[0].mean(axis=2), y[0].mean(axis=1)
    am, rm, cm = y[0].mean(axis=(1, 2)), y[0].mean(axis=(0, 2)), y[0].mean(axis=(0, 1))
    rc = y[0].mean(axis=0)
    ss["ra"] = n_c * np.sum((ar - am[:, None] - rm[None, :] + g) ** 2) / ((n_arms - 1) * (n_r - 1))
    ss["ca"] = n_r * np.sum((ac - am[:, None] - cm[None, :] + g) ** 2) / ((n_arms - 1) * (n_c - 1))
    resid = (
        y[0]
        - ar[:, :, None]
        - ac[:, None, :]
        - rc[None, :, :]
        + am[:, None, None]
        + rm[None, :, None]
        + cm[None, None, :]
        - g
    )
    ss["e"] = np.sum(resid**2) / ((n_arms - 1) * (n_r - 1) * (n_c - 1))
    error = ss["ra"] + ss["ca"] - ss["e"]
    np.testing.assert_allclose(se[0], math.sqrt(2 * error / (n_r * n_c)), rtol=1e-12)
    dbm_df = error**2 / (
        ss["ra"] ** 2 / ((n_arms - 1) * (n_r - 1))
        + ss["ca"] ** 2 / ((n_arms - 1) * (n_c - 1))
        + ss["e"] ** 2 / ((n_arms - 1) * (n_r - 1) * (n_c - 1))
    )
    np.testing.assert_allclose(df[0], dbm_df, rtol=1e-10)
    assert fit.satterthwaite_df(contrasts[0]) == pytest.approx(dbm_df, rel=1e-3)


def test_power_matches_noncentral_t() -> None:
    # No interactions, analysed without them: an exact t test, power = P(T_df(delta) >
    # t_0.95) with delta = effect / sqrt(2 sd^2 / (R C)) (textbook noncentral-t power).
    res = power_simulation(**DESIGN, effect=0.25, n_sims=4000, seed=1, **NO_INTERACTIONS)
    df = 2 * 6 * 20 - 2 - 6 - 20 + 2
    delta = 0.25 / math.sqrt(2 / (6 * 20))
    exact = stats.nct.sf(stats.t.ppf(0.95, df), df, delta)
    assert abs(res.power - exact) < 3 * res.power_mcse
    assert abs(res.type_i_error - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert res.power_mcse == pytest.approx(math.sqrt(res.power * (1 - res.power) / 4000))
    assert res.design["n_raters"] == 6 and res.design["method"] == "mixed_model"
    # The default model on the same data keeps the level, conservatively (0.024):
    # with the interaction variances truly zero their estimates are zero or noise, and
    # the error term spends degrees of freedom on them, as DBM / OR analyses do
    # (Hillis 2007). The price of not assuming raters and cases alike is power: 0.44
    # against 0.61 here, with 6 raters (5 df for the rater x arm mean square).
    full = power_simulation(**DESIGN, effect=0.25, n_sims=4000, seed=1)
    assert full.type_i_error < 0.05 + 2 * math.sqrt(0.05 * 0.95 / 4000)
    assert 0.6 * res.power < full.power < res.power - 5 * full.power_mcse
    assert full.design["rater_by_arm"] and full.design["case_by_arm"]


def test_non_inferiority_type_i_error_at_the_margin() -> None:
    res = power_simulation(
        **DESIGN,
        effect=0.0,
        hypothesis="non_inferiority",
        margin=0.3,
        sd_rater_arm=0.25,
        sd_case_arm=0.25,
        n_sims=4000,
        seed=2,
    )
    assert abs(res.type_i_error - 0.05) < 3 * res.type_i_error_mcse
    # without interactions and analysed without them: noncentral t with delta = 0.3 /
    # sqrt(2 / (R C))
    plain = power_simulation(
        **DESIGN,
        effect=0.0,
        hypothesis="non_inferiority",
        margin=0.3,
        n_sims=4000,
        seed=2,
        **NO_INTERACTIONS,
    )
    df = 2 * 6 * 20 - 2 - 6 - 20 + 2
    exact = stats.nct.sf(stats.t.ppf(0.95, df), df, 0.3 / math.sqrt(2 / 120))
    assert abs(plain.power - exact) < 3 * plain.power_mcse


def test_multiplicity_in_power() -> None:
    common = dict(**DESIGN, n_arms=4, effect=[0.3, 0.3, 0.0], n_sims=2000, seed=3)
    none = power_simulation(**common, multiplicity="none")
    holm = power_simulation(**common, multiplicity="holm")
    bonf = power_simulation(**common, multiplicity="bonferroni")
    assert list(holm.per_contrast["contrast"]) == ["arm1 - arm0", "arm2 - arm0", "arm3 - arm0"]
    assert none.power > holm.power >= bonf.power - 3 * bonf.power_mcse
    mcse = math.sqrt(0.05 * 0.95 / 2000)
    # family-wise error under the global null: controlled by Holm, inflated without
    assert holm.type_i_error < 0.05 + 3 * mcse
    assert none.type_i_error > 0.05 + 3 * mcse


def test_interactions_left_out_inflate_type_i_error() -> None:
    # Raters who differ in their benefit and cases on which an arm helps more: an
    # analysis without those terms rejects a true null far too often (what
    # power_simulation shows a planner); the default model keeps the nominal level.
    noisy = dict(**DESIGN, effect=0.0, sd_rater_arm=0.3, sd_case_arm=0.3, sd_rater_case=0.3)
    old = power_simulation(**noisy, n_sims=1000, seed=4, **NO_INTERACTIONS)
    assert old.type_i_error > 0.15
    fixed = power_simulation(**noisy, n_sims=4000, seed=4)
    assert abs(fixed.type_i_error - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert fixed.design["sd_rater_case"] == 0.3
    assert [fixed.design[t] for t in NO_INTERACTIONS] == [True, True, True]


def test_other_methods_run() -> None:
    boot = power_simulation(
        **DESIGN, effect=0.5, method="cluster_bootstrap", n_sims=200, n_boot=200, seed=5
    )
    rank = power_simulation(**DESIGN, effect=0.5, method="friedman", n_sims=200, seed=5)
    assert boot.power > 0.5 and rank.power > 0.8
    assert boot.type_i_error < 0.1 and rank.type_i_error < 0.1
    assert boot.design["n_boot"] == 200


def test_chunks_are_seeded_on_their_own() -> None:
    # the chunks run in any order, in any process (a Dask cluster): same result
    calls: list[int] = []

    def backwards(fn, chunks):  # type: ignore[no-untyped-def]
        calls.append(len(chunks))
        return [fn(c) for c in reversed(chunks)][::-1]

    design = dict(**DESIGN, effect=0.2, n_sims=600, seed=9)
    here = power_simulation(**design)
    there = power_simulation(**design, map_chunks=backwards)
    assert calls == [2 * 3]  # two scenarios of 600 studies, in chunks of 250
    assert (here.power, here.type_i_error) == (there.power, there.type_i_error)
    pd.testing.assert_frame_equal(here.per_contrast, there.per_contrast)


def test_seeded() -> None:
    a = power_simulation(**DESIGN, effect=0.2, n_sims=200, seed=9)
    b = power_simulation(**DESIGN, effect=0.2, n_sims=200, seed=9)
    assert a.power == b.power and a.type_i_error == b.type_i_error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_raters": 1}, "n_raters is 1; the design needs an integer of at least 2"),
        ({"sd_case": -1.0}, "sd_case is -1.0; pass a non-negative standard deviation"),
        ({"sd_residual": 0.0}, "sd_residual is 0.0; pass a positive residual SD"),
        ({"method": "ordinal"}, "method 'ordinal' cannot be simulated"),
        ({"hypothesis": "non_inferiority"}, "needs a margin > 0 (got 0.0)"),
        ({"margin": 0.2}, "margin=0.2 is only used with hypothesis='non_inferiority'"),
        ({"n_sims": 10}, "n_sims is 10; pass at least 100 simulated studies"),
        ({"effect": [0.1, 0.2], "n_arms": 2}, "effect has 2 values for 1 non-reference arm(s)"),
        ({"arms": ["a", "b", "c"], "n_arms": 2}, "arms has 3 names but n_arms is 2"),
        ({"multiplicity": "sidak"}, "multiplicity 'sidak' is unknown"),
        ({"rater_by_arm": True, "method": "friedman"}, "rater_by_arm=True applies to"),
        ({"sd_case_arm": -0.1}, "sd_case_arm is -0.1; pass a non-negative standard deviation"),
        ({"seed": -3}, "seed is -3; pass a non-negative integer seed"),
        (
            {"sd_rater_case": math.nan},
            "sd_rater_case is nan; pass a non-negative standard deviation",
        ),
        (
            {"n_raters": 2},
            "the mixed model with a random rater x arm intercept needs at least 3 raters to "
            "estimate how much raters differ in their benefit from arm to arm, but has 2; add "
            "raters, or pass rater_by_arm=False",
        ),
        (
            {"n_cases": 2},
            "the mixed model with a random case x arm intercept needs at least 3 cases",
        ),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    args: dict = dict(**DESIGN, effect=0.2, n_sims=200, margin=0.0)
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        power_simulation(**args)
    assert message in str(info.value)
