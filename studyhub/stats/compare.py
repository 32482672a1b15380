"""Comparisons of explanation arms rated by several raters on several cases.

In a reader study ``R`` raters rate ``C`` cases, each case shown under ``A``
arms (explanation methods and controls), on an ordinal item such as 1-5
usefulness. :func:`compare_arms` estimates and tests differences between arms
with one of four methods:

- ``"mixed_model"`` (primary): a linear mixed model with the arm as fixed
  effect and crossed random intercepts for rater and case, fitted by REML,
  contrasts tested with Satterthwaite degrees of freedom (as R's lmerTest).
- ``"cluster_bootstrap"``: two-way cluster bootstrap of the mean differences
  (:func:`studyhub.stats.bootstrap.cluster_bootstrap`).
- ``"friedman"``: Friedman's rank test across arms with case blocks, then
  Wilcoxon signed-rank tests per contrast (rank-based sensitivity analysis).
- ``"ordinal"``: proportional-odds (cumulative logit) model, fixed rater
  effects, standard errors clustered by case (ordinal sensitivity analysis).

Direction: a contrast ``(arm, versus)`` estimates ``arm - versus``; higher
ratings are better. ``"superiority"`` tests H1: difference > 0 (one-sided);
``"non_inferiority"`` tests H1: difference > -margin (one-sided);
``"two_sided"`` tests H1: difference != 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.optimize as sopt
import scipy.sparse as sp
from scipy import special, stats

from studyhub.errors import DataError
from studyhub.stats._data import (
    as_python,
    require_columns,
    require_levels,
    require_numeric,
    require_variation,
)
from studyhub.stats.bootstrap import cluster_bootstrap, resolve_contrasts
from studyhub.stats.multiplicity import MULTIPLICITY_METHODS, adjust_pvalues

try:  # installed with scikit-learn, which pingouin requires
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _single_thread_blas() -> AbstractContextManager[object]:
    """BLAS on one thread: the mixed model's matrices are small (q x q with q
    about the number of raters), where multi-threaded BLAS is 10-100x slower."""
    if threadpool_limits is None:  # pragma: no cover
        return nullcontext()
    limiter: AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limiter


__all__ = [
    "ArmComparison",
    "FriedmanResult",
    "MixedModelFit",
    "WilcoxonResult",
    "compare_arms",
    "fit_crossed_mixed_model",
    "friedman_test",
    "wilcoxon_signed_rank",
]

Method = Literal["mixed_model", "friedman", "cluster_bootstrap", "ordinal"]
Hypothesis = Literal["superiority", "non_inferiority", "two_sided"]
METHODS = ("mixed_model", "friedman", "cluster_bootstrap", "ordinal")
HYPOTHESES = ("superiority", "non_inferiority", "two_sided")
CONTRAST_COLUMNS = [
    "contrast",
    "arm",
    "versus",
    "estimate",
    "se",
    "df",
    "statistic",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "reject",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ArmComparison:
    """Result of :func:`compare_arms`.

    Attributes
    ----------
    contrasts : pandas.DataFrame
        One row per contrast: ``contrast`` ("arm - versus"), ``arm``, ``versus``,
        ``estimate`` (difference ``arm - versus``; a log cumulative odds ratio
        for ``"ordinal"``, a Hodges-Lehmann shift for ``"friedman"``), ``se``
        (NaN for ``"friedman"``, where no standard error is defined), ``df``
        (t degrees of freedom; ``inf`` where the reference distribution is
        normal; NaN for rank and bootstrap methods), ``statistic``, ``ci_low``,
        ``ci_high``, ``p_value`` (for the chosen hypothesis), ``p_adjusted`` and
        ``reject`` (``p_adjusted <= alpha``).
    method, hypothesis, margin, alpha, multiplicity :
        The analysis as run.
    confidence : float
        Coverage of the intervals: ``1 - alpha`` for ``"two_sided"``, ``1 - 2
        alpha`` for one-sided hypotheses, so that ``ci_low`` is the one-sided
        ``1 - alpha`` lower confidence bound and an unadjusted rejection is
        ``ci_low > -margin``. Intervals are not adjusted for multiplicity.
    arm_means : pandas.DataFrame
        ``arm``, ``n`` (ratings), ``mean`` of the raw ratings.
    variance_components : dict
        Mixed model: variances of ``rater``, ``case`` (and ``rater:arm``) and
        ``residual``; empty for other methods.
    omnibus : FriedmanResult or None
        Friedman's test across all arms (method ``"friedman"``).
    details : dict
        Method-specific extras (REML criterion, blocks dropped, bootstrap size ...).
    n_obs, n_raters, n_cases, n_missing_ratings : int
        Ratings analysed, distinct raters and cases, rows dropped for a missing rating.
    """

    contrasts: pd.DataFrame
    method: str
    hypothesis: str
    margin: float
    alpha: float
    confidence: float
    multiplicity: str
    arm_means: pd.DataFrame
    variance_components: dict[str, float]
    omnibus: FriedmanResult | None
    details: dict[str, Any]
    n_obs: int
    n_raters: int
    n_cases: int
    n_missing_ratings: int


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


@dataclass(frozen=True)
class MixedModelFit:
    """A REML fit of ``y = X beta + sum_k Z_k b_k + e`` with independent random
    intercepts ``b_k ~ N(0, var_k I)`` for crossed factors.

    ``fe_names``/``fe_params``/``cov_fe`` are the fixed effects and their
    covariance; ``variance_components`` maps each factor (and ``"residual"``) to
    its variance; ``reml_criterion`` is -2 times the REML log-likelihood as lme4
    prints it. :meth:`satterthwaite_df` gives the degrees of freedom of a contrast.
    """

    fe_names: list[str]
    fe_params: np.ndarray
    cov_fe: np.ndarray
    variance_components: dict[str, float]
    reml_criterion: float
    n_obs: int
    converged: bool
    _deviance: Callable[[np.ndarray], float] = field(repr=False)
    _cov_fe_at: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def satterthwaite_df(self, contrast: np.ndarray) -> float:
        """Satterthwaite degrees of freedom of ``contrast @ fe_params``.

        ``df = 2 v^2 / (g' W g)`` with ``v`` the contrast's variance, ``g`` its
        gradient in the variance parameters and ``W = 2 H^-1`` their asymptotic
        covariance (``H`` the Hessian of the REML deviance), both by central
        differences, as in lmerTest. Components estimated at zero are held fixed.
        """
        with _single_thread_blas():
            return self._satterthwaite(np.asarray(contrast, dtype=float))

    def _satterthwaite(self, c: np.ndarray) -> float:
        psi = np.array(list(self.variance_components.values()), dtype=float)
        free = np.flatnonzero(psi > 1e-10 * max(psi[-1], 1e-300))

        def v_at(sub: np.ndarray) -> float:
            full = psi.copy()
            full[free] = sub
            return float(c @ self._cov_fe_at(full) @ c)

        def dev_at(sub: np.ndarray) -> float:
            full = psi.copy()
            full[free] = sub
            return self._deviance(full)

        x0 = psi[free]
        # relative steps, but not below 1e-6 of the residual variance (numerical
        # noise) nor beyond half the value (stay inside the parameter space)
        steps = np.minimum(1e-4 * np.maximum(x0, 1e-2 * psi[-1]), 0.5 * x0)
        m = x0.size
        grad = np.empty(m)
        for i in range(m):
            e = np.zeros(m)
            e[i] = steps[i]
            grad[i] = (v_at(x0 + e) - v_at(x0 - e)) / (2 * steps[i])
        hess = np.empty((m, m))
        f0 = dev_at(x0)
        for i in range(m):
            ei = np.zeros(m)
            ei[i] = steps[i]
            hess[i, i] = (dev_at(x0 + ei) - 2 * f0 + dev_at(x0 - ei)) / steps[i] ** 2
            for j in range(i + 1, m):
                ej = np.zeros(m)
                ej[j] = steps[j]
                val = (
                    dev_at(x0 + ei + ej)
                    - dev_at(x0 + ei - ej)
                    - dev_at(x0 - ei + ej)
                    + dev_at(x0 - ei - ej)
                ) / (4 * steps[i] * steps[j])
                hess[i, j] = hess[j, i] = val
        w = 2.0 * np.linalg.pinv(hess)  # pinv: a flat direction adds no variance
        denom = float(grad @ w @ grad)
        v = v_at(x0)
        if not denom > 0:
            return math.inf
        return 2.0 * v * v / denom


# --------------------------------------------------------------------------- mixed model


def _minimise_deviance(
    fun: Callable[[np.ndarray], float], n_comp: int, bounds: list[tuple[float, None]]
) -> Any:
    """L-BFGS-B from two starts, then a Nelder-Mead polish; the best result."""
    best: Any = None
    for start in (np.ones(n_comp), np.full(n_comp, 0.05)):
        res = sopt.minimize(
            fun,
            start,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
    # Polish with a derivative-free simplex (finite-difference gradients of a
    # flat deviance can stop early).
    polish = sopt.minimize(
        fun,
        best.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 5000, "maxfev": 10000},
    )
    if polish.fun <= best.fun:
        best = polish
    return best


def fit_crossed_mixed_model(
    y: np.ndarray,
    x: np.ndarray,
    factors: dict[str, np.ndarray],
    *,
    fe_names: Sequence[str] | None = None,
) -> MixedModelFit:
    """Fit a linear mixed model with crossed random intercepts by REML.

    Parameters
    ----------
    y : array of shape (n,)
        Response.
    x : array of shape (n, p)
        Fixed-effects design matrix (full column rank).
    factors : dict of str to array of shape (n,)
        One integer-coded (or any hashable) grouping factor per random intercept,
        e.g. ``{"rater": ..., "case": ...}``; factors may be crossed or nested.
    fe_names : sequence of str, optional
        Names of the columns of ``x``.

    Returns
    -------
    MixedModelFit

    Notes
    -----
    The profiled REML deviance of Bates et al. (2015, eqs. 34-42) is minimised
    over the relative standard deviations ``theta_k = sd_k / sd_residual``
    (bounded below by 0). Everything is computed from the sufficient statistics
    ``Z'Z, Z'X, X'X, Z'y, X'y, y'y`` with a dense Cholesky factor of the
    ``q x q`` matrix ``Lambda Z'Z Lambda + I`` (``q`` = number of random-effect
    levels), so 24 000 ratings of 20 raters x 300 cases fit in well under a
    second, where statsmodels' MixedLM (same model, one group plus
    ``vc_formula``) takes about 45 s. Checked against lme4 on the Penicillin
    data (REML criterion 330.8606, SDs 0.8467 / 1.9316 / 0.5499, as published
    by lme4), against the exact closed-form REML solution of that balanced
    design (relative error < 1e-6) and against statsmodels MixedLM.

    References
    ----------
    .. [1] Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear
       mixed-effects models using lme4. Journal of Statistical Software 67(1).
    .. [2] Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package:
       tests in linear mixed effects models. Journal of Statistical Software 82(13).
    """
    yv = np.asarray(y, dtype=float)
    xm = np.asarray(x, dtype=float)
    n, p = xm.shape
    names = list(fe_names) if fe_names is not None else [f"x{i}" for i in range(p)]
    # The largest factor goes first: its block of Z'Z is diagonal, so A is
    # reduced to the Schur complement on the remaining (few) levels.
    order = sorted(factors, key=lambda name: -len(pd.unique(np.asarray(factors[name]))))
    blocks = []
    comp_of_col: list[int] = []
    for name in order:
        idx, uniq = pd.factorize(np.asarray(factors[name]))
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), idx)), shape=(n, len(uniq))))
        comp_of_col.extend([list(factors).index(name)] * len(uniq))
    z = sp.hstack(blocks).tocsr()
    comp = np.asarray(comp_of_col)
    q1 = blocks[0].shape[1]
    ztz = (z.T @ z).tocsr()
    d1 = ztz.diagonal()[:q1]
    b12 = ztz[:q1, q1:].toarray()
    m22 = ztz[q1:, q1:].toarray()
    g = np.column_stack([np.asarray(z.T @ yv).ravel(), np.asarray(z.T @ xm)])
    xtx = xm.T @ xm
    xty = xm.T @ yv
    yty = float(yv @ yv)
    n_p = n - p

    def solve(theta: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
        lam = theta[comp]
        lam1, lam2 = lam[:q1], lam[q1:]
        dd = lam1 * lam1 * d1 + 1.0
        lg = lam[:, None] * g
        g1, g2 = lg[:q1], lg[q1:]
        b = lam1[:, None] * b12 * lam2[None, :]
        quad = g1.T @ (g1 / dd[:, None])
        logdet_a = float(np.sum(np.log(dd)))
        if lam2.size:
            schur = (
                lam2[:, None] * m22 * lam2[None, :] + np.eye(lam2.size) - b.T @ (b / dd[:, None])
            )
            chol = np.linalg.cholesky(schur)
            h = sla.solve_triangular(
                chol, g2 - b.T @ (g1 / dd[:, None]), lower=True, check_finite=False
            )
            quad = quad + h.T @ h
            logdet_a += 2.0 * float(np.sum(np.log(np.diag(chol))))
        xtvx = xtx - quad[1:, 1:]
        rhs = xty - quad[1:, 0]
        rx = np.linalg.cholesky(xtvx)
        beta = np.linalg.solve(xtvx, rhs)
        r2 = yty - float(quad[0, 0]) - float(rhs @ beta)
        logdet_x = 2.0 * float(np.sum(np.log(np.diag(rx))))
        return r2, logdet_a, logdet_x, beta, xtvx

    def profiled(theta: np.ndarray) -> float:
        r2, lda, ldx, _, _ = solve(theta)
        if not r2 > 0:
            return math.inf
        return lda + ldx + n_p * (1.0 + math.log(2.0 * math.pi * r2 / n_p))

    def deviance(psi: np.ndarray) -> float:
        s2 = psi[-1]
        r2, lda, ldx, _, _ = solve(np.sqrt(np.maximum(psi[:-1], 0.0) / s2))
        return n_p * math.log(2.0 * math.pi * s2) + lda + ldx + r2 / s2

    def cov_fe_at(psi: np.ndarray) -> np.ndarray:
        s2 = psi[-1]
        _, _, _, _, xtvx = solve(np.sqrt(np.maximum(psi[:-1], 0.0) / s2))
        return s2 * np.linalg.inv(xtvx)

    # Optimise over the variance ratios rho = theta^2: the deviance is smooth and
    # has a non-zero slope at the boundary rho = 0, where in theta it is flat.
    n_comp = len(factors)

    def by_ratio(rho: np.ndarray) -> float:
        return profiled(np.sqrt(np.maximum(rho, 0.0)))

    bounds = [(0.0, None)] * n_comp
    with _single_thread_blas():
        best = _minimise_deviance(by_ratio, n_comp, bounds)
    theta = np.sqrt(np.maximum(np.asarray(best.x, dtype=float), 0.0))
    r2, _, _, beta, xtvx = solve(theta)
    sigma2 = r2 / n_p
    vc = {name: float(theta[k] ** 2 * sigma2) for k, name in enumerate(factors)}
    vc["residual"] = float(sigma2)
    return MixedModelFit(
        fe_names=names,
        fe_params=beta,
        cov_fe=sigma2 * np.linalg.inv(xtvx),
        variance_components=vc,
        reml_criterion=float(best.fun),
        n_obs=n,
        converged=bool(best.success),
        _deviance=deviance,
        _cov_fe_at=cov_fe_at,
    )


# --------------------------------------------------------------------------- rank tests


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
    frame = require_columns(data, treatment=treatment, rating=rating, block=block)
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


# --------------------------------------------------------------------------- compare_arms


@dataclass(frozen=True)
class _Prepared:
    frame: pd.DataFrame  # columns arm, y, rater, case (arm as str-able labels)
    arms: list[Any]
    contrasts: list[tuple[Any, Any]]
    n_missing: int


def _prepare(
    data: pd.DataFrame,
    *,
    arm: str,
    rating: str,
    rater: str,
    case: str,
    reference: Any,
    contrasts: Sequence[tuple[Any, Any]] | None,
    min_raters: int,
) -> _Prepared:
    frame = require_columns(data, arm=arm, rating=rating, rater=rater, case=case)
    for role, col in (("arm", arm), ("rater", rater), ("case", case)):
        missing = frame[col].isna()
        if missing.any():
            raise DataError(
                f"{role} column {col!r} is missing in {int(missing.sum())} row(s) "
                f"(first at row {frame.index[missing.to_numpy()][0]!r}); "
                "every rating needs its arm, rater and case"
            )
    y = require_numeric(frame, rating, role="rating")
    keep = y.notna().to_numpy()
    n_missing = int((~keep).sum())
    tidy = pd.DataFrame(
        {
            "arm": frame[arm].to_numpy()[keep],
            "y": y.to_numpy()[keep],
            "rater": frame[rater].to_numpy()[keep],
            "case": frame[case].to_numpy()[keep],
        }
    )
    if tidy.empty:
        raise DataError(f"rating column {rating!r} has no non-missing value; pass the ratings")
    require_variation(tidy["y"], role="rating", column=rating)
    arms = sorted(
        map(
            as_python,
            require_levels(tidy[["arm"]].set_axis([arm], axis=1), arm, role="arm", minimum=2),
        ),
        key=str,
    )
    require_levels(
        tidy[["rater"]].set_axis([rater], axis=1), rater, role="rater", minimum=min_raters
    )
    require_levels(tidy[["case"]].set_axis([case], axis=1), case, role="case", minimum=2)
    pairs = resolve_contrasts(arms, reference, contrasts, arm)
    return _Prepared(frame=tidy, arms=arms, contrasts=pairs, n_missing=n_missing)


def _p_from_t(t: float, df: float, hypothesis: str) -> float:
    dist = stats.norm if math.isinf(df) else stats.t(df)
    if hypothesis == "two_sided":
        return float(min(1.0, 2 * dist.sf(abs(t))))
    return float(dist.sf(t))


def _check_options(
    method: str, hypothesis: str, margin: float, alpha: float, multiplicity: str
) -> None:
    if method not in METHODS:
        raise DataError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if hypothesis not in HYPOTHESES:
        raise DataError(f"hypothesis {hypothesis!r} is unknown; use one of {', '.join(HYPOTHESES)}")
    if multiplicity not in MULTIPLICITY_METHODS:
        raise DataError(
            f"multiplicity {multiplicity!r} is unknown; use one of "
            f"{', '.join(MULTIPLICITY_METHODS)}"
        )
    if not (isinstance(alpha, int | float) and 0 < alpha < 0.5):
        raise DataError(f"alpha is {alpha!r}; pass a significance level between 0 and 0.5")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise DataError(
            f"margin is {margin!r}; pass a non-negative number on the rating scale "
            "(the non-inferiority margin)"
        )
    if hypothesis == "non_inferiority" and margin == 0:
        raise DataError(
            "hypothesis='non_inferiority' with margin=0 is a superiority test; pass the "
            "pre-registered margin (> 0) or hypothesis='superiority'"
        )
    if hypothesis != "non_inferiority" and margin != 0:
        raise DataError(
            f"margin={margin!r} is only used with hypothesis='non_inferiority' (got "
            f"{hypothesis!r}); drop the margin or change the hypothesis"
        )
    if hypothesis == "non_inferiority" and method == "ordinal":
        raise DataError(
            "the non-inferiority margin is on the rating scale but method='ordinal' estimates "
            "log odds ratios; use method='mixed_model' or 'cluster_bootstrap' for "
            "non-inferiority"
        )


def compare_arms(
    data: pd.DataFrame,
    *,
    arm: str,
    rating: str,
    rater: str,
    case: str,
    reference: Any = None,
    contrasts: Sequence[tuple[Any, Any]] | None = None,
    method: Method = "mixed_model",
    hypothesis: Hypothesis = "superiority",
    margin: float = 0.0,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    rater_by_arm: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> ArmComparison:
    """Compare explanation arms rated by crossed raters and cases.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating.
    arm, rating, rater, case : str
        Column names. ``rating`` must be numeric (a Likert item coded 1..K).
    reference : optional
        Control arm; the default contrasts are every other arm versus it.
    contrasts : sequence of (arm, versus), optional
        Explicit contrasts, each estimating ``arm - versus``, in the order of a
        fixed testing sequence.
    method : {"mixed_model", "friedman", "cluster_bootstrap", "ordinal"}
        See the module docstring. ``"mixed_model"`` is the primary analysis.
    hypothesis : {"superiority", "non_inferiority", "two_sided"}
        Superiority: one-sided H1 ``arm - versus > 0``. Non-inferiority: one-sided
        H1 ``arm - versus > -margin``. Two-sided: H1 ``arm - versus != 0``.
    margin : float
        Non-inferiority margin on the rating scale (> 0; only with
        ``"non_inferiority"``).
    alpha : float
        Significance level (one-sided for the one-sided hypotheses).
    multiplicity : {"holm", "bonferroni", "fixed_sequence", "none"}
        Family-wise error control across the contrasts
        (:func:`studyhub.stats.multiplicity.adjust_pvalues`).
    rater_by_arm : bool
        Mixed model only: add a random rater x arm intercept, so that the
        contrasts generalise to new raters whose benefit from an arm varies.
    n_boot, seed : int
        Bootstrap resamples and seed (``"cluster_bootstrap"``).

    Returns
    -------
    ArmComparison

    Raises
    ------
    DataError
        For missing columns, unknown arms or options, constant ratings, too few
        raters or cases, or incomplete Friedman blocks.

    Notes
    -----
    *Mixed model.* ``rating ~ arm + (1|rater) + (1|case)`` (optionally
    ``+ (1|rater:arm)``), REML, via :func:`fit_crossed_mixed_model` (the model of
    statsmodels ``MixedLM`` with one group and ``vc_formula``, fitted ~100x
    faster from sufficient statistics). Contrasts use t tests with Satterthwaite
    degrees of freedom; in a balanced, complete design they equal the exact
    ANOVA t test with the residual degrees of freedom.

    *Friedman.* Blocks are cases: ratings are averaged over raters within each
    case x arm, and Friedman's test compares arms within cases. Cases are the
    independent units; rater x case blocks would share case and rater effects
    and overstate the evidence. Cases lacking an arm are dropped and counted in
    ``details["incomplete_blocks_dropped"]``. Contrasts use the Wilcoxon
    signed-rank test on case-level differences (exact when n <= 50 without
    ties), with Hodges-Lehmann estimate and interval; not adjusted for the
    rater dimension, so it treats raters as fixed.

    *Ordinal.* Proportional-odds model (statsmodels ``OrderedModel``, logit)
    with arm and fixed rater effects (a rater's severity shifts all thresholds;
    20-odd raters are well estimated with hundreds of ratings each) and
    cluster-robust (sandwich) standard errors clustered by case, which allow
    for any within-case correlation without a random-effect integral.
    Estimates are log cumulative odds ratios; Wald z tests. Random effects
    in a cumulative link model (R's ``ordinal::clmm``) are not available in
    Python's scientific stack.

    *Cluster bootstrap.* :func:`studyhub.stats.bootstrap.cluster_bootstrap`,
    percentile interval; p-value by inverting it:
    ``(1 + #{boot <= -margin}) / (B + 1)`` one-sided.

    Checked against lme4 (Penicillin), R's ``friedman.test`` (RoundingTimes)
    and ``wilcox.test`` (Hollander & Wolfe depression data), and by simulation:
    the mixed-model test rejects at the nominal rate under the null.

    References
    ----------
    .. [1] Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear
       mixed-effects models using lme4. J Stat Softw 67(1).
    .. [2] Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package.
       J Stat Softw 82(13).
    .. [3] Friedman M (1937). JASA 32:675-701; Hollander M, Wolfe DA (1973).
       Nonparametric Statistical Methods. Wiley.
    .. [4] McCullagh P (1980). Regression models for ordinal data. JRSS B 42:109-142.
    .. [5] Obuchowski NA (2000). Sample size tables for receiver operating
       characteristic studies. AJR 175:603-608 (reader x case designs).
    """
    _check_options(method, hypothesis, margin, alpha, multiplicity)
    if rater_by_arm and method != "mixed_model":
        raise DataError(
            f"rater_by_arm=True applies to method='mixed_model' only (got {method!r}); "
            "drop it or use the mixed model"
        )
    prep = _prepare(
        data,
        arm=arm,
        rating=rating,
        rater=rater,
        case=case,
        reference=reference,
        contrasts=contrasts,
        min_raters=1 if method in ("friedman",) else 2,
    )
    confidence = 1 - alpha if hypothesis == "two_sided" else 1 - 2 * alpha
    null = -margin
    frame = prep.frame
    rows: list[dict[str, Any]] = []
    vc: dict[str, float] = {}
    details: dict[str, Any] = {}
    omnibus: FriedmanResult | None = None

    if method == "mixed_model":
        fit = _fit_arms(frame, prep.arms, rater_by_arm=rater_by_arm)
        vc = dict(fit.variance_components)
        details.update(reml_criterion=fit.reml_criterion, converged=fit.converged)
        index = {a: i for i, a in enumerate(prep.arms)}
        for a, b in prep.contrasts:
            c = np.zeros(len(prep.arms))
            c[index[a]] += 1.0
            c[index[b]] -= 1.0
            est = float(c @ fit.fe_params)
            se = math.sqrt(float(c @ fit.cov_fe @ c))
            df = fit.satterthwaite_df(c)
            tq = _t_quantile(confidence, df)
            stat = (est - null) / se
            rows.append(
                _row(
                    a,
                    b,
                    est,
                    se,
                    df,
                    stat,
                    est - tq * se,
                    est + tq * se,
                    _p_from_t(stat, df, hypothesis),
                )
            )
    elif method == "friedman":
        wide = frame.pivot_table(
            index="case", columns="arm", values="y", aggfunc="mean", observed=True
        )
        complete = wide.dropna(axis=0, how="any")
        details["incomplete_blocks_dropped"] = int(len(wide) - len(complete))
        omnibus = _friedman_from_matrix(complete[prep.arms].to_numpy(dtype=float))
        alt: Literal["greater", "two-sided"] = (
            "two-sided" if hypothesis == "two_sided" else "greater"
        )
        for a, b in prep.contrasts:
            diff = (complete[a] - complete[b]).to_numpy(dtype=float)
            w = wilcoxon_signed_rank(diff, alternative=alt, shift=null, confidence=confidence)
            details.setdefault("wilcoxon_method", {})[f"{a} - {b}"] = w.method
            rows.append(
                _row(
                    a,
                    b,
                    w.estimate,
                    math.nan,
                    math.nan,
                    w.statistic,
                    w.ci_low,
                    w.ci_high,
                    w.p_value,
                )
            )
    elif method == "cluster_bootstrap":
        boot = cluster_bootstrap(
            frame,
            arm="arm",
            rating="y",
            rater="rater",
            case="case",
            contrasts=prep.contrasts,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
        )
        details.update(n_boot=n_boot, seed=seed)
        for k, (a, b) in enumerate(prep.contrasts):
            draws = boot.replicates[:, k]
            est = float(boot.contrasts["estimate"].iloc[k])
            lower = (1 + int(np.sum(draws <= null))) / (n_boot + 1)
            upper = (1 + int(np.sum(draws >= null))) / (n_boot + 1)
            p = min(1.0, 2 * min(lower, upper)) if hypothesis == "two_sided" else lower
            rows.append(
                _row(
                    a,
                    b,
                    est,
                    float(boot.contrasts["se"].iloc[k]),
                    math.nan,
                    math.nan,
                    float(boot.contrasts["ci_low"].iloc[k]),
                    float(boot.contrasts["ci_high"].iloc[k]),
                    p,
                )
            )
    else:  # ordinal
        rows, details = _ordinal(frame, prep, confidence, hypothesis)

    table = pd.DataFrame(rows)
    table["p_adjusted"] = adjust_pvalues(table["p_value"].to_numpy(), multiplicity)
    table["reject"] = table["p_adjusted"] <= alpha
    table = table[CONTRAST_COLUMNS]
    means = (
        frame.groupby("arm", sort=False)["y"].agg(["size", "mean"]).reindex(prep.arms).reset_index()
    )
    means.columns = pd.Index(["arm", "n", "mean"])
    return ArmComparison(
        contrasts=table,
        method=method,
        hypothesis=hypothesis,
        margin=float(margin),
        alpha=float(alpha),
        confidence=float(confidence),
        multiplicity=multiplicity,
        arm_means=means,
        variance_components=vc,
        omnibus=omnibus,
        details=details,
        n_obs=len(frame),
        n_raters=int(frame["rater"].nunique()),
        n_cases=int(frame["case"].nunique()),
        n_missing_ratings=prep.n_missing,
    )


def _t_quantile(confidence: float, df: float) -> float:
    q = 0.5 + confidence / 2
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def _row(
    a: Any,
    b: Any,
    est: float,
    se: float,
    df: float,
    stat: float,
    lo: float,
    hi: float,
    p: float,
) -> dict[str, Any]:
    return {
        "contrast": f"{a} - {b}",
        "arm": a,
        "versus": b,
        "estimate": est,
        "se": se,
        "df": df,
        "statistic": stat,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
    }


def _fit_arms(frame: pd.DataFrame, arms: list[Any], *, rater_by_arm: bool) -> MixedModelFit:
    """Cell-means coding: one fixed effect per arm (its model-based mean)."""
    codes = pd.Categorical(frame["arm"], categories=arms).codes
    x = np.zeros((len(frame), len(arms)))
    x[np.arange(len(frame)), codes] = 1.0
    factors: dict[str, np.ndarray] = {
        "rater": frame["rater"].to_numpy(),
        "case": frame["case"].to_numpy(),
    }
    if rater_by_arm:
        rater_codes = pd.factorize(frame["rater"])[0]
        factors["rater:arm"] = rater_codes * len(arms) + codes
    return fit_crossed_mixed_model(
        frame["y"].to_numpy(dtype=float), x, factors, fe_names=[str(a) for a in arms]
    )


def _proportional_odds(
    codes: np.ndarray, x: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Cumulative-logit fit ``P(Y <= j) = F(tau_j - x beta)`` with cluster-robust covariance.

    Returns ``beta``, its sandwich covariance (clusters ``groups``, with the
    small-sample factor ``G/(G-1) (n-1)/(n-k)`` of statsmodels), the thresholds
    and convergence. Analytic gradient; the same model as statsmodels
    ``OrderedModel(distr="logit")``, about 50x faster on 24 000 ratings.
    """
    n, p = x.shape
    k = int(codes.max()) + 1
    cum = np.cumsum(np.bincount(codes, minlength=k))[:-1] / n
    tau0 = np.log(cum / (1 - cum))
    start = np.concatenate([np.zeros(p), [tau0[0]], np.log(np.diff(tau0))])
    onehot_hi = np.zeros((n, k - 1))
    onehot_lo = np.zeros((n, k - 1))
    hi_ok = codes < k - 1
    lo_ok = codes > 0
    onehot_hi[np.flatnonzero(hi_ok), codes[hi_ok]] = 1.0
    onehot_lo[np.flatnonzero(lo_ok), codes[lo_ok] - 1] = 1.0
    # d tau / d (tau_1, delta_2..delta_{k-1}): lower-triangular ones scaled by exp(delta)
    tri = np.tril(np.ones((k - 1, k - 1)))

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        beta = theta[:p]
        scale = np.concatenate([[1.0], np.exp(theta[p + 1 :])])
        jac = tri * scale[None, :]
        tau = jac @ np.concatenate([[theta[p]], np.ones(k - 2)])
        return beta, tau, jac

    def pieces(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta, tau, jac = unpack(theta)
        eta = x @ beta
        t_ext = np.concatenate([[-np.inf], tau, [np.inf]])
        u_hi = t_ext[codes + 1] - eta
        u_lo = t_ext[codes] - eta
        f_hi = special.expit(u_hi)
        f_lo = special.expit(u_lo)
        prob = np.maximum(f_hi - f_lo, 1e-300)
        d_hi = f_hi * (1 - f_hi)
        d_lo = f_lo * (1 - f_lo)
        g_eta = -(d_hi - d_lo) / prob
        g_tau = (onehot_hi * (d_hi / prob)[:, None]) - (onehot_lo * (d_lo / prob)[:, None])
        scores = np.column_stack([x * g_eta[:, None], g_tau @ jac])
        return float(np.sum(np.log(prob))), scores

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, scores = pieces(theta)
        return -ll, -scores.sum(axis=0)

    res = sopt.minimize(
        objective, start, jac=True, method="BFGS", options={"gtol": 1e-7, "maxiter": 2000}
    )
    theta = np.asarray(res.x, dtype=float)
    m = theta.size
    hess = np.empty((m, m))
    for i in range(m):
        h = 1e-5 * max(1.0, abs(theta[i]))
        e = np.zeros(m)
        e[i] = h
        hess[:, i] = (objective(theta + e)[1] - objective(theta - e)[1]) / (2 * h)
    hess = (hess + hess.T) / 2
    bread = np.linalg.inv(hess)
    _, scores = pieces(theta)
    g_idx, uniq = pd.factorize(groups)
    n_groups = len(uniq)
    summed = np.zeros((n_groups, m))
    np.add.at(summed, g_idx, scores)
    meat = summed.T @ summed
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - m)
    cov = factor * bread @ meat @ bread
    _, tau, _ = unpack(theta)
    return theta[:p], cov[:p, :p], tau, bool(res.success)


def _ordinal(
    frame: pd.DataFrame, prep: _Prepared, confidence: float, hypothesis: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    levels = np.sort(frame["y"].unique())
    if levels.size < 3:
        raise DataError(
            f"method='ordinal' needs at least 3 rating categories, found {levels.size} "
            f"({list(levels)}); use method='mixed_model'"
        )
    arm_codes = pd.Categorical(frame["arm"], categories=prep.arms).codes
    rater_codes, _ = pd.factorize(frame["rater"], sort=True)
    n = len(frame)
    n_a, n_r = len(prep.arms), int(rater_codes.max()) + 1
    x = np.zeros((n, n_a - 1 + n_r - 1))
    rows_a = np.flatnonzero(arm_codes > 0)
    x[rows_a, arm_codes[rows_a] - 1] = 1.0
    rows_r = np.flatnonzero(rater_codes > 0)
    x[rows_r, n_a - 1 + rater_codes[rows_r] - 1] = 1.0
    codes = np.searchsorted(levels, frame["y"].to_numpy())
    beta, cov, tau, converged = _proportional_odds(codes, x, frame["case"].to_numpy())
    pos = {a: i - 1 for i, a in enumerate(prep.arms) if i > 0}
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rows = []
    for a, b in prep.contrasts:
        c = np.zeros(x.shape[1])
        if a in pos:
            c[pos[a]] += 1.0
        if b in pos:
            c[pos[b]] -= 1.0
        est = float(c @ beta)
        se = math.sqrt(float(c @ cov @ c))
        stat = est / se
        p_value = _p_from_t(stat, math.inf, hypothesis)
        rows.append(_row(a, b, est, se, math.inf, stat, est - z * se, est + z * se, p_value))
    details = {
        "scale": "log cumulative odds ratio (proportional odds, logit link)",
        "converged": converged,
        "cov_type": "cluster-robust (sandwich) by case, fixed rater effects",
        "thresholds": [float(t) for t in tau],
        "levels": [float(v) for v in levels],
    }
    return rows, details
