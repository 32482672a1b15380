"""Tests of studyhub.stats.mixed against lme4's Penicillin data (crossed random effects)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.mixed import fit_crossed_mixed_model
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


def test_statsmodels_fit_has_no_satterthwaite_df() -> None:
    with pytest.raises(DataError) as info:
        _fit_penicillin("statsmodels").satterthwaite_df(np.ones(1))
    assert "Satterthwaite degrees of freedom need the REML deviance of the fit, which the " in (
        str(info.value)
    )
    assert "'statsmodels' engine does not provide; use Wald z tests" in str(info.value)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(DataError) as info:
        _fit_penicillin("lme4")
    assert str(info.value) == "engine 'lme4' is unknown; use one of studyhub, statsmodels"
