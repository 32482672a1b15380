"""Tests of studyhub.stats.ordinal against statsmodels' OrderedModel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.compare import compare_arms
from studyhub.stats.ordinal import fit_proportional_odds
from tests.stats.helpers import crossed


def test_ordinal_matches_statsmodels_ordered_model() -> None:
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    data = crossed(np.random.default_rng(4), n_raters=5, n_cases=40)
    data["likert"] = np.clip(np.round(data["score"] + 3), 1, 5)
    res = compare_arms(
        data,
        arm="arm",
        rating="likert",
        rater="reader",
        case="case",
        reference="control",
        method="ordinal",
        hypothesis="two_sided",
        multiplicity="none",
    )
    exog = pd.concat(
        [
            pd.get_dummies(data["arm"], dtype=float)[["gradcam", "ig"]],
            pd.get_dummies(data["reader"], dtype=float).iloc[:, 1:],
        ],
        axis=1,
    )
    endog = pd.Series(pd.Categorical(data["likert"], ordered=True))
    fit = OrderedModel(endog, exog, distr="logit").fit(
        method="bfgs",
        disp=False,
        maxiter=5000,
        gtol=1e-9,
        cov_type="cluster",
        cov_kwds={"groups": data["case"].to_numpy()},
    )
    np.testing.assert_allclose(res.contrasts["estimate"], fit.params.iloc[:2], rtol=1e-4)
    np.testing.assert_allclose(res.contrasts["se"], fit.bse.iloc[:2], rtol=1e-3)


def test_fit_proportional_odds_matches_statsmodels_directly() -> None:
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    rng = np.random.default_rng(12)
    n = 600
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n).astype(float)])
    groups = rng.integers(0, 60, n)
    latent = x @ np.array([0.8, -0.5]) + rng.normal(0, 0.7, 60)[groups] + rng.logistic(size=n)
    codes = np.searchsorted(np.array([-1.5, 0.0, 1.2]), latent)
    fit = fit_proportional_odds(codes, x, groups)
    ref = OrderedModel(pd.Series(pd.Categorical(codes, ordered=True)), x, distr="logit").fit(
        method="bfgs",
        disp=False,
        maxiter=5000,
        gtol=1e-9,
        cov_type="cluster",
        cov_kwds={"groups": groups},
    )
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params[:2], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), ref.bse[:2], rtol=1e-3)
    # statsmodels parametrises the thresholds as tau_1 and log increments
    thresholds = ref.model.transform_threshold_params(ref.params)[1:-1]
    np.testing.assert_allclose(fit.thresholds, thresholds, rtol=1e-4)
    assert (np.diff(fit.thresholds) > 0).all()


def test_fit_proportional_odds_refuses_bad_codes() -> None:
    x = np.arange(8, dtype=float)[:, None]
    groups = np.arange(8) % 4
    with pytest.raises(DataError, match=r"codes take the values \[0, 2\]; pass the ordinal"):
        fit_proportional_odds(np.array([0, 2] * 4), x, groups)
    with pytest.raises(DataError, match="groups has fewer than 2 clusters"):
        fit_proportional_odds(np.array([0, 1] * 4), x, np.zeros(8))


def test_converged_certifies_the_optimum_of_good_fits() -> None:
    # BFGS's own verdict flagged about 45 % of good ordinal fits as unconverged
    flagged = 0
    for seed in range(40):
        data = crossed(np.random.default_rng(seed), n_raters=6, n_cases=40)
        data["likert"] = np.clip(np.round(data["score"] + 3), 1, 5)
        res = compare_arms(
            data,
            arm="arm",
            rating="likert",
            rater="reader",
            case="case",
            reference="control",
            method="ordinal",
            hypothesis="two_sided",
            multiplicity="none",
        )
        flagged += not res.details["converged"]
    assert flagged == 0


def test_converged_is_false_away_from_the_optimum() -> None:
    from studyhub.stats.ordinal import _at_optimum

    hess = np.array([[4.0, 1.0], [1.0, 3.0]])
    assert _at_optimum(hess, np.array([1e-6, -1e-6]))
    # a gradient a Newton step could still gain from, and a saddle, are not optima
    assert not _at_optimum(hess, np.array([0.1, 0.0]))
    assert not _at_optimum(np.array([[4.0, 0.0], [0.0, -1.0]]), np.zeros(2))


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (lambda s: s, "not all whole numbers"),
        (lambda s: np.round(s * 10), "more than 20"),
    ],
)
def test_continuous_ratings_are_refused_by_the_ordinal_method(transform, reason: str) -> None:
    data = crossed(np.random.default_rng(0))
    data["score"] = transform(data["score"])
    with pytest.raises(
        DataError, match=f"models an ordinal scale .*{reason}; use method='mixed_model'"
    ):
        compare_arms(
            data,
            arm="arm",
            rating="score",
            rater="reader",
            case="case",
            reference="control",
            method="ordinal",
        )
