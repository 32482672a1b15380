"""Tests of studyhub.stats.power: the closed-form mixed-model test, power and type I error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats.power import balanced_mixed_model_test, power_simulation

DESIGN = dict(n_raters=6, n_cases=20, sd_rater=0.5, sd_case=0.8, sd_residual=1.0)


def test_shortcut_agrees_with_statsmodels_mixedlm() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(21)
    n_arms, n_r, n_c = 3, 6, 15
    y = (
        rng.normal(0, 1, (1, n_arms, n_r, n_c))
        + rng.normal(0, 0.6, (1, 1, n_r, 1))
        + rng.normal(0, 0.8, (1, 1, 1, n_c))
        + np.array([0.0, 0.3, 0.6])[None, :, None, None]
    )
    est, se, df, _ = balanced_mixed_model_test(y, null=0.0, hypothesis="two_sided")
    a, r, c = (g.ravel() for g in np.meshgrid(range(n_arms), range(n_r), range(n_c), indexing="ij"))
    frame = pd.DataFrame({"score": y.ravel(), "arm": a, "rid": r, "cid": c, "g": 0})
    model = sm.MixedLM.from_formula(
        "score ~ C(arm)",
        data=frame,
        groups="g",
        re_formula="0",
        vc_formula={"rater": "0 + C(rid)", "case": "0 + C(cid)"},
    )
    fit = model.fit(reml=True)
    # statsmodels MixedLM (REML, crossed effects as variance components in one group)
    np.testing.assert_allclose(est[0], fit.fe_params[1:], rtol=1e-8)
    np.testing.assert_allclose(se[0], fit.bse_fe[1:], rtol=1e-3)
    assert df[0, 0] == n_arms * n_r * n_c - n_arms - n_r - n_c + 2


def test_power_matches_noncentral_t() -> None:
    # No interactions: the test is an exact t test, power = P(T_df(delta) > t_0.95)
    # with delta = effect / sqrt(2 sd^2 / (R C)) (textbook noncentral-t power).
    res = power_simulation(**DESIGN, effect=0.25, n_sims=4000, seed=1)
    df = 2 * 6 * 20 - 2 - 6 - 20 + 2
    delta = 0.25 / math.sqrt(2 / (6 * 20))
    exact = stats.nct.sf(stats.t.ppf(0.95, df), df, delta)
    assert abs(res.power - exact) < 3 * res.power_mcse
    assert abs(res.type_i_error - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert res.power_mcse == pytest.approx(math.sqrt(res.power * (1 - res.power) / 4000))
    assert res.design["n_raters"] == 6 and res.design["method"] == "mixed_model"


def test_non_inferiority_type_i_error_at_the_margin() -> None:
    res = power_simulation(
        **DESIGN, effect=0.0, hypothesis="non_inferiority", margin=0.3, n_sims=4000, seed=2
    )
    assert abs(res.type_i_error - 0.05) < 3 * res.type_i_error_mcse
    # true difference 0, margin 0.3: noncentral t with delta = 0.3 / sqrt(2 / (R C))
    df = 2 * 6 * 20 - 2 - 6 - 20 + 2
    exact = stats.nct.sf(stats.t.ppf(0.95, df), df, 0.3 / math.sqrt(2 / 120))
    assert abs(res.power - exact) < 3 * res.power_mcse


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


def test_rater_by_arm_variation_inflates_type_i_error() -> None:
    # The plan's model has no rater x arm term: if raters differ in their benefit,
    # the simulation shows the cost (what power_simulation is for).
    res = power_simulation(**DESIGN, effect=0.0, sd_rater_arm=0.4, n_sims=1000, seed=4)
    assert res.type_i_error > 0.15
    # analysing with the rater x arm term restores the nominal level
    fixed = power_simulation(
        **DESIGN, effect=0.0, sd_rater_arm=0.4, rater_by_arm=True, n_sims=4000, seed=4
    )
    assert abs(fixed.type_i_error - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert fixed.design["rater_by_arm"] is True


def test_other_methods_run() -> None:
    boot = power_simulation(
        **DESIGN, effect=0.5, method="cluster_bootstrap", n_sims=200, n_boot=200, seed=5
    )
    rank = power_simulation(**DESIGN, effect=0.5, method="friedman", n_sims=200, seed=5)
    assert boot.power > 0.5 and rank.power > 0.8
    assert boot.type_i_error < 0.1 and rank.type_i_error < 0.1
    assert boot.design["n_boot"] == 200


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
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    args: dict = dict(**DESIGN, effect=0.2, n_sims=200, margin=0.0)
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        power_simulation(**args)
    assert message in str(info.value)
