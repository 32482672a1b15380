"""Rank tests: Friedman's test and the Wilcoxon signed-rank test with Hodges–Lehmann estimate.

They serve the rank-based sensitivity analysis of
:func:`studyhub.stats.compare.compare_arms` (``method="friedman"``) and the
power simulation, and stand alone as tests matching R's ``friedman.test`` and
``wilcox.test``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats._data import as_python, require_columns, require_numeric

__all__ = ["FriedmanResult", "WilcoxonResult", "friedman_test", "wilcoxon_signed_rank"]


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test: ``statistic`` (chi-squared, tie-corrected), ``df``, ``p_value``,
    ``n_blocks``, ``n_treatments``, ``kendall_w`` (= statistic / (n_blocks (k - 1)))."""

    statistic: float
    df: int
    p_value: float
    n_blocks: int
    n_treatments: int
    kendall_w: float


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test: ``statistic`` (V+, the sum of positive ranks),
    ``p_value``, ``method`` ("exact" or "normal"), ``n`` (non-zero differences),
    ``estimate`` (Hodges-Lehmann pseudo-median), ``ci_low``, ``ci_high``."""

    statistic: float
    p_value: float
    method: str
    n: int
    estimate: float
    ci_low: float
    ci_high: float


def _signed_rank_null_counts(n: int) -> np.ndarray:
    """Counts of sign assignments giving each V+ = 0..n(n+1)/2 (no ties)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    return counts


def wilcoxon_signed_rank(
    differences: Sequence[float] | np.ndarray,
    *,
    alternative: Literal["greater", "less", "two-sided"] = "two-sided",
    shift: float = 0.0,
    method: Literal["auto", "exact", "normal"] = "auto",
    correction: bool = True,
    confidence: float = 0.95,
) -> WilcoxonResult:
    """Wilcoxon signed-rank test of paired differences, with Hodges-Lehmann estimate.

    Parameters
    ----------
    differences : array_like
        Paired differences ``x - y``.
    alternative : {"greater", "less", "two-sided"}
        H1 about the location of ``differences - shift``.
    shift : float
        Null location; the non-inferiority test of H1: d > -margin uses
        ``shift=-margin``.
    method : {"auto", "exact", "normal"}
        ``"auto"`` uses the exact null distribution when there are at most 50
        non-zero differences and no tied absolute differences, else the normal
        approximation (with tie correction).
    correction : bool
        Continuity correction in the normal approximation (R's default).
    confidence : float
        Coverage of the two-sided Hodges-Lehmann interval (Walsh averages;
        exact critical values when exact, else normal).

    Returns
    -------
    WilcoxonResult

    Notes
    -----
    Zero differences are dropped (``zero_method="wilcox"``, as R). Checked
    against R's ``wilcox.test`` example (Hollander & Wolfe 1973, p. 29f):
    V = 40, exact one-sided p = 0.01953125, two-sided 0.0390625, normal without
    continuity correction 0.01907586.

    References
    ----------
    .. [1] Hollander M, Wolfe DA (1973). Nonparametric Statistical Methods. Wiley.
    .. [2] Bauer DF (1972). Constructing confidence sets using rank statistics.
       JASA 67:687-690.
    """
    d = np.asarray(differences, dtype=float) - shift
    if d.size == 0 or np.isnan(d).any():
        raise DataError(
            f"Wilcoxon signed-rank test got {d.size} differences "
            f"({int(np.isnan(d).sum())} missing); pass complete paired differences"
        )
    nz = d[d != 0]
    n = nz.size
    if n == 0:
        raise DataError(
            "every paired difference equals the null shift (all differences are zero); "
            "the Wilcoxon test is undefined; check the arms being compared"
        )
    absd = np.abs(nz)
    ties = len(np.unique(absd)) < n
    use_exact = method == "exact" or (method == "auto" and n <= 50 and not ties)
    if method == "exact" and ties:
        raise DataError(
            "method='exact' was asked for but the absolute differences have ties; "
            "use method='auto' or 'normal'"
        )
    ranks = stats.rankdata(absd)
    v_plus = float(ranks[nz > 0].sum())
    total = n * (n + 1) / 2
    if use_exact:
        counts = _signed_rank_null_counts(n)
        probs = counts / counts.sum()
        k = round(v_plus)
        upper = float(probs[k:].sum())
        lower = float(probs[: k + 1].sum())
        p = {"greater": upper, "less": lower, "two-sided": min(1.0, 2 * min(upper, lower))}[
            alternative
        ]
    else:
        mean = total / 2
        _, tcounts = np.unique(absd, return_counts=True)
        var = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(tcounts**3 - tcounts)) / 48
        diff = v_plus - mean
        cc = 0.5 if correction else 0.0
        if alternative == "greater":
            p = float(stats.norm.sf((diff - cc) / math.sqrt(var)))
        elif alternative == "less":
            p = float(stats.norm.cdf((diff + cc) / math.sqrt(var)))
        else:
            z = (abs(diff) - cc) / math.sqrt(var)
            p = float(min(1.0, 2 * stats.norm.sf(max(z, 0.0))))
    # Hodges-Lehmann estimate and interval from the Walsh averages of the
    # differences (including zeros, on the original scale).
    full = np.asarray(differences, dtype=float)
    i, j = np.triu_indices(full.size)
    walsh = np.sort((full[i] + full[j]) / 2)
    m = walsh.size
    a = 1 - confidence
    nf = full.size
    if use_exact and nf == n:
        cum = np.cumsum(_signed_rank_null_counts(nf))
        cum = cum / cum[-1]
        # R's wilcox.test: qu = smallest v with P(V <= v) >= a/2; bounds are the
        # qu-th smallest and largest Walsh averages.
        c_low = int(np.searchsorted(cum, a / 2, side="left")) - 1
    else:
        sd = math.sqrt(nf * (nf + 1) * (2 * nf + 1) / 24)
        c_low = math.floor(nf * (nf + 1) / 4 - stats.norm.ppf(1 - a / 2) * sd)
    c_low = min(max(c_low, 0), (m - 1) // 2)
    return WilcoxonResult(
        statistic=v_plus,
        p_value=p,
        method="exact" if use_exact else "normal",
        n=n,
        estimate=float(np.median(walsh)),
        ci_low=float(walsh[c_low]),
        ci_high=float(walsh[m - 1 - c_low]),
    )


def friedman_test(data: pd.DataFrame, *, treatment: str, rating: str, block: str) -> FriedmanResult:
    """Friedman's rank test of a treatment effect in complete blocks, with ties.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per block x treatment (several rows are averaged).
    treatment, rating, block : str
        Column names.

    Returns
    -------
    FriedmanResult

    Notes
    -----
    Ranks are taken within blocks (mid-ranks for ties) and the statistic is
    corrected for ties as in R's ``friedman.test``. Blocks lacking a treatment
    are refused. Checked against R's ``friedman.test(RoundingTimes)``
    (Hollander & Wolfe 1973, p. 140ff): chi-squared 11.142857, df 2, p 0.003805041.

    References
    ----------
    .. [1] Friedman M (1937). The use of ranks to avoid the assumption of
       normality implicit in the analysis of variance. JASA 32:675-701.
    .. [2] Hollander M, Wolfe DA (1973). Nonparametric Statistical Methods. Wiley.
    """
    frame = require_columns(
        data, treatment=treatment, rating=rating, block=block, missing_ok=("rating",)
    )
    values = require_numeric(frame, rating, role="rating")
    wide = (
        pd.DataFrame({"t": frame[treatment], "b": frame[block], "y": values})
        .pivot_table(index="b", columns="t", values="y", aggfunc="mean", observed=True)
        .sort_index(axis=1)
    )
    if wide.shape[1] < 2:
        raise DataError(
            f"treatment column {treatment!r} has {wide.shape[1]} level(s); Friedman's test "
            "needs at least 2"
        )
    incomplete = wide.index[wide.isna().any(axis=1)]
    if len(incomplete):
        raise DataError(
            f"block {as_python(incomplete[0])!r} lacks a rating for some {treatment} "
            f"({len(incomplete)} incomplete block(s)); Friedman's test needs complete "
            "blocks: drop or complete them"
        )
    return _friedman_from_matrix(wide.to_numpy(dtype=float))


def _friedman_from_matrix(y: np.ndarray) -> FriedmanResult:
    n, k = y.shape
    if n < 2:
        raise DataError(f"Friedman's test got {n} complete block(s); it needs at least 2")
    ranks = stats.rankdata(y, axis=1)
    ties = 0.0
    for row in y:
        _, c = np.unique(row, return_counts=True)
        ties += float(np.sum(c**3 - c))
    num = 12.0 * float(np.sum((ranks.sum(axis=0) - n * (k + 1) / 2) ** 2))
    den = n * k * (k + 1) - ties / (k - 1)
    if den <= 0:
        raise DataError(
            "every block has all arms tied; Friedman's statistic is undefined; "
            "check that the right rating column was passed"
        )
    chi2 = num / den
    return FriedmanResult(
        statistic=chi2,
        df=k - 1,
        p_value=float(stats.chi2.sf(chi2, k - 1)),
        n_blocks=n,
        n_treatments=k,
        kendall_w=chi2 / (n * (k - 1)),
    )
