"""Success criteria: every endpoint of a registered plan judged PASS, FAIL or NOT EVALUABLE.

The plan (``studyhub.protocol.plan.AnalysisPlan``) states, before any data, each
endpoint's measure, statistic, comparison and hypothesis. :func:`evaluate_criteria`
runs exactly that analysis on the long data frame of ratings and applies the
decision rule the hypothesis implies:

- superiority: the one-sided p-value of ``arm - versus > 0``, adjusted across the
  primary endpoints by the plan's multiplicity procedure, is below alpha;
- non-inferiority: the same for ``arm - versus > -margin`` (equivalently the
  lower (1 - 2 alpha) confidence limit lies above ``-margin``);
- agreement / correlation: the lower confidence limit reaches the threshold.

An endpoint whose analysis cannot run on the data (too few raters, a missing arm,
constant ratings) is NOT EVALUABLE, with the reason; it never passes. Under a
fixed-sequence procedure the primary endpoints are tested in the plan's order
and every primary endpoint after the first failure FAILS as "not reached".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.protocol.plan import COMPARISON_STATISTICS, AnalysisPlan, Endpoint
from studyhub.stats._data import require_columns, require_numeric
from studyhub.stats.multiplicity import adjust_pvalues

__all__ = ["CriteriaReport", "EndpointResult", "evaluate_criteria"]

Verdict = Literal["PASS", "FAIL", "NOT EVALUABLE"]


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint's estimate, interval, p-values and verdict, with the criterion text."""

    endpoint: str
    primary: bool
    statistic: str
    measure: str
    comparison: str | None
    hypothesis: str
    criterion: str
    verdict: Verdict
    reason: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_raters: int | None = None
    n_cases: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CriteriaReport:
    """The verdicts of every endpoint of a plan."""

    plan_id: str
    alpha: float
    confidence: float
    multiplicity: str
    results: list[EndpointResult]

    @property
    def table(self) -> pd.DataFrame:
        """One row per endpoint (the details dict left out)."""
        rows = [{k: v for k, v in r.__dict__.items() if k != "details"} for r in self.results]
        return pd.DataFrame(rows)

    @property
    def success(self) -> bool:
        """True when every primary endpoint passed."""
        return all(r.verdict == "PASS" for r in self.results if r.primary)


@dataclass
class _Estimate:
    estimate: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None = None
    n_raters: int | None = None
    n_cases: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _describe(ep: Endpoint) -> str:
    h = ep.hypothesis
    if h.type == "non_inferiority":
        return f"non-inferiority (margin {h.margin:g})"
    if h.type in ("agreement", "correlation"):
        return f"{h.type} (threshold {h.threshold:g})"
    return h.type


def evaluate_criteria(
    data: pd.DataFrame,
    *,
    plan: AnalysisPlan,
    rater: str = "rater",
    case: str = "case",
    arm: str = "arm",
    measure: str = "measure",
    value: str = "value",
    truth: str | None = None,
    repeat: str | None = None,
    metrics: pd.DataFrame | None = None,
    seed: int = 0,
) -> CriteriaReport:
    """Evaluate every endpoint of ``plan`` on long rating data.

    Parameters
    ----------
    data
        One row per answer: rater, case, arm, the instrument item (``measure``)
        and its numeric ``value`` (Likert 1..K, yes/no as 1/0; for reader-task
        endpoints the diagnosis confidence).
    plan
        The registered analysis plan.
    rater, case, arm, measure, value
        Column names.
    truth
        Column of the case truth (0/1), for ``mrmc`` endpoints.
    repeat
        Column marking repeat readings (true for the second reading), for
        ``intra_rater`` endpoints.
    metrics
        Stimulus-level quantitative metrics (columns ``case``, ``arm`` named as
        above, one column per metric), for ``spearman`` endpoints.
    seed
        Seed of every bootstrap (the protocol's seed).

    Returns
    -------
    CriteriaReport
        ``results`` in the plan's order; ``success`` is true when all primary
        endpoints pass.

    Examples
    --------
    >>> report = evaluate_criteria(ratings, plan=plan, seed=20261126)  # doctest: +SKIP
    >>> report.table[["endpoint", "estimate", "p_adjusted", "verdict"]]  # doctest: +SKIP
    """
    require_columns(
        data,
        rater=rater,
        case=case,
        arm=arm,
        measure=measure,
        value=value,
        truth=truth,
        missing_ok=("value", "truth"),  # text items and cases without truth; refused per endpoint
    )
    if metrics is not None:
        used = [
            name
            for ep in plan.endpoints
            if ep.statistic == "spearman"
            and (name := ep.measure.removeprefix("metric:")) in metrics.columns
        ]
        require_columns(
            metrics, case=case, arm=arm, missing_ok=used, **{name: name for name in used}
        )
    cols = {"rater": rater, "case": case, "arm": arm, "measure": measure, "value": value}
    estimates: dict[str, _Estimate | str] = {}
    for ep in plan.endpoints:
        try:
            estimates[ep.id] = _run(ep, data, cols, plan, truth, repeat, metrics, seed)
        except DataError as exc:
            estimates[ep.id] = str(exc)
    return CriteriaReport(
        plan_id=plan.id,
        alpha=plan.alpha,
        confidence=plan.confidence,
        multiplicity=plan.multiplicity,
        results=_decide(plan, estimates),
    )


def _subset(data: pd.DataFrame, cols: dict[str, str], ep: Endpoint, item: str) -> pd.DataFrame:
    sub = data[data[cols["measure"]].astype(str) == item]
    if sub.empty:
        raise DataError(
            f"no ratings of item {item!r} in the data (items present: "
            f"{sorted(map(str, data[cols['measure']].unique()))}); check the measure column"
        )
    wanted = [ep.comparison.arm, ep.comparison.versus] if ep.comparison is not None else ep.arms
    if wanted is not None:
        present = set(map(str, sub[cols["arm"]].unique()))
        missing = [a for a in wanted if a not in present]
        if missing:
            raise DataError(
                f"arm(s) {missing} have no ratings of {item!r} (arms present: {sorted(present)})"
            )
        sub = sub[sub[cols["arm"]].astype(str).isin(wanted)]
    values = pd.to_numeric(sub[cols["value"]], errors="coerce")
    if values.isna().any():
        bad = sub[cols["value"]][values.isna()].iloc[0]
        raise DataError(f"item {item!r} has a non-numeric value {bad!r}; code answers as numbers")
    return sub.assign(**{cols["value"]: require_numeric(sub, cols["value"], role="value")})


def _run(
    ep: Endpoint,
    data: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    truth: str | None,
    repeat: str | None,
    metrics: pd.DataFrame | None,
    seed: int,
) -> _Estimate:
    opts = dict(ep.options)
    seed = int(opts.pop("seed", seed))
    if ep.statistic in COMPARISON_STATISTICS and ep.statistic != "mrmc":
        sub = _subset(data, cols, ep, ep.measure)
        if repeat is not None and repeat in sub.columns:  # first readings only
            sub = sub[~sub[repeat].astype(bool)]
        return _compare(ep, sub, cols, plan, opts, seed)
    if ep.statistic == "mrmc":
        return _mrmc(ep, data, cols, plan, truth, opts)
    if ep.statistic == "spearman":
        return _spearman(ep, data, cols, plan, metrics, opts, seed)
    return _agreement(ep, _subset(data, cols, ep, ep.measure), cols, plan, repeat, opts, seed)


def _compare(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    opts: dict[str, Any],
    seed: int,
) -> _Estimate:
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


def _mrmc(
    ep: Endpoint,
    data: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    truth: str | None,
    opts: dict[str, Any],
) -> _Estimate:
    from studyhub.stats.mrmc import mrmc

    if truth is None:
        raise DataError("mrmc endpoints need the case truth: pass truth='column'")
    item = str(opts.pop("item", "diagnosis"))
    if ep.comparison is None:
        raise DataError(f"endpoint {ep.id!r} has no comparison")
    sub = _subset(data, cols, ep, item)
    res = mrmc(
        sub,
        reader=cols["rater"],
        modality=cols["arm"],
        case=cols["case"],
        truth=truth,
        rating=cols["value"],
        alpha=plan.alpha,
    )
    diffs = res.rrrc.differences
    a, b = ep.comparison.arm, ep.comparison.versus
    sign = 1.0
    hit = diffs[(diffs["modality_a"].astype(str) == a) & (diffs["modality_b"].astype(str) == b)]
    if hit.empty:
        hit = diffs[(diffs["modality_a"].astype(str) == b) & (diffs["modality_b"].astype(str) == a)]
        sign = -1.0
    row = hit.iloc[0]
    est, se, df = sign * float(row["estimate"]), float(row["stderr"]), float(row["df"])
    shift = ep.hypothesis.margin or 0.0
    t = (est + shift) / se
    q = sps.t.ppf(1 - plan.alpha, df)
    return _Estimate(
        est,
        est - q * se,
        est + q * se,
        float(sps.t.sf(t, df)),
        res.n_readers,
        res.n_cases,
        {"analysis": "Obuchowski-Rockette, random readers and cases (Hillis ddf)", "ddf": df},
    )


def _spearman(
    ep: Endpoint,
    data: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    metrics: pd.DataFrame | None,
    opts: dict[str, Any],
    seed: int,
) -> _Estimate:
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
        confidence=plan.confidence,
    )
    return _Estimate(res.estimate, res.ci_low, res.ci_high, res.p_value, None, res.n_cases)


def _agreement(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    repeat: str | None,
    opts: dict[str, Any],
    seed: int,
) -> _Estimate:
    from studyhub.stats import agreement

    sub = sub.assign(_unit=sub[cols["case"]].astype(str) + "|" + sub[cols["arm"]].astype(str))
    n_raters = int(sub[cols["rater"]].nunique())
    n_cases = int(sub[cols["case"]].nunique())
    conf = plan.confidence
    if ep.statistic == "intra_rater":
        if repeat is None:
            raise DataError("intra_rater endpoints need the repeat-reading column: pass repeat=")
        intra = agreement.intra_rater_agreement(
            sub,
            items="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            repeat=repeat,
            n_boot=int(opts.pop("n_boot", 2000)),
            seed=seed,
            confidence=conf,
            **opts,
        )
        return _Estimate(intra.estimate, intra.ci_low, intra.ci_high, None, n_raters, n_cases)
    if repeat is not None and repeat in sub.columns:
        sub = sub[~sub[repeat].astype(bool)]
    if ep.statistic == "krippendorff_alpha":
        alpha = agreement.krippendorff_alpha(
            sub,
            units="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            level=opts.pop("level", "ordinal"),
            n_boot=int(opts.pop("n_boot", 2000)),
            seed=seed,
            confidence=conf,
        )
        return _Estimate(alpha.estimate, alpha.ci_low, alpha.ci_high, None, n_raters, n_cases)
    if ep.statistic == "icc":
        res = agreement.icc(
            sub, targets="_unit", raters=cols["rater"], ratings=cols["value"], confidence=conf
        )
        form = res.form(str(opts.pop("form", "ICC2")))
        return _Estimate(form.estimate, form.ci_low, form.ci_high, form.p_value, n_raters, n_cases)
    if ep.statistic == "cohen_kappa":
        kap = agreement.cohen_kappa(
            sub,
            subjects="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            weights=opts.pop("weights", None),
            confidence=conf,
        )
        return _Estimate(kap.estimate, kap.ci_low, kap.ci_high, kap.p_value, n_raters, n_cases)
    if ep.statistic == "fleiss_kappa":
        return _fleiss(sub, cols, conf, int(opts.pop("n_boot", 1000)), seed, n_raters, n_cases)
    raise DataError(f"statistic {ep.statistic!r} is not an agreement statistic")


def _fleiss(
    sub: pd.DataFrame,
    cols: dict[str, str],
    conf: float,
    n_boot: int,
    seed: int,
    n_raters: int,
    n_cases: int,
) -> _Estimate:
    """Fleiss' kappa with a percentile bootstrap over rated units (its SE is only under H0)."""
    from studyhub.stats.agreement import fleiss_kappa

    point = fleiss_kappa(
        sub, subjects="_unit", raters=cols["rater"], ratings=cols["value"]
    ).estimate
    units = sub["_unit"].unique()
    groups = {u: g for u, g in sub.groupby("_unit", sort=False)}
    rng = np.random.default_rng(seed)
    boots: list[float] = []
    for _ in range(n_boot):
        pick = rng.choice(units, size=units.size, replace=True)
        frame = pd.concat(
            [groups[u].assign(_unit=f"{i}") for i, u in enumerate(pick)], ignore_index=True
        )
        try:
            boots.append(
                fleiss_kappa(
                    frame, subjects="_unit", raters=cols["rater"], ratings=cols["value"]
                ).estimate
            )
        except DataError:
            continue
    if len(boots) < n_boot // 2:
        raise DataError("the bootstrap of Fleiss' kappa failed in most resamples; too few units")
    tail = (1 - conf) / 2 * 100
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return _Estimate(point, float(lo), float(hi), None, n_raters, n_cases, {"n_boot": len(boots)})


def _decide(plan: AnalysisPlan, estimates: dict[str, _Estimate | str]) -> list[EndpointResult]:
    tested = [
        ep.id
        for ep in plan.endpoints
        if ep.primary
        and ep.statistic in COMPARISON_STATISTICS
        and isinstance(estimates[ep.id], _Estimate)
    ]
    raw = [estimates[i].p_value for i in tested]  # type: ignore[union-attr]
    adjusted: dict[str, float] = {}
    if tested and plan.multiplicity != "fixed_sequence":
        method = "none" if plan.multiplicity == "none" else plan.multiplicity
        adjusted = dict(
            zip(
                tested,
                map(float, adjust_pvalues(np.asarray(raw, dtype=float), method)),
                strict=True,
            )
        )
    results: list[EndpointResult] = []
    stopped: str | None = None
    for ep in plan.endpoints:
        est = estimates[ep.id]
        base: dict[str, Any] = {
            "endpoint": ep.id,
            "primary": ep.primary,
            "statistic": ep.statistic,
            "measure": ep.measure,
            "comparison": f"{ep.comparison.arm} - {ep.comparison.versus}"
            if ep.comparison
            else None,
            "hypothesis": _describe(ep),
            "criterion": " ".join(ep.success_criterion.split()),
        }
        if isinstance(est, str):
            results.append(EndpointResult(**base, verdict="NOT EVALUABLE", reason=est))
            if ep.primary and plan.multiplicity == "fixed_sequence" and stopped is None:
                stopped = ep.id
            continue
        p_adj = adjusted.get(ep.id, est.p_value) if ep.primary else est.p_value
        verdict, reason = _verdict(ep, est, p_adj, plan.alpha)
        if ep.primary and plan.multiplicity == "fixed_sequence":
            if stopped is not None:
                verdict, reason = "FAIL", f"not reached: the fixed sequence stopped at {stopped!r}"
            elif verdict != "PASS":
                stopped = ep.id
        results.append(
            EndpointResult(
                **base,
                verdict=verdict,
                reason=reason,
                estimate=est.estimate,
                ci_low=est.ci_low,
                ci_high=est.ci_high,
                p_value=est.p_value,
                p_adjusted=p_adj if ep.statistic in COMPARISON_STATISTICS else None,
                n_raters=est.n_raters,
                n_cases=est.n_cases,
                details=est.details,
            )
        )
    return results


def _verdict(ep: Endpoint, est: _Estimate, p: float | None, alpha: float) -> tuple[Verdict, str]:
    h = ep.hypothesis
    if h.type in ("agreement", "correlation"):
        if est.ci_low is None or not math.isfinite(est.ci_low):
            return "NOT EVALUABLE", "no confidence interval could be computed"
        ok = est.ci_low >= float(h.threshold or 0.0)
        word = "reaches" if ok else "falls short of"
        return (
            "PASS" if ok else "FAIL"
        ), f"lower limit {est.ci_low:.3f} {word} the threshold {h.threshold:g}"
    if p is None or not math.isfinite(p):
        return "NOT EVALUABLE", "no p-value could be computed"
    ok = p < alpha
    null = "difference <= 0" if h.type == "superiority" else f"difference <= -{h.margin:g}"
    verdict: Verdict = "PASS" if ok else "FAIL"
    return (
        verdict,
        f"H0 ({null}) {'rejected' if ok else 'not rejected'}: p = {p:.4g} vs alpha {alpha:g}",
    )
