"""Comparisons of explanation arms rated by several raters on several cases.

In a reader study ``R`` raters rate ``C`` cases, each case shown under ``A``
arms (explanation methods and controls), on an ordinal item such as 1-5
usefulness. :func:`compare_arms` estimates and tests differences between arms
with one of four methods, which differ in the population their inference
extends to:

- ``"mixed_model"`` (primary): a linear mixed model with the arm as fixed
  effect and crossed random intercepts for rater, case, rater x arm, case x
  arm and rater x case, fitted by REML, contrasts tested with Satterthwaite
  degrees of freedom (as R's lmerTest). Generalises to new raters *and* new
  cases: in balanced data it is the DBM / Obuchowski-Rockette analysis of
  the mean rating.
- ``"cluster_bootstrap"``: two-way cluster bootstrap of the mean differences
  (:func:`studyhub.stats.bootstrap.cluster_bootstrap`); raters and cases
  resampled, so it aims at new raters and new cases too.
- ``"friedman"``: Friedman's rank test across arms with case blocks, then
  Wilcoxon signed-rank tests per contrast (rank-based sensitivity analysis;
  conditional on these raters).
- ``"ordinal"``: proportional-odds (cumulative logit) model, fixed rater
  effects, standard errors clustered by case (ordinal sensitivity analysis;
  conditional on these raters).

Direction: a contrast ``(arm, versus)`` estimates ``arm - versus``; higher
ratings are better. ``"superiority"`` tests H1: difference > 0 (one-sided);
``"non_inferiority"`` tests H1: difference > -margin (one-sided);
``"two_sided"`` tests H1: difference != 0.

The models live in their own modules, whose public names are re-exported here:
:mod:`studyhub.stats.mixed` (:func:`fit_crossed_mixed_model`,
:class:`MixedModelFit`), :mod:`studyhub.stats.rank_tests` (:func:`friedman_test`,
:func:`wilcoxon_signed_rank`) and :mod:`studyhub.stats.ordinal`
(:func:`~studyhub.stats.ordinal.fit_proportional_odds`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats import _arms
from studyhub.stats._arms import (
    CONTRAST_COLUMNS,
    Hypothesis,
    Method,
    PreparedArms,
    check_options,
    contrast_row,
    interval_level,
    p_from_t,
    prepare_arms,
    random_terms,
    require_estimable,
    t_quantile,
)
from studyhub.stats._arms_mixed import mixed_model_contrasts
from studyhub.stats.bootstrap import cluster_bootstrap
from studyhub.stats.mixed import Engine, MixedModelFit, fit_crossed_mixed_model
from studyhub.stats.multiplicity import adjust_pvalues
from studyhub.stats.ordinal import fit_proportional_odds
from studyhub.stats.rank_tests import (
    FriedmanResult,
    WilcoxonResult,
    _friedman_from_matrix,
    friedman_test,
    wilcoxon_signed_rank,
)

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

# Importable from here as before the split (studyhub.stats.power uses HYPOTHESES).
HYPOTHESES = _arms.HYPOTHESES
METHODS = _arms.METHODS


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
        normal; NaN for rank methods), ``statistic``, ``ci_low``,
        ``ci_high`` (``inf`` for a one-sided lower bound), ``p_value`` (for the
        chosen hypothesis), ``p_adjusted`` and ``reject`` (``p_adjusted <= alpha``).
    method, hypothesis, margin, alpha, multiplicity :
        The analysis as run.
    confidence : float
        Coverage of each interval (see ``interval_sides``). By default
        ``1 - alpha`` (two-sided) for ``"two_sided"`` and ``1 - 2 alpha``
        (two-sided) for the one-sided hypotheses, so that ``ci_low`` is the
        one-sided ``1 - alpha`` lower confidence bound and an unadjusted
        rejection is ``ci_low > -margin``; otherwise the ``confidence`` passed.
        Intervals are not adjusted for multiplicity: pass the adjusted level
        as ``confidence`` (e.g. ``1 - (1 - 0.95) / m`` for Bonferroni over m).
    interval_sides : int
        2: ``ci_low, ci_high`` is an equal-tailed two-sided interval; 1:
        ``ci_low`` is a one-sided lower confidence bound and ``ci_high`` is ``inf``.
    arm_means : pandas.DataFrame
        ``arm``, ``n`` (ratings), ``mean`` of the raw ratings.
    variance_components : dict
        Mixed model: variances of ``rater``, ``case``, the interactions fitted
        (``rater:arm``, ``case:arm``, ``rater:case``) and ``residual``; empty
        for other methods.
    omnibus : FriedmanResult or None
        Friedman's test across all arms (method ``"friedman"``).
    details : dict
        Method-specific extras (mixed model: engine, random effects fitted,
        REML criterion, ``converged`` and how it was checked; Friedman: blocks
        dropped; bootstrap: its size ...).
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
    interval_sides: int = 2


# --------------------------------------------------------------------------- compare_arms


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
    rater_by_arm: bool | None = None,
    case_by_arm: bool | None = None,
    rater_by_case: bool | None = None,
    engine: Engine = "studyhub",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float | None = None,
    sides: int | None = None,
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
        fixed testing sequence (``multiplicity="fixed_sequence"`` with more
        than one contrast needs them: ``reference=`` states no order).
    method : {"mixed_model", "friedman", "cluster_bootstrap", "ordinal"}
        See the module docstring. ``"mixed_model"`` is the primary analysis;
        ``"friedman"`` and ``"ordinal"`` condition on the raters read and are
        sensitivity analyses.
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
    rater_by_arm, case_by_arm, rater_by_case : bool, optional
        Mixed model only: the random rater x arm, case x arm and rater x case
        intercepts, all on unless switched off (``False``). Without rater x arm
        (case x arm) the inference holds for these raters (cases) only: a
        sensitivity analysis, not a primary one (see Notes).
    engine : {"studyhub", "statsmodels"}, default "studyhub"
        Mixed model only: the code that fits it (see Notes). ``"statsmodels"``
        fits statsmodels ``MixedLM`` for a cross-check; other methods refuse it.
    n_boot, seed : int
        Bootstrap resamples and seed (``"cluster_bootstrap"``).
    confidence : float, optional
        Coverage of the intervals, above 0.5 and below 1. By default a two-sided
        ``1 - alpha`` interval for ``"two_sided"`` and a two-sided ``1 - 2
        alpha`` interval (whose lower limit is the one-sided ``1 - alpha``
        bound) for the one-sided hypotheses. Given, a one-sided hypothesis gets
        the one-sided lower bound of this coverage (``ci_high = inf``) unless
        ``sides=2``. Pass a multiplicity-adjusted level to adjust the intervals.
    sides : {1, 2}, optional
        1: a one-sided lower confidence bound (one-sided hypotheses only); 2: a
        two-sided interval. Default: see ``confidence``.

    Returns
    -------
    ArmComparison

    Raises
    ------
    DataError
        For missing columns, unknown arms or options, infinite ratings, two
        ratings of one (rater, case, arm), ratings constant within each arm, a
        residual variance of zero, too few raters or cases for the random
        interactions (fewer than 3, or a design that cannot tell them from the
        residual), incomplete Friedman blocks, or a fixed testing sequence
        without explicit ``contrasts``.

    Notes
    -----
    *Mixed model: which population.* ``rating ~ arm + (1|rater) + (1|case) +
    (1|rater:arm) + (1|case:arm) + (1|rater:case)``, REML, via
    :func:`fit_crossed_mixed_model`; contrasts are t tests with Satterthwaite
    degrees of freedom. A claim that an explanation helps *experts* on
    *images* must hold for raters and cases not in the study, so both are
    random (Obuchowski & Rockette 1995; Judd, Westfall & Kenny 2012 on
    treating stimuli as random), and so are their interactions with the arm:
    raters differ in how much an explanation helps them and cases in how much
    it helps on them, and a model without those terms takes that variation for
    noise that averages out over the ratings, although it averages out only
    over raters and cases. With rater x arm SD 0.2 (12 raters x 60 cases)
    the two-intercept model rejected a true null in 30 % of studies at
    alpha = 0.05 and its 95 % intervals covered 72 %. The model is the
    maximal random-intercept model of the fully crossed design (Barr, Levy,
    Scheepers & Tily 2013, "keep it maximal"); it keeps the rater x case
    term because in a fully crossed design it is estimable and, left in the
    residual, would bias the interaction variances down (the error term of
    the arm contrasts by its variance). In balanced, complete data it is
    the Dorfman-Berbaum-Metz analysis of the mean rating, whose pseudovalues
    are the ratings themselves, equivalently Obuchowski-Rockette with the
    figure of merit "mean rating" and jackknife covariances (Hillis, Obuchowski,
    Schartz & Berbaum 2005): the contrast's error term is ``MS(rater:arm) +
    MS(case:arm) - MS(residual)`` with the Satterthwaite degrees of freedom
    of that whole combination (the original DBM ddf; Hillis 2007, 2008
    proposed a ddf that keeps only the ``MS(rater:arm)`` term and is a little
    larger), and components estimated at zero constrained as REML does (much
    like Hillis' ``max(MS(case:arm) - MS(residual), 0)``); the mixed model
    extends it to missing ratings and unbalanced reading designs. The
    simulations in the tests check a type-I error of 0.05 and 95 % coverage
    within two Monte Carlo SEs with rater x arm and case x arm SDs of 0.2-0.3,
    Likert and continuous ratings, 2 and 4 arms, 6 x 30 to 20 x 100 designs.
    ``rater_by_arm=False`` / ``case_by_arm=False`` condition on the raters /
    cases read: sensitivity analyses. Too few raters or cases for the
    interactions (fewer than 3; every case x arm read by one rater; no rater
    who read two arms ...) is an error naming the counts, not a silently
    smaller model. The response is centred before fitting (a rating offset by
    1e4 gives the same Satterthwaite df), and ``details["converged"]`` is
    true only at a certified REML optimum (see :func:`fit_crossed_mixed_model`).

    *Engines.* The default ``engine="studyhub"`` is the fast one because a whole
    analysis plan is meant to run within a minute (``benchmarks/stats_bench.py``):
    on 20 raters x 300 cases x 4 arms (24 000 ratings) the full model fits in a
    few seconds. ``engine="statsmodels"`` fits the same model with statsmodels
    ``MixedLM`` (one all-encompassing group, one variance component per
    random factor; REML), a cross-check against the well-known library, slow
    on large studies. Its fit is checked against studyhub's optimum
    (``converged=False`` with the gap in ``details["convergence"]`` when it
    stops short) and its contrasts are t tests with Satterthwaite degrees of
    freedom evaluated at statsmodels' estimates (its own summary uses Wald z,
    whose type-I error was 0.084 with 12 raters). Both engines agree to 1e-4
    on estimates and 1e-3 (relative) on standard errors in the tests, and
    reproduce lme4 on the Penicillin data.

    *Friedman.* Blocks are cases: ratings are averaged over raters within each
    case x arm, and Friedman's test compares arms within cases. Cases are the
    independent units; rater x case blocks would share case and rater effects
    and overstate the evidence. Cases lacking an arm are dropped and counted in
    ``details["incomplete_blocks_dropped"]``. Contrasts use the Wilcoxon
    signed-rank test on case-level differences (exact when n <= 50 without
    ties), with Hodges-Lehmann estimate and interval; not adjusted for the
    rater dimension, so it treats raters as fixed.

    *Ordinal.* Proportional-odds model
    (:func:`~studyhub.stats.ordinal.fit_proportional_odds`, the model of
    statsmodels ``OrderedModel``, logit)
    with arm and fixed rater effects (a rater's severity shifts all thresholds;
    20-odd raters are well estimated with hundreds of ratings each) and
    cluster-robust (sandwich) standard errors clustered by case, which allow
    for any within-case correlation without a random-effect integral.
    Estimates are log cumulative odds ratios; Wald z tests. Random effects
    in a cumulative link model (R's ``ordinal::clmm``) are not available in
    Python's scientific stack.

    *Cluster bootstrap.* :func:`studyhub.stats.bootstrap.cluster_bootstrap`:
    the two-way (rater and case) bootstrap with its variance corrected for the
    over-counted cell-level noise, t tests and intervals with Satterthwaite df.

    Checked against lme4 (Penicillin, both engines), statsmodels MixedLM (the
    full model), the closed-form balanced REML / DBM quasi-F
    (:func:`studyhub.stats.power.balanced_mixed_model_test`), R's
    ``friedman.test`` (RoundingTimes) and ``wilcox.test`` (Hollander & Wolfe
    depression data), and by simulation: the mixed-model test rejects at the
    nominal rate and its intervals cover at the nominal rate under rater x
    arm, case x arm and rater x case variation.

    References
    ----------
    .. [1] Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear
       mixed-effects models using lme4. J Stat Softw 67(1).
    .. [2] Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package.
       J Stat Softw 82(13).
    .. [3] Friedman M (1937). JASA 32:675-701; Hollander M, Wolfe DA (1973).
       Nonparametric Statistical Methods. Wiley.
    .. [4] McCullagh P (1980). Regression models for ordinal data. JRSS B 42:109-142.
    .. [5] Obuchowski NA, Rockette HE (1995). Hypothesis testing of diagnostic
       accuracy for multiple readers and multiple tests: an ANOVA approach with
       dependent observations. Commun Stat Simul Comput 24:285-308.
    .. [6] Dorfman DD, Berbaum KS, Metz CE (1992). Receiver operating
       characteristic rating analysis: generalization to the population of
       readers and patients with the jackknife method. Invest Radiol 27:723-731.
    .. [7] Hillis SL, Obuchowski NA, Schartz KM, Berbaum KS (2005). A comparison of
       the Dorfman-Berbaum-Metz and Obuchowski-Rockette methods for receiver
       operating characteristic (ROC) data. Stat Med 24:1579-1607.
    .. [8] Hillis SL (2007). A comparison of denominator degrees of freedom
       methods for multiple observer ROC analysis. Stat Med 26:596-619; Hillis
       SL, Berbaum KS, Metz CE (2008). Recent developments in the
       Dorfman-Berbaum-Metz procedure for multireader ROC study analysis.
       Acad Radiol 15:647-661.
    .. [9] Barr DJ, Levy R, Scheepers C, Tily HJ (2013). Random effects structure
       for confirmatory hypothesis testing: keep it maximal. J Mem Lang
       68:255-278.
    .. [10] Judd CM, Westfall J, Kenny DA (2012). Treating stimuli as a random
       factor in social psychology: a new and comprehensive solution to a
       pervasive but largely ignored problem. J Pers Soc Psychol 103:54-69.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ratings = pd.DataFrame(
    ...     [{"rater": f"r{r}", "case": f"c{c}", "arm": arm,
    ...       "score": float(np.clip(np.rint(3 + eff + rng.normal(0, 0.8)), 1, 5))}
    ...      for r in range(5) for c in range(20) for arm, eff in (("ig", 1.0), ("random", 0.0))])
    >>> res = compare_arms(ratings, arm="arm", rating="score", rater="rater", case="case",
    ...                    reference="random")
    >>> row = res.contrasts.iloc[0]
    >>> row["contrast"], round(float(row["estimate"]), 2), bool(row["p_value"] < 0.001)
    ('ig - random', 0.81, True)
    """
    check_options(method, hypothesis, margin, alpha, multiplicity, engine=engine)
    terms = random_terms(
        method, rater_by_arm=rater_by_arm, case_by_arm=case_by_arm, rater_by_case=rater_by_case
    )
    level = interval_level(hypothesis, alpha, confidence, sides)
    prep = prepare_arms(
        data,
        arm=arm,
        rating=rating,
        rater=rater,
        case=case,
        reference=reference,
        contrasts=contrasts,
        min_raters=1 if method in ("friedman",) else 2,
    )
    if multiplicity == "fixed_sequence" and contrasts is None and len(prep.contrasts) > 1:
        order = [f"{a} - {b}" for a, b in prep.contrasts]
        raise DataError(
            f"multiplicity='fixed_sequence' tests the contrasts in their pre-registered order, "
            f"but reference={reference!r} states no order (the arms would be tested "
            f"alphabetically: {order}); pass contrasts=[(arm, versus), ...] in the planned "
            "testing order"
        )
    # Every method computes its equal-tailed two-sided interval at this level; a
    # one-sided bound keeps the lower limit (ci_high set to inf below).
    confidence = level.two_sided
    null = -margin
    frame = prep.frame
    rows: list[dict[str, Any]] = []
    vc: dict[str, float] = {}
    details: dict[str, Any] = {}
    omnibus: FriedmanResult | None = None

    if method == "mixed_model":
        fitted = require_estimable(frame, terms)
        rows, vc, details = mixed_model_contrasts(
            prep, fitted, engine=engine, confidence=confidence, hypothesis=hypothesis, null=null
        )
        if fitted != terms:
            details["rater_by_case"] = (
                "not separable from the residual (each rater read each case under one arm); "
                "the residual variance includes it"
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
                contrast_row(
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
        details.update(n_boot=n_boot, seed=seed, scheme=boot.scheme)
        for k, (a, b) in enumerate(prep.contrasts):
            row = boot.contrasts.iloc[k]
            est, se, df = float(row["estimate"]), float(row["se"]), float(row["df"])
            stat = (est - null) / se
            tq = t_quantile(confidence, df)
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
    else:  # ordinal
        rows, details = _ordinal(frame, prep, confidence, hypothesis)

    table = pd.DataFrame(rows)
    table["p_adjusted"] = adjust_pvalues(table["p_value"].to_numpy(), multiplicity)
    table["reject"] = table["p_adjusted"] <= alpha
    if level.sides == 1:
        table["ci_high"] = math.inf
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
        confidence=level.coverage,
        multiplicity=multiplicity,
        arm_means=means,
        variance_components=vc,
        omnibus=omnibus,
        details=details,
        n_obs=len(frame),
        n_raters=int(frame["rater"].nunique()),
        n_cases=int(frame["case"].nunique()),
        n_missing_ratings=prep.n_missing,
        interval_sides=level.sides,
    )


#: The most rating categories the proportional-odds model takes (an ordinal scale, not a
#: continuous measurement).
MAX_ORDINAL_LEVELS = 20


def _ordinal(
    frame: pd.DataFrame, prep: PreparedArms, confidence: float, hypothesis: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    levels = np.sort(frame["y"].unique())
    if levels.size < 3:
        raise DataError(
            f"method='ordinal' needs at least 3 rating categories, found {levels.size} "
            f"({list(levels)}); use method='mixed_model'"
        )
    whole = bool(np.all(np.equal(np.mod(levels, 1), 0)))
    if levels.size > MAX_ORDINAL_LEVELS or not whole:
        raise DataError(
            f"method='ordinal' models an ordinal scale (such as a 1-5 Likert item), but the "
            f"ratings take {levels.size} distinct values (e.g. {levels[:3].tolist()}), "
            f"{'not all whole numbers' if not whole else f'more than {MAX_ORDINAL_LEVELS}'}; "
            "use method='mixed_model' for continuous ratings"
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
    po = fit_proportional_odds(codes, x, frame["case"].to_numpy())
    beta, cov, tau, converged = po.params, po.cov, po.thresholds, po.converged
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
        var = float(c @ cov @ c)
        if not (math.isfinite(var) and var > 0):
            raise DataError(
                f"the ordinal fit gives contrast {a!r} - {b!r} no positive variance ({var:.3g}):"
                " a category or an arm is too sparse for the proportional-odds model; merge "
                "rare categories or use method='mixed_model'"
            )
        se = math.sqrt(var)
        stat = est / se
        p_value = p_from_t(stat, math.inf, hypothesis)
        rows.append(
            contrast_row(a, b, est, se, math.inf, stat, est - z * se, est + z * se, p_value)
        )
    details = {
        "scale": "log cumulative odds ratio (proportional odds, logit link)",
        "converged": converged,
        "cov_type": "cluster-robust (sandwich) by case, fixed rater effects",
        "thresholds": [float(t) for t in tau],
        "levels": [float(v) for v in levels],
    }
    return rows, details
