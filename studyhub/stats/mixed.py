"""Linear mixed models with crossed random intercepts, fitted by REML.

:func:`fit_crossed_mixed_model` fits ``y = X beta + sum_k Z_k b_k + e`` with
independent random intercepts for crossed (or nested) grouping factors, such as
the raters, cases, rater x arm, case x arm and rater x case cells of a reader
study, and :class:`MixedModelFit` gives the fixed effects, their covariance and
Satterthwaite degrees of freedom of any contrast. Two engines fit the same
model: studyhub's own profiled REML from sufficient statistics
(:mod:`studyhub.stats._reml`; fast, the default) and statsmodels ``MixedLM``
(the well-known library, for cross-checks).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studyhub.errors import DataError
from studyhub.stats._reml import RHO_DEGENERATE, CrossedDesign, minimise_deviance

try:  # installed with scikit-learn, which pingouin requires
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _single_thread_blas() -> AbstractContextManager[object]:
    """BLAS on one thread: the mixed model's matrices are small (blocks of a few
    dozen levels), where multi-threaded BLAS is 10-100x slower."""
    if threadpool_limits is None:  # pragma: no cover
        return nullcontext()
    limiter: AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limiter


__all__ = ["ENGINES", "Engine", "MixedModelFit", "fit_crossed_mixed_model"]

Engine = Literal["studyhub", "statsmodels"]
ENGINES = ("studyhub", "statsmodels")
#: Relative finite-difference step of the Satterthwaite derivatives: large enough that
#: rounding in the deviance (about 1e-13 of it) stays below 1e-5 of its curvature.
STEP = 1e-3


@dataclass(frozen=True)
class MixedModelFit:
    """A REML fit of ``y = X beta + sum_k Z_k b_k + e`` with independent random
    intercepts ``b_k ~ N(0, var_k I)`` for crossed factors.

    ``fe_names``/``fe_params``/``cov_fe`` are the fixed effects and their
    covariance; ``variance_components`` maps each factor (and ``"residual"``) to
    its variance; ``reml_criterion`` is -2 times the REML log-likelihood as lme4
    prints it. ``engine`` names the code that fitted it (``"studyhub"`` or
    ``"statsmodels"``). ``converged`` is true when the variance components are
    a REML optimum (see :func:`fit_crossed_mixed_model`); ``convergence``
    says why not, or how it was checked. :meth:`satterthwaite_df` gives the
    degrees of freedom of a contrast (both engines).
    """

    fe_names: list[str]
    fe_params: np.ndarray
    cov_fe: np.ndarray
    variance_components: dict[str, float]
    reml_criterion: float
    n_obs: int
    converged: bool
    engine: str = "studyhub"
    convergence: str = ""
    _design: CrossedDesign | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def satterthwaite_df(self, contrast: np.ndarray) -> float:
        """Satterthwaite degrees of freedom of ``contrast @ fe_params``.

        ``df = 2 v^2 / (g' W g)`` with ``v`` the contrast's variance, ``g`` its
        gradient in the variance parameters and ``W = 2 H^-1`` their asymptotic
        covariance (``H`` the Hessian of the REML deviance), both by central
        differences, as in lmerTest. Components estimated at zero are held
        fixed. For a statsmodels fit they are evaluated at statsmodels'
        estimates with studyhub's REML deviance of the same model.

        Raises
        ------
        DataError
            For a fit without its REML deviance (built by hand).
        """
        if self._design is None:
            raise DataError(
                "Satterthwaite degrees of freedom need the REML deviance of the fit, which "
                f"this {self.engine!r} fit does not carry; fit it with fit_crossed_mixed_model"
            )
        with _single_thread_blas():
            return self._satterthwaite(np.asarray(contrast, dtype=float), self._design)

    def _parts(
        self, design: CrossedDesign
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Free components, their steps, ``W`` and the covariances at psi +- step (cached)."""
        if "w" in self._cache:
            c = self._cache
            return c["free"], c["steps"], c["w"], c["plus"], c["minus"]
        psi = np.array(list(self.variance_components.values()), dtype=float)
        free = np.flatnonzero(psi > 1e-10 * max(psi[-1], 1e-300))
        x0 = psi[free]
        # relative steps, but not below 1e-5 of the residual variance (numerical
        # noise) nor beyond half the value (stay inside the parameter space)
        steps = np.minimum(STEP * np.maximum(x0, 1e-2 * psi[-1]), 0.5 * x0)

        def at(sub: np.ndarray) -> np.ndarray:
            full = psi.copy()
            full[free] = sub
            return full

        m = x0.size
        plus, minus = [], []
        for i in range(m):
            e = np.zeros(m)
            e[i] = steps[i]
            plus.append(design.cov_fe(at(x0 + e)))
            minus.append(design.cov_fe(at(x0 - e)))
        hess = np.empty((m, m))
        f0 = design.deviance(at(x0))
        for i in range(m):
            ei = np.zeros(m)
            ei[i] = steps[i]
            hess[i, i] = (
                design.deviance(at(x0 + ei)) - 2 * f0 + design.deviance(at(x0 - ei))
            ) / steps[i] ** 2
            for j in range(i + 1, m):
                ej = np.zeros(m)
                ej[j] = steps[j]
                val = (
                    design.deviance(at(x0 + ei + ej))
                    - design.deviance(at(x0 + ei - ej))
                    - design.deviance(at(x0 - ei + ej))
                    + design.deviance(at(x0 - ei - ej))
                ) / (4 * steps[i] * steps[j])
                hess[i, j] = hess[j, i] = val
        w = 2.0 * np.linalg.pinv(hess)  # pinv: a flat direction adds no variance
        self._cache.update(free=free, steps=steps, w=w, plus=plus, minus=minus)
        return free, steps, w, plus, minus

    def _satterthwaite(self, c: np.ndarray, design: CrossedDesign) -> float:
        _, steps, w, plus, minus = self._parts(design)
        grad = np.array(
            [
                (float(c @ plus[i] @ c) - float(c @ minus[i] @ c)) / (2 * steps[i])
                for i in range(steps.size)
            ]
        )
        denom = float(grad @ w @ grad)
        v = float(c @ self.cov_fe @ c)
        if not denom > 0:
            return math.inf
        return 2.0 * v * v / denom


# --------------------------------------------------------------------------- mixed model


def _centred(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` minus its least-squares fit on ``x``, and that fit's coefficients.

    REML and the fixed-effect covariance are invariant to ``y -> y + X b``; the
    sufficient statistics are not numerically: a rating scale offset by 1e4
    loses eight digits of the residual sum of squares to cancellation.
    """
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return y - x @ coef, coef


def fit_crossed_mixed_model(
    y: np.ndarray,
    x: np.ndarray,
    factors: dict[str, np.ndarray],
    *,
    fe_names: Sequence[str] | None = None,
    engine: Engine = "studyhub",
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
        e.g. ``{"rater": ..., "case": ..., "rater:arm": ...}``; factors may be
        crossed or nested.
    fe_names : sequence of str, optional
        Names of the columns of ``x``.
    engine : {"studyhub", "statsmodels"}, default "studyhub"
        ``"studyhub"``: the fast profiled REML below. ``"statsmodels"``:
        statsmodels ``MixedLM`` with one all-encompassing group and one
        variance component per factor (``vc_formula``), ``reml=True``, for
        cross-checks (see Notes).

    Returns
    -------
    MixedModelFit

    Raises
    ------
    DataError
        For an unknown ``engine``, no factor, a response that the fixed effects
        explain exactly, or a residual variance estimated as zero (the random
        effects explain the response exactly).

    Notes
    -----
    The response is first replaced by its residual from the least-squares fit
    on ``x`` (REML is invariant to that; it keeps large offsets from costing
    digits). The profiled REML deviance of Bates et al. (2015, eqs. 34-42) is
    minimised over the variance ratios ``rho_k = var_k / var_residual >= 0``,
    from the sufficient statistics ``Z'Z, Z'X, X'X, Z'y, X'y, y'y``: the
    factors nested in one grouping factor give a block-diagonal part of
    ``Lambda Z'Z Lambda + I`` (one small block per case for a reader study)
    and the others a small dense part, so 24 000 ratings of 20 raters x 300
    cases x 4 arms with rater, case, rater x arm, case x arm and rater x case
    intercepts fit in a few seconds.

    ``converged`` means what it says: after L-BFGS-B (two starts) the fit
    takes projected Newton steps with finite-difference Hessians until no
    feasible step is predicted to lower the REML deviance by more than 1e-6,
    with the Hessian positive definite on the components that are not at
    zero and no component at zero whose increase would lower it. (Earlier
    versions reported the verdict of a Nelder-Mead polish, which stopped at
    its evaluation limit on 1.5-18 % of fits that were at the optimum.)

    Checked against lme4 on the Penicillin data (REML criterion 330.8606, SDs
    0.8467 / 1.9316 / 0.5499, as published by lme4), against the exact
    closed-form REML solution of that balanced design (relative error < 1e-6),
    against the closed-form balanced REML of reader-study designs with every
    interaction (:func:`studyhub.stats.power.balanced_mixed_model_test`) and
    against statsmodels MixedLM.

    The statsmodels engine fits with statsmodels' defaults (BFGS, falling back
    to L-BFGS and CG), then polishes with BFGS at gradient tolerance 1e-10 from
    that solution, kept when its REML log-likelihood is at least as high. It
    is a cross-check, so its fit is checked: studyhub's engine fits the same
    model too, and ``converged`` is true when statsmodels' REML criterion is
    within 1e-6 (relative) of studyhub's certified optimum, whatever
    statsmodels says; otherwise ``convergence`` gives the gap (statsmodels
    stopped short of the optimum in 5 of 190 simulated reader studies with a
    rater x arm term while reporting convergence, and in about half of them
    with every interaction of the reader-study model). Its contrasts
    take Satterthwaite degrees of freedom from studyhub's REML deviance at
    statsmodels' estimates. Warnings of the first fit (e.g. a variance
    component on the boundary) reach the caller unchanged.

    References
    ----------
    .. [1] Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear
       mixed-effects models using lme4. Journal of Statistical Software 67(1).
    .. [2] Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package:
       tests in linear mixed effects models. Journal of Statistical Software 82(13).
    .. [3] Seabold S, Perktold J (2010). statsmodels: econometric and statistical
       modeling with Python. Proceedings of the 9th Python in Science Conference.
    """
    if engine not in ENGINES:
        raise DataError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    if not factors:
        raise DataError("no random factor was given; pass at least one, e.g. {'rater': ...}")
    yv = np.asarray(y, dtype=float)
    xm = np.asarray(x, dtype=float)
    n, p = xm.shape
    names = list(fe_names) if fe_names is not None else [f"x{i}" for i in range(p)]
    yc, offset = _centred(yv, xm)
    scale = float(np.max(np.abs(yv))) if n else 0.0
    if not np.max(np.abs(yc), initial=0.0) > 1e-10 * max(scale, 1e-300):
        raise DataError(
            "the response is explained exactly by the fixed effects (no variation is left "
            "once they are fitted), so no variance can be estimated; check the response "
            "column and the design"
        )
    with _single_thread_blas():
        design = CrossedDesign.build(yc, xm, factors)
        fit = _fit_studyhub(design, factors, names, offset)
    if engine == "statsmodels":
        return _fit_statsmodels(yc, xm, factors, names, offset, design, fit)
    return fit


def _fit_studyhub(
    design: CrossedDesign, factors: dict[str, np.ndarray], names: list[str], offset: np.ndarray
) -> MixedModelFit:
    opt = minimise_deviance(design.profiled, len(factors))
    if not np.isfinite(opt.deviance) or np.any(opt.rho >= RHO_DEGENERATE):
        raise DataError(
            "the residual variance is estimated as zero: the fixed and random effects "
            f"({', '.join(factors)}) explain the response exactly, so no test or interval "
            "exists; check the response column (constant within each cell?) and the design"
        )
    theta = np.sqrt(opt.rho)
    r2, _, _, beta, xtvx = design.solve(theta)
    sigma2 = r2 / (design.n - design.p)
    vc = {name: float(opt.rho[k] * sigma2) for k, name in enumerate(factors)}
    vc["residual"] = float(sigma2)
    return MixedModelFit(
        fe_names=names,
        fe_params=beta + offset,
        cov_fe=sigma2 * np.linalg.inv(xtvx),
        variance_components=vc,
        reml_criterion=float(opt.deviance),
        n_obs=design.n,
        converged=opt.converged,
        convergence=(
            f"REML optimum: Newton decrement {opt.decrement:.1e} after "
            f"{opt.n_evaluations} deviance evaluations"
            if opt.converged
            else f"not at a REML optimum: a Newton step could still lower the deviance by "
            f"{opt.decrement:.2g} after {opt.n_evaluations} evaluations"
        ),
        _design=design,
    )


def _fit_statsmodels(
    y: np.ndarray,
    x: np.ndarray,
    factors: dict[str, np.ndarray],
    names: list[str],
    offset: np.ndarray,
    design: CrossedDesign,
    reference: MixedModelFit,
) -> MixedModelFit:
    """The same model by statsmodels ``MixedLM``: one group, a variance component per factor."""
    from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

    n = len(y)
    mats, levels = [], []
    for name in factors:
        idx, uniq = pd.factorize(np.asarray(factors[name]))
        mats.append([sp.csr_matrix((np.ones(n), (np.arange(n), idx)), shape=(n, len(uniq)))])
        levels.append([[f"{name}[{u}]" for u in uniq]])
    model = MixedLM(
        y,
        x,
        groups=np.zeros(n),
        exog_re=np.zeros((n, 0)),  # no random effect but the variance components
        exog_vc=VCSpec(list(factors), levels, mats),
    )
    res: Any = model.fit(reml=True)  # statsmodels' defaults: BFGS, then L-BFGS, then CG
    with warnings.catch_warnings():  # a failed polish is dropped, so are its warnings
        warnings.simplefilter("ignore")
        polished: Any = model.fit(
            reml=True, start_params=res.params_object, method="bfgs", gtol=1e-10
        )
    own_verdict = "reports convergence" if res.converged else "reports NO convergence"
    # From a solution that has converged, BFGS may end with "precision loss" at the
    # optimum; a higher REML likelihood is what counts.
    if np.isfinite(polished.llf) and polished.llf >= res.llf:
        res = polished
    p = x.shape[1]
    vcomp = dict(zip(model.exog_vc.names, np.atleast_1d(res.vcomp), strict=True))
    vc = {name: float(vcomp[name]) for name in factors}
    vc["residual"] = float(res.scale)
    criterion = float(-2.0 * res.llf)
    gap = criterion - reference.reml_criterion
    converged = bool(reference.converged and gap <= 1e-6 * max(1.0, abs(criterion)))
    if gap > 1e-6 * max(1.0, abs(criterion)):
        note = (
            f"statsmodels stopped at REML criterion {criterion:.6f}, {gap:.3g} above the "
            f"optimum {reference.reml_criterion:.6f} that studyhub's engine found for the "
            f"same model (statsmodels {own_verdict}); use engine='studyhub'"
        )
    else:
        note = (
            f"statsmodels {own_verdict}; its REML criterion is within {max(gap, 0.0):.1g} "
            f"of the optimum certified by studyhub's engine ({reference.convergence})"
        )
    return MixedModelFit(
        fe_names=names,
        fe_params=np.asarray(res.fe_params, dtype=float) + offset,
        cov_fe=np.asarray(res.cov_params(), dtype=float)[:p, :p],
        variance_components=vc,
        reml_criterion=criterion,
        n_obs=n,
        converged=converged,
        engine="statsmodels",
        convergence=note,
        _design=design,
    )
