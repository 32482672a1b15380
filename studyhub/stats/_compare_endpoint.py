"""Arm-comparison endpoints of a plan (mixed_model, ordinal, friedman, cluster_bootstrap).

:func:`studyhub.stats.criteria.evaluate_criteria` hands each such endpoint to
:func:`compare_endpoint`, which runs :func:`studyhub.stats.compare.compare_arms`
on the one contrast the endpoint states, with a one-sided interval at the
level the plan's multiplicity rule fixes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["compare_endpoint"]


def compare_endpoint(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    opts: dict[str, Any],
    seed: int,
    level: float,
) -> _Estimate:
    """The endpoint's contrast ``arm - versus``: estimate, one-sided bound and p-value."""
    from studyhub.stats.compare import compare_arms

    if ep.comparison is None:  # guarded by the plan schema
        raise DataError(f"endpoint {ep.id!r} has no comparison")
    res = compare_arms(
        sub,
        arm=cols["arm"],
        rating=cols["value"],
        rater=cols["rater"],
        case=cols["case"],
        contrasts=[(ep.comparison.arm, ep.comparison.versus)],
        method=ep.statistic,  # type: ignore[arg-type]
        hypothesis=ep.hypothesis.type,  # type: ignore[arg-type]
        margin=ep.hypothesis.margin or 0.0,
        alpha=plan.alpha,
        multiplicity="none",
        seed=seed,
        confidence=level,
        sides=1,
        **opts,
    )
    row = res.contrasts.iloc[0]
    return _Estimate(
        float(row["estimate"]),
        float(row["ci_low"]),
        float(row["ci_high"]),
        float(row["p_value"]),
        res.n_raters,
        res.n_cases,
        {
            "method": ep.statistic,
            "variance_components": res.variance_components,
            **{k: res.details[k] for k in ("random_effects", "converged") if k in res.details},
        },
    )
