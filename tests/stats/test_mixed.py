"""Tests of studyhub.stats.mixed against lme4's Penicillin data (crossed random effects)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats._reml import RHO_MAX, minimise_deviance
from studyhub.stats.mixed import MixedModelFit, fit_crossed_mixed_model
from tests.stats.helpers import REFERENCE, expected

# ------------------------------------------------------------------ lme4 Penicillin


@cache
def _fit_penicillin(engine: str = "studyhub"):
    data = pd.read_csv(REFERENCE / "lme4_penicillin_crossed" / "data_long.csv")
    return fit_crossed_mixed_model(
        data["diameter"].to_numpy(),
        np.ones((len(data), 1)),
        {"plate": data["plate"].to_numpy(), "sample": data["sample"].to_numpy()},
        fe_names=["(Intercept)"],
        engine=engine,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module", params=["studyhub", "statsmodels"])
def penicillin_fit(request):
    """The Penicillin fit of each engine: both must reproduce lme4."""
    return _fit_penicillin(request.param)


def test_penicillin_published_lme4(penicillin_fit) -> None:
    fit = penicillin_fit
    sd = {k: math.sqrt(v) for k, v in fit.variance_components.items()}
    # lme4 reference page for Penicillin (docs/reference/Penicillin.html, commit 32b5bfd):
    # "REML criterion at convergence: 330.8606", SDs plate 0.8467, sample 1.9316,
    # residual 0.5499, fixed effect (Intercept) 22.97.
    assert round(fit.reml_criterion, 4) == 330.8606
    assert round(sd["plate"], 4) == 0.8467
    assert round(sd["sample"], 4) == 1.9316
    assert round(sd["residual"], 4) == 0.5499
    assert round(float(fit.fe_params[0]), 2) == 22.97
    assert fit.n_obs == 144 and fit.converged


def test_penicillin_more_digits(penicillin_fit) -> None:
    fit = penicillin_fit
    vc = fit.variance_components
    lme4 = expected("lme4_penicillin_crossed")["lme4_1_1_31_REML_more_digits"]
    # R 4.2.2 + lme4 1.1.31 summary, run for the reference collection (SOURCE.md);
    # lme4 stops within its optimizer tolerance, so compare at 1e-3 relative.
    assert vc["plate"] == pytest.approx(0.7169051410, rel=1e-3)
    assert vc["sample"] == pytest.approx(3.7311318423, rel=1e-3)
    assert vc["residual"] == pytest.approx(0.3024149562, rel=1e-3)
    assert fit.reml_criterion == pytest.approx(330.860589, abs=1e-5)
    assert float(fit.fe_params[0]) == pytest.approx(22.97222222, abs=1e-8)
    assert lme4["intercept_se"] == pytest.approx(math.sqrt(fit.cov_fe[0, 0]), rel=1e-3)
    # Closed-form REML (= ANOVA) solution of this balanced design (expected.json,
    # block exact_REML_equals_ANOVA_for_this_balanced_design): we converge closer
    # to it than lme4 does.
    assert vc["plate"] == pytest.approx(0.716908212560386, rel=1e-5)
    assert vc["sample"] == pytest.approx(3.7309178743961393, rel=1e-5)
    assert vc["residual"] == pytest.approx(0.30241545893719807, rel=1e-5)
    assert math.sqrt(fit.cov_fe[0, 0]) == pytest.approx(0.8085733909854874, rel=1e-5)
    # statsmodels 0.15.0 MixedLM, one group + vc_formula, reml=True (expected.json,
    # crosscheck_statsmodels_MixedLM): same model, agrees to ~1e-4.
    assert vc["plate"] == pytest.approx(0.71684214, rel=2e-4)
    assert vc["sample"] == pytest.approx(3.73135476, rel=2e-4)
    assert vc["residual"] == pytest.approx(0.30241909, rel=2e-4)


# ------------------------------------------------------------------ statsmodels engine


def test_engines_agree_on_penicillin() -> None:
    a, b = _fit_penicillin("studyhub"), _fit_penicillin("statsmodels")
    assert (a.engine, b.engine) == ("studyhub", "statsmodels")
    for name, value in a.variance_components.items():
        assert b.variance_components[name] == pytest.approx(value, rel=1e-5), name
    np.testing.assert_allclose(b.fe_params, a.fe_params, rtol=1e-10)
    np.testing.assert_allclose(b.cov_fe, a.cov_fe, rtol=1e-5)
    assert b.reml_criterion == pytest.approx(a.reml_criterion, abs=1e-6)


def test_statsmodels_fit_gets_satterthwaite_df_of_the_same_model() -> None:
    # The statsmodels engine's contrasts are t tests: Satterthwaite df from studyhub's
    # REML deviance at statsmodels' estimates, equal to the studyhub fit's df.
    a, b = _fit_penicillin("studyhub"), _fit_penicillin("statsmodels")
    df_a, df_b = a.satterthwaite_df(np.ones(1)), b.satterthwaite_df(np.ones(1))
    assert df_b == pytest.approx(df_a, rel=1e-4)
    assert b.converged and "within" in b.convergence
    # In this balanced design Var(mean) = (MS_plate + MS_sample - MS_resid) / 144 and
    # Satterthwaite's df is that combination's (Satterthwaite 1946), computed here
    # from the ANOVA table of the data.
    data = pd.read_csv(REFERENCE / "lme4_penicillin_crossed" / "data_long.csv")
    wide = data.pivot(index="plate", columns="sample", values="diameter").to_numpy()
    grand = wide.mean()
    ms_p = 6 * np.sum((wide.mean(axis=1) - grand) ** 2) / 23
    ms_s = 24 * np.sum((wide.mean(axis=0) - grand) ** 2) / 5
    resid = wide - wide.mean(axis=1, keepdims=True) - wide.mean(axis=0, keepdims=True) + grand
    ms_e = np.sum(resid**2) / 115
    combo = ms_p + ms_s - ms_e
    exact = combo**2 / (ms_p**2 / 23 + ms_s**2 / 5 + ms_e**2 / 115)
    assert df_a == pytest.approx(exact, rel=1e-5)
    assert math.sqrt(combo / 144) == pytest.approx(math.sqrt(a.cov_fe[0, 0]), rel=1e-6)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(DataError) as info:
        _fit_penicillin("lme4")
    assert str(info.value) == "engine 'lme4' is unknown; use one of studyhub, statsmodels"


def test_hand_built_fit_has_no_satterthwaite_df() -> None:
    fit = MixedModelFit(
        fe_names=["x"],
        fe_params=np.zeros(1),
        cov_fe=np.eye(1),
        variance_components={"residual": 1.0},
        reml_criterion=0.0,
        n_obs=3,
        converged=True,
    )
    with pytest.raises(DataError) as info:
        fit.satterthwaite_df(np.ones(1))
    assert str(info.value) == (
        "Satterthwaite degrees of freedom need the REML deviance of the fit, which this "
        "'studyhub' fit does not carry; fit it with fit_crossed_mixed_model"
    )


# ------------------------------------------------------------------ degenerate data


def _crossed_cells(seed: int, n_r: int = 6, n_c: int = 10) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    r, c = (g.ravel() for g in np.meshgrid(range(n_r), range(n_c), indexing="ij"))
    y = rng.normal(0, 0.7, n_r)[r] + rng.normal(0, 0.9, n_c)[c] + rng.normal(0, 1, r.size)
    return y, r, c


def test_a_large_offset_changes_nothing() -> None:
    # Ratings offset by 1e4 once drifted the Satterthwaite df from 214 to 8,505
    # (the sufficient statistics lost eight digits); the response is now centred.
    y, r, c = _crossed_cells(3)
    x = np.column_stack([np.ones(r.size), (r % 2).astype(float)])
    base = fit_crossed_mixed_model(y, x, {"rater": r, "case": c})
    moved = fit_crossed_mixed_model(y + 1e4, x, {"rater": r, "case": c})
    assert moved.fe_params[0] == pytest.approx(base.fe_params[0] + 1e4, abs=1e-8)
    assert moved.fe_params[1] == pytest.approx(base.fe_params[1], abs=1e-9)
    for name, value in base.variance_components.items():
        assert moved.variance_components[name] == pytest.approx(value, rel=1e-7), name
    contrast = np.array([0.0, 1.0])
    assert moved.satterthwaite_df(contrast) == pytest.approx(
        base.satterthwaite_df(contrast), rel=1e-6
    )
    assert moved.reml_criterion == pytest.approx(base.reml_criterion, abs=1e-7)


def test_response_explained_by_the_fixed_effects_is_refused() -> None:
    _, r, c = _crossed_cells(0)
    x = np.column_stack([np.ones(r.size), (c % 2).astype(float)])
    with pytest.raises(DataError) as info:
        fit_crossed_mixed_model(3.0 + 2.0 * (c % 2), x, {"rater": r, "case": c})
    assert str(info.value) == (
        "the response is explained exactly by the fixed effects (no variation is left once "
        "they are fitted), so no variance can be estimated; check the response column and "
        "the design"
    )


def test_zero_residual_variance_is_refused() -> None:
    # rater and case effects without noise: the residual variance is zero and the
    # REML deviance falls without bound; once p = 0 with SE 1e-9 and df = inf
    _, r, c = _crossed_cells(1)
    exact = (
        np.random.default_rng(1).normal(0, 1, 6)[r] + np.random.default_rng(2).normal(0, 1, 10)[c]
    )
    with pytest.raises(DataError) as info:
        fit_crossed_mixed_model(exact, np.ones((r.size, 1)), {"rater": r, "case": c})
    assert "the residual variance is estimated as zero: the fixed and random effects " in str(
        info.value
    )
    assert "(rater, case) explain the response exactly, so no test or interval exists" in str(
        info.value
    )


# ------------------------------------------------------------------ convergence


def test_converged_is_false_short_of_an_optimum() -> None:
    # A deviance that falls without end has no optimum where the search stops:
    # the certificate (Newton decrement, positive Hessian) must say so.
    opt = minimise_deviance(lambda rho: -math.log1p(float(rho[0])), 1)
    assert not opt.converged
    assert opt.decrement > 1e-6 and 1e5 < opt.rho[0] <= RHO_MAX
    # and a smooth bowl is certified, with its minimum found to 1e-6
    bowl = minimise_deviance(lambda rho: float(np.sum((rho - [0.5, 2.0]) ** 2)) + 3.0, 2)
    assert bowl.converged and bowl.decrement < 1e-6
    np.testing.assert_allclose(bowl.rho, [0.5, 2.0], atol=1e-6)
    # a minimum on the boundary (rho = 0 with a positive slope) is an optimum too
    edge = minimise_deviance(lambda rho: float((rho[0] + 1.0) ** 2), 1)
    assert edge.converged and edge.rho[0] == 0.0


def test_converged_is_true_at_the_optimum() -> None:
    # Twenty crossed designs, some with components at zero: every fit certified,
    # and no coordinate move lowers the deviance (the old Nelder-Mead polish flagged
    # converged=False on 1.5-18 % of such fits at its evaluation limit).
    for seed in range(20):
        y, r, c = _crossed_cells(seed, n_r=4 + seed % 3, n_c=8)
        fit = fit_crossed_mixed_model(y, np.ones((r.size, 1)), {"rater": r, "case": c})
        assert fit.converged, (seed, fit.convergence)
        design = fit._design
        assert design is not None
        psi = np.array(list(fit.variance_components.values()))
        best = design.deviance(psi)
        for k in range(psi.size):
            for step in (1e-3, -1e-3):
                moved = psi.copy()
                moved[k] = max(moved[k] * (1 + step) + (step if moved[k] == 0 else 0), 0.0)
                assert design.deviance(moved) >= best - 1e-9, (seed, k, step)


def test_no_factor_is_refused() -> None:
    with pytest.raises(DataError) as info:
        fit_crossed_mixed_model(np.arange(4.0), np.ones((4, 1)), {})
    assert str(info.value) == ("no random factor was given; pass at least one, e.g. {'rater': ...}")
