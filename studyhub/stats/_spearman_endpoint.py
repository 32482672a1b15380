"""Correlation endpoints of a plan: a stored metric against the raters' ratings (spearman)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats.criteria import _Estimate, _subset

__all__ = ["spearman_endpoint"]


def spearman_endpoint(
    ep: Endpoint,
    data: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    metrics: pd.DataFrame | None,
    opts: dict[str, Any],
    seed: int,
    level: float,
) -> _Estimate:
    """Spearman correlation of the metric with the case means of the item's ratings."""
    from studyhub.stats.correlation import metric_correlation

    name = ep.measure.removeprefix("metric:")
    item = opts.pop("item", None)
    if item is None:
        raise DataError(
            f"endpoint {ep.id!r} correlates {name!r} with a rating but names no item; add "
            "options: {item: ITEM_ID} to the endpoint"
        )
    if metrics is None or name not in metrics.columns:
        raise DataError(
            f"no stored metric {name!r} for the stimuli; compute it with studyhub explain"
        )
    sub = _subset(data, cols, ep, str(item))
    merged = sub.merge(metrics[[cols["case"], cols["arm"], name]], on=[cols["case"], cols["arm"]])
    res = metric_correlation(
        merged,
        cases=cols["case"],
        ratings=cols["value"],
        metric=name,
        n_boot=int(opts.pop("n_boot", 2000)),
        seed=seed,
        confidence=2 * level - 1,  # its lower limit is the one-sided ``level`` bound
    )
    return _Estimate(res.estimate, res.ci_low, math.inf, res.p_value, None, res.n_cases)
