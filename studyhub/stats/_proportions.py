"""A proportion (or a difference of two arms' proportions) with a rater and case clustered interval.

Shared by the ``accuracy`` and ``cue_marks`` endpoints. Each row is one event
(an answer, a cue mark) of one rater on one case under one arm, with ``hit``
1 or 0 (a correct answer, a mark inside a labelled region). The proportion is
the share of hits over all rows: a ratio of two sums, so raters and cases that
contribute more rows weigh more, as in a pooled proportion.

Raters and cases both vary: two answers of one rater are correlated (a rater is
better than another), and so are two answers on one case (a case is harder than
another). The variance is the moment-corrected two-way cluster variance of
:func:`studyhub.stats.bootstrap_variance.two_way_variance`: the linearised
(ratio-estimator) contributions of the rater x case cells, clustered by rater
and by case, with the cell-level part counted once (Cameron, Gelbach & Miller
2011; McCullagh 2000). The interval is a t interval with Satterthwaite degrees
of freedom, so it generalises to new raters and new cases. A single proportion's
bound and test are built on the logit scale (delta method) and transformed back:
on the proportion scale the one-sided lower bound covered 0.92-0.93 instead of
0.95 for accuracies of 0.77-0.82 (its sampling distribution is skewed near 1);
on the logit scale simulated coverage was 0.93-0.96 over 4-20 raters, 20-100
cases, accuracies 0.31-0.92 and rater / case SDs 0-0.7 / 0-1.2 on the logit
scale (lowest, 0.93, with 12 raters, no case variation and accuracy 0.92);
``tests/stats/test_accuracy.py`` checks one design within its Monte Carlo
error. A difference of two arms is tested on the proportion scale, as
:func:`studyhub.stats.bootstrap.cluster_bootstrap` tests a difference of means
with the same variance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.protocol.plan import Endpoint
from studyhub.stats.bootstrap_variance import two_way_variance
from studyhub.stats.criteria import _Estimate

__all__ = ["TWO_WAY_INTERVAL", "proportion_endpoint"]

#: How the interval is built, as results state it.
TWO_WAY_INTERVAL = (
    "t interval on the moment-corrected two-way (rater and case) cluster variance of the "
    "pooled proportion (Cameron, Gelbach & Miller 2011), Satterthwaite df"
)


def _cells(
    rows: pd.DataFrame, arms: list[str], raters: list[str], cases: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of hits and counts of rows per arm x rater x case cell."""
    shape = (len(arms), len(raters), len(cases))
    sums, counts = np.zeros(shape), np.zeros(shape)
    a = pd.Categorical(rows["arm"], categories=arms).codes
    r = pd.Categorical(rows["rater"], categories=raters).codes
    c = pd.Categorical(rows["case"], categories=cases).codes
    np.add.at(sums, (a, r, c), rows["hit"].to_numpy(dtype=float))
    np.add.at(counts, (a, r, c), 1.0)
    return sums, counts


def proportion_endpoint(
    rows: pd.DataFrame, ep: Endpoint, level: float, *, what: str, details: dict[str, Any]
) -> _Estimate:
    """The endpoint's proportion (or arm difference), one-sided lower bound and p-value.

    Parameters
    ----------
    rows
        Columns ``arm``, ``rater``, ``case`` (as text) and ``hit`` (0/1), one row
        per event, already restricted to the endpoint's arms.
    ep
        The endpoint: with ``comparison`` the difference ``arm - versus`` is
        tested against 0 (superiority) or ``-margin`` (non-inferiority);
        without, the pooled proportion against ``hypothesis.threshold``.
    level
        Coverage of the one-sided lower bound.
    what
        What a hit is, for messages (``"correct answers"``).
    details
        Extra details to report (the caller's definitions).
    """
    if rows.empty:
        raise DataError(f"no {what} to count for endpoint {ep.id!r}; check the data and arms")
    rows = rows.assign(**{k: rows[k].astype(str) for k in ("arm", "rater", "case")})
    raters = sorted(rows["rater"].unique())
    cases = sorted(rows["case"].unique())
    if len(raters) < 2 or len(cases) < 2:
        raise DataError(
            f"endpoint {ep.id!r} has {len(raters)} rater(s) and {len(cases)} case(s); a rater "
            "and case clustered interval needs at least 2 of each"
        )
    per_arm = rows.groupby("arm")["hit"].agg(["mean", "size"])
    info: dict[str, Any] = {
        **details,
        "interval": TWO_WAY_INTERVAL,
        "by_arm": {
            str(a): {"proportion": float(m), "n": int(n)} for a, (m, n) in per_arm.iterrows()
        },
    }
    if ep.comparison is not None:
        arms = [ep.comparison.arm, ep.comparison.versus]
        sums, counts = _cells(rows, arms, raters, cases)
        null = -(ep.hypothesis.margin or 0.0)
    else:
        pooled_s, pooled_n = _cells(rows.assign(arm="all"), ["all"], raters, cases)
        # the proportion as a difference with a constant-zero arm of the same counts
        sums = np.concatenate([pooled_s, np.zeros_like(pooled_s)])
        counts = np.concatenate([pooled_n, pooled_n])
        null = float(ep.hypothesis.threshold or 0.0)
    v = two_way_variance(sums, counts, [(0, 1)])
    est, var, df = float(v.estimate[0, 0]), float(v.variance[0, 0]), float(v.df[0, 0])
    if not (math.isfinite(var) and var > 0 and math.isfinite(df) and df > 0):
        raise DataError(
            f"the {what} of endpoint {ep.id!r} do not vary between raters, cases or answers "
            f"(estimate {est:g}), so no clustered interval can be computed; it needs at least "
            "one hit and one miss spread over raters and cases"
        )
    se = math.sqrt(var)
    info.update(
        {
            "stderr": se,
            "df": df,
            "variance_floored": bool(v.floored[0, 0]),
            "variance_parts": {
                "rater": float(v.rater[0, 0]),
                "case": float(v.case[0, 0]),
                "cell": float(v.cell[0, 0]),
            },
        }
    )
    q = float(sps.t.ppf(level, df))
    if ep.comparison is not None:
        low, t = est - q * se, (est - null) / se
    else:  # one proportion: on the logit scale (delta method), where it is less skewed
        logit = math.log(est / (1 - est))
        se_logit = se / (est * (1 - est))
        low = 1 / (1 + math.exp(-(logit - q * se_logit)))
        t = (logit - math.log(null / (1 - null))) / se_logit
        info["scale"] = "logit (delta method), back-transformed"
    p = float(sps.t.sf(t, df))
    return _Estimate(est, low, math.inf, p, len(raters), len(cases), info)
