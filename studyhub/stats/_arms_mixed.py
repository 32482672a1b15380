"""The mixed-model path of :func:`studyhub.stats.compare.compare_arms`.

``rating ~ arm + (1|rater) + (1|case) + (1|rater:arm) + (1|case:arm) +
(1|rater:case)``, REML, Satterthwaite t tests of the contrasts: the primary
arm comparison, whose inference extends to new raters and new cases (see the
Notes of ``compare_arms``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from studyhub.stats._arms import PreparedArms, contrast_row, p_from_t, t_quantile
from studyhub.stats.mixed import Engine, MixedModelFit, fit_crossed_mixed_model

__all__ = ["fit_arms", "mixed_model_contrasts"]

#: The random factor of each interaction option.
TERM_FACTORS = {
    "rater_by_arm": "rater:arm",
    "case_by_arm": "case:arm",
    "rater_by_case": "rater:case",
}


def fit_arms(
    frame: pd.DataFrame, arms: list[Any], terms: dict[str, bool], *, engine: Engine
) -> MixedModelFit:
    """Cell-means coding (one fixed effect per arm: its model-based mean) and
    random intercepts for rater, case and the interactions switched on."""
    codes = np.asarray(pd.Categorical(frame["arm"], categories=arms).codes)
    x = np.zeros((len(frame), len(arms)))
    x[np.arange(len(frame)), codes] = 1.0
    raters = np.asarray(pd.factorize(frame["rater"])[0])
    cases = np.asarray(pd.factorize(frame["case"])[0])
    factors: dict[str, np.ndarray] = {"rater": raters, "case": cases}
    if terms.get("rater_by_arm"):
        factors["rater:arm"] = raters * len(arms) + codes
    if terms.get("case_by_arm"):
        factors["case:arm"] = cases * len(arms) + codes
    if terms.get("rater_by_case"):
        factors["rater:case"] = raters * (int(cases.max()) + 1) + cases
    return fit_crossed_mixed_model(
        frame["y"].to_numpy(dtype=float),
        x,
        factors,
        fe_names=[str(a) for a in arms],
        engine=engine,
    )


def mixed_model_contrasts(
    prep: PreparedArms,
    terms: dict[str, bool],
    *,
    engine: Engine,
    confidence: float,
    hypothesis: str,
    null: float,
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    """Contrast rows, variance components and details of the mixed model."""
    fit = fit_arms(prep.frame, prep.arms, terms, engine=engine)
    details: dict[str, Any] = {
        "engine": engine,
        "random_effects": ["rater", "case"]
        + [factor for term, factor in TERM_FACTORS.items() if terms.get(term)],
        "reml_criterion": fit.reml_criterion,
        "converged": fit.converged,
        "convergence": fit.convergence,
        "df_method": "Satterthwaite",
    }
    index = {a: i for i, a in enumerate(prep.arms)}
    rows = []
    for a, b in prep.contrasts:
        c = np.zeros(len(prep.arms))
        c[index[a]] += 1.0
        c[index[b]] -= 1.0
        est = float(c @ fit.fe_params)
        se = math.sqrt(float(c @ fit.cov_fe @ c))
        df = fit.satterthwaite_df(c)
        tq = t_quantile(confidence, df)
        stat = (est - null) / se
        rows.append(
            contrast_row(
                a,
                b,
                est,
                se,
                df,
                stat,
                est - tq * se,
                est + tq * se,
                p_from_t(stat, df, hypothesis),
            )
        )
    return rows, dict(fit.variance_components), details
