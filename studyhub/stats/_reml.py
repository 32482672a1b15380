"""The REML machinery behind :func:`studyhub.stats.mixed.fit_crossed_mixed_model`.

:class:`CrossedDesign` holds the sufficient statistics of ``y = X beta + sum_k
Z_k b_k + e`` (``b_k ~ N(0, var_k I)``), arranged for a block elimination:
the factors nested in one grouping factor (for a reader study: case, case x
arm, rater x case, all nested in the case) give a block-diagonal part of
``Lambda Z'Z Lambda + I``, one small block per group, and the remaining
factors (rater, rater x arm) a dense part of a few dozen levels. One
evaluation of the profiled REML deviance then costs a batch of small Cholesky
factors and one dense one, instead of a Cholesky factor of every random-effect
level (7 600 for 20 raters x 300 cases x 4 arms).

:func:`minimise_deviance` finds the REML optimum over the variance ratios and
says whether it is one: L-BFGS-B with central-difference gradients, then
projected Newton steps until the second-order estimate of what any feasible
step could still gain (the Newton decrement) is below ``DECREMENT_TOL``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.optimize as sopt

__all__ = [
    "DECREMENT_TOL",
    "RHO_DEGENERATE",
    "RHO_MAX",
    "CrossedDesign",
    "Optimum",
    "minimise_deviance",
]

#: Converged: no feasible step can lower the REML deviance by more than this
#: (second-order estimate; the deviance is -2 log-likelihood, so 1e-6 is a
#: likelihood ratio of 1 + 5e-7).
DECREMENT_TOL = 1e-6
#: Upper bound of a variance ratio (component / residual).
RHO_MAX = 1e8
#: A variance ratio above this means the residual variance is zero for practical
#: purposes (no rating scale has noise a millionth of its rater or case variance).
RHO_DEGENERATE = 1e6
STARTS = (0.3, 1.0, 0.05)


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    idx, uniq = pd.factorize(np.asarray(values), use_na_sentinel=False)
    return np.asarray(idx, dtype=np.int64), len(uniq)


def _nested(inner: np.ndarray, outer: np.ndarray, n_inner: int) -> bool:
    """True when every level of ``inner`` occurs with one level of ``outer`` only."""
    pairs = np.unique(inner * (int(outer.max()) + 1) + outer)
    return pairs.size == n_inner


@dataclass(frozen=True)
class CrossedDesign:
    """Sufficient statistics of a crossed random-intercept model, blocked by one factor.

    Part 1: the factors nested in ``group``, one ``m x m`` block of ``Z1'Z1``
    per group (padded with empty slots), stored once per distinct block
    (``block_comp``, ``block_zz``; ``block_of`` maps each group to its block).
    Part 2: the other factors (``comp2``, ``zz22``), coupled to part 1 through
    ``zz12``. ``zw1``, ``zw2`` and ``ww`` are ``Z'[y X]`` and ``[y X]'[y X]``;
    ``comp*`` hold the index of each level's factor (``n_comp`` for padding).
    """

    n: int
    p: int
    n_comp: int
    group: str
    comp1: np.ndarray  # (G, m)
    comp2: np.ndarray  # (q2,)
    zz12: np.ndarray  # (G, m, q2)
    zz22: np.ndarray  # (q2, q2)
    zw1: np.ndarray  # (G, m, 1 + p)
    zw2: np.ndarray  # (q2, 1 + p)
    ww: np.ndarray  # (1 + p, 1 + p)
    block_comp: np.ndarray  # (U, m): the distinct blocks' components ...
    block_zz: np.ndarray  # (U, m, m): ... and Z1'Z1 blocks
    block_count: np.ndarray  # (U,): groups sharing each distinct block
    block_of: np.ndarray  # (G,): each group's distinct block

    @classmethod
    def build(cls, y: np.ndarray, x: np.ndarray, factors: dict[str, np.ndarray]) -> CrossedDesign:
        """Sufficient statistics of ``y`` on ``x`` with a random intercept per factor.

        The grouping factor is the one that leaves the cheapest elimination:
        ``G m^3 + G m q2^2 + q2^3`` flops for ``G`` groups of ``m`` levels and
        ``q2`` levels outside them.
        """
        n, p = x.shape
        names = list(factors)
        coded = {name: _codes(factors[name]) for name in names}
        best: tuple[float, str, list[str]] | None = None
        for h in names:
            codes_h, n_h = coded[h]
            inside = [f for f in names if _nested(coded[f][0], codes_h, coded[f][1])]
            sizes = np.zeros(n_h, dtype=np.int64)
            for f in inside:
                codes_f, n_f = coded[f]
                grp = np.zeros(n_f, dtype=np.int64)
                grp[codes_f] = codes_h
                sizes += np.bincount(grp, minlength=n_h)
            m = int(sizes.max())
            q2 = sum(coded[f][1] for f in names if f not in inside)
            cost = n_h * (m**3 + m * m * q2 + m * q2 * q2) + q2**3
            if best is None or cost < best[0]:
                best = (float(cost), h, inside)
        if best is None:
            raise ValueError("a mixed model needs at least one random factor")
        _, h, inside = best
        codes_h, n_groups = coded[h]
        # part 1: slots of the nested factors' levels inside their group
        grp_parts, comp_parts, slot_of = [], [], {}
        for f in inside:
            codes_f, n_f = coded[f]
            grp = np.zeros(n_f, dtype=np.int64)
            grp[codes_f] = codes_h
            grp_parts.append(grp)
            comp_parts.append(np.full(n_f, names.index(f)))
        all_grp = np.concatenate(grp_parts)
        order = np.argsort(all_grp, kind="stable")
        counts = np.bincount(all_grp, minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slots = np.empty_like(all_grp)
        slots[order] = np.arange(all_grp.size) - starts[all_grp[order]]
        m = int(counts.max())
        comp1 = np.full((n_groups, m), len(names), dtype=np.int64)
        comp1[all_grp, slots] = np.concatenate(comp_parts)
        offset = 0
        for f in inside:
            n_f = coded[f][1]
            slot_of[f] = slots[offset : offset + n_f]
            offset += n_f
        # part 2: the other factors, one column per level
        outside = [f for f in names if f not in inside]
        col_of: dict[str, np.ndarray] = {}
        comp2_parts = []
        q2 = 0
        for f in outside:
            codes_f, n_f = coded[f]
            col_of[f] = q2 + codes_f
            comp2_parts.append(np.full(n_f, names.index(f)))
            q2 += n_f
        comp2 = np.concatenate(comp2_parts) if comp2_parts else np.zeros(0, dtype=np.int64)
        w = np.column_stack([y, x])
        s1 = {f: slot_of[f][coded[f][0]] for f in inside}
        zz11 = np.zeros(n_groups * m * m)
        zz12 = np.zeros(n_groups * m * q2)
        zz22 = np.zeros(q2 * q2)
        zw1 = np.zeros((n_groups * m, 1 + p))
        zw2 = np.zeros((q2, 1 + p))
        for f in inside:
            row = codes_h * m + s1[f]
            for f2 in inside:
                zz11 += np.bincount(row * m + s1[f2], minlength=zz11.size)
            for f2 in outside:
                zz12 += np.bincount(row * q2 + col_of[f2], minlength=zz12.size)
            for j in range(1 + p):
                zw1[:, j] += np.bincount(row, weights=w[:, j], minlength=n_groups * m)
        for f in outside:
            for f2 in outside:
                zz22 += np.bincount(col_of[f] * q2 + col_of[f2], minlength=zz22.size)
            for j in range(1 + p):
                zw2[:, j] += np.bincount(col_of[f], weights=w[:, j], minlength=q2)
        blocks = zz11.reshape(n_groups, m, m)
        keys = np.concatenate([comp1, zz11.reshape(n_groups, -1)], axis=1)
        uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        return cls(
            n=n,
            p=p,
            n_comp=len(names),
            group=h,
            comp1=comp1,
            comp2=comp2,
            zz12=zz12.reshape(n_groups, m, q2),
            zz22=zz22.reshape(q2, q2),
            zw1=zw1.reshape(n_groups, m, 1 + p),
            zw2=zw2,
            ww=w.T @ w,
            block_comp=comp1[first],
            block_zz=blocks[first],
            block_count=np.bincount(inverse, minlength=len(uniq)).astype(float),
            block_of=inverse,
        )

    def solve(self, theta: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
        """``r2, log|A|, log|X'V^-1 X|, beta, X'V^-1 X`` at relative SDs ``theta``.

        ``A = Lambda Z'Z Lambda + I``; ``r2`` is the penalised residual sum of
        squares, ``V`` the marginal covariance divided by the residual variance
        (Bates et al. 2015, eqs. 34-42). Groups whose blocks are equal (every
        case of a balanced design) share one Cholesky factor.
        """
        lam = np.append(np.asarray(theta, dtype=float), 0.0)
        lam2 = lam[self.comp2]
        n_groups, m = self.comp1.shape
        lam1 = lam[self.block_comp]  # (U, m)
        a11 = lam1[:, :, None] * self.block_zz * lam1[:, None, :]
        a11[:, np.arange(m), np.arange(m)] += 1.0
        chol1 = np.linalg.cholesky(a11)
        logdet_a = 2.0 * float(
            np.sum(np.log(np.diagonal(chol1, axis1=1, axis2=2)) * self.block_count[:, None])
        )
        linv = (np.linalg.inv(chol1) * lam1[:, None, :])[self.block_of]  # L^-1 Lambda_1
        h1 = (linv @ self.zw1).reshape(n_groups * m, -1)
        quad = h1.T @ h1
        if lam2.size:
            v = (linv @ self.zz12).reshape(n_groups * m, -1)  # W = v Lambda_2
            schur = lam2[:, None] * (self.zz22 - v.T @ v) * lam2[None, :]
            schur[np.diag_indices_from(schur)] += 1.0
            chol2 = np.linalg.cholesky(schur)
            h2 = sla.solve_triangular(
                chol2, lam2[:, None] * (self.zw2 - v.T @ h1), lower=True, check_finite=False
            )
            quad = quad + h2.T @ h2
            logdet_a += 2.0 * float(np.sum(np.log(np.diag(chol2))))
        xtvx = self.ww[1:, 1:] - quad[1:, 1:]
        rhs = self.ww[1:, 0] - quad[1:, 0]
        rx = np.linalg.cholesky(xtvx)
        beta = sla.cho_solve((rx, True), rhs, check_finite=False)
        r2 = float(self.ww[0, 0] - quad[0, 0] - rhs @ beta)
        logdet_x = 2.0 * float(np.sum(np.log(np.diag(rx))))
        return r2, logdet_a, logdet_x, beta, xtvx

    # ---------------------------------------------------------------- deviances

    def profiled(self, rho: np.ndarray) -> float:
        """REML deviance (-2 log-likelihood) profiled over the residual variance,
        at variance ratios ``rho`` (component / residual)."""
        n_p = self.n - self.p
        try:
            r2, lda, ldx, _, _ = self.solve(np.sqrt(np.maximum(rho, 0.0)))
        except np.linalg.LinAlgError:
            return math.inf
        if not r2 > 0:
            return math.inf
        return lda + ldx + n_p * (1.0 + math.log(2.0 * math.pi * r2 / n_p))

    def deviance(self, psi: np.ndarray) -> float:
        """REML deviance at variance components ``psi`` (residual last)."""
        s2 = psi[-1]
        r2, lda, ldx, _, _ = self.solve(np.sqrt(np.maximum(psi[:-1], 0.0) / s2))
        return (self.n - self.p) * math.log(2.0 * math.pi * s2) + lda + ldx + r2 / s2

    def cov_fe(self, psi: np.ndarray) -> np.ndarray:
        """Covariance of the fixed effects at variance components ``psi``."""
        s2 = psi[-1]
        _, _, _, _, xtvx = self.solve(np.sqrt(np.maximum(psi[:-1], 0.0) / s2))
        return s2 * np.linalg.inv(xtvx)


# --------------------------------------------------------------------------- optimiser


@dataclass(frozen=True)
class Optimum:
    """Where :func:`minimise_deviance` stopped and whether it is an optimum."""

    rho: np.ndarray
    deviance: float
    decrement: float  # what a feasible Newton step could still gain
    converged: bool
    n_evaluations: int


def _steps(x: np.ndarray) -> np.ndarray:
    return 1e-4 * np.maximum(x, 1e-2)


def _gradient(
    fun: Callable[[np.ndarray], float], x: np.ndarray, f0: float, *, central: bool = True
) -> np.ndarray:
    """Central differences inside, second-order forward differences at the bound 0
    (``central=False``: first-order forward differences, half the evaluations)."""
    h = _steps(x)
    g = np.empty(x.size)
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = h[k]
        if not central:
            g[k] = (fun(x + e) - f0) / h[k]
        elif x[k] >= 2 * h[k]:
            g[k] = (fun(x + e) - fun(x - e)) / (2 * h[k])
        else:
            g[k] = (-3 * f0 + 4 * fun(x + e) - fun(x + 2 * e)) / (2 * h[k])
    return g


def _hessian(
    fun: Callable[[np.ndarray], float], x: np.ndarray, f0: float, idx: np.ndarray
) -> np.ndarray:
    """Finite-difference Hessian over the coordinates ``idx`` (forward at the bound)."""
    h = _steps(x)
    sign = np.where(x >= 2 * h, 1.0, 0.0)  # central inside, forward at the bound
    k = idx.size
    out = np.empty((k, k))

    def at(*moves: tuple[int, float]) -> float:
        z = x.copy()
        for i, s in moves:
            z[i] += s * h[i]
        return fun(z)

    for a, i in enumerate(idx):
        if sign[i]:
            out[a, a] = (at((i, 1)) - 2 * f0 + at((i, -1))) / h[i] ** 2
        else:
            out[a, a] = (at((i, 2)) - 2 * at((i, 1)) + f0) / h[i] ** 2
        for b in range(a + 1, k):
            j = idx[b]
            if sign[i] and sign[j]:
                val = (
                    at((i, 1), (j, 1))
                    - at((i, 1), (j, -1))
                    - at((i, -1), (j, 1))
                    + at((i, -1), (j, -1))
                ) / (4 * h[i] * h[j])
            else:
                val = (at((i, 1), (j, 1)) - at((i, 1)) - at((j, 1)) + f0) / (h[i] * h[j])
            out[a, b] = out[b, a] = val
    return out


def minimise_deviance(fun: Callable[[np.ndarray], float], n_comp: int) -> Optimum:
    """Minimise ``fun`` over ``0 <= rho <= RHO_MAX`` and certify the result.

    L-BFGS-B (forward-difference gradients) from ``rho = 0.3``, then projected
    Newton steps on the components that are free (positive, or at 0 with a
    negative slope), with central-difference gradients and Hessians and a
    backtracking line search, until the Newton decrement ``g' H^-1 g`` is below
    ``DECREMENT_TOL / 100``. ``converged`` is true when the final decrement is
    below ``DECREMENT_TOL`` and the Hessian on the free components is positive
    definite: a REML optimum, components at zero included (their slope is then
    >= 0). A start that does not end certified is followed by the next one
    (``rho = 1``, then ``0.05``); the best end point is returned.
    """
    count = [0]

    def f(x: np.ndarray) -> float:
        count[0] += 1
        return fun(np.clip(x, 0.0, RHO_MAX))

    def f_and_g(x: np.ndarray) -> tuple[float, np.ndarray]:
        f0 = f(x)
        return f0, _gradient(f, x, f0, central=False)

    best: tuple[float, np.ndarray, float, bool] | None = None
    for start in STARTS:
        res = sopt.minimize(
            f_and_g,
            np.full(n_comp, start),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, RHO_MAX)] * n_comp,
            options={"ftol": 1e-10, "gtol": 1e-6, "maxiter": 500},
        )
        x = np.clip(np.asarray(res.x, dtype=float), 0.0, RHO_MAX)
        x[x < 1e-12] = 0.0
        x, f0, decrement, positive = _newton(f, x)
        converged = bool(positive and decrement < DECREMENT_TOL and math.isfinite(f0))
        if best is None or f0 < best[0]:
            best = (f0, x, decrement, converged)
        if converged:
            break
    f0, x, decrement, converged = best  # type: ignore[misc]
    return Optimum(
        rho=x, deviance=f0, decrement=decrement, converged=converged, n_evaluations=count[0]
    )


def _newton(
    f: Callable[[np.ndarray], float], x: np.ndarray
) -> tuple[np.ndarray, float, float, bool]:
    """Projected Newton steps from ``x``: the end point, its deviance, the last
    Newton decrement and whether the Hessian on the free components is positive."""
    f0 = f(x)
    decrement, positive = math.inf, False
    for _ in range(25):
        g = _gradient(f, x, f0)
        free = np.flatnonzero((x > 0) | (g < 0))
        if free.size == 0:
            return x, f0, 0.0, True
        vals, vecs = np.linalg.eigh(_hessian(f, x, f0, free))
        positive = bool(vals.min() > 0)
        # Newton direction; a non-convex patch is walked with |eigenvalues|
        step = -(vecs @ ((vecs.T @ g[free]) / np.maximum(np.abs(vals), 1e-12)))
        decrement = float(-g[free] @ step)
        done = decrement < DECREMENT_TOL / 100 and positive
        t, moved = 1.0, False
        for _ in range(3 if done else 40):  # the last step only when it helps
            trial = x.copy()
            trial[free] = np.clip(x[free] + t * step, 0.0, RHO_MAX)
            ft = f(trial)
            if ft < f0:
                x, f0, moved = trial, ft, True
                break
            t *= 0.5
        if done or not moved:
            break
    return x, f0, decrement, positive
