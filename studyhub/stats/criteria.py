"""Success criteria: every endpoint of a registered plan judged PASS, FAIL or NOT EVALUABLE.

The plan (``studyhub.protocol.plan.AnalysisPlan``) states, before any data, each
endpoint's measure, statistic, comparison and hypothesis. :func:`evaluate_criteria`
runs exactly that analysis on the long data frame of ratings and applies the
decision rule the hypothesis implies:

- superiority: the one-sided p-value of ``arm - versus > 0``, adjusted across the
  primary comparison endpoints by the plan's multiplicity procedure, is below alpha;
- non-inferiority: the same for ``arm - versus > -margin`` (equivalently the
  one-sided lower confidence bound, at the level matching the adjustment, lies
  above ``-margin``);
- agreement / correlation: the one-sided lower confidence bound at the plan's
  ``confidence`` reaches the threshold;
- proportion (``accuracy``, ``cue_marks`` without a comparison): the one-sided
  p-value of ``proportion > threshold`` (adjusted like a comparison's when the
  endpoint is primary) is below alpha, i.e. the lower bound exceeds the threshold.

Each instrument item type is analysed on its own terms: numeric codes
(``value``) for likert and yes/no items and for the ordered agreement
statistics; the answer's text (``label``) for the nominal agreement statistics
(Fleiss' kappa, unweighted Cohen's kappa, nominal Krippendorff's alpha,
unweighted intra-rater kappa), so that single-choice answers are categories and
diagnosis answers are classes, not confidences; the class named by the answer
for ``accuracy``; diagnosis class plus confidence for ``mrmc``. Free text is
never analysed (:func:`studyhub.stats.free_text.free_text_summary` counts it).

The plan is applied as written:

- *Family.* The multiplicity family is every primary comparison endpoint of the
  plan. One whose analysis cannot run on the data (too few raters, a missing
  arm, constant ratings) is NOT EVALUABLE, with the reason, never passes, and
  stays in the family with p = 1 (:func:`studyhub.stats.multiplicity.adjust_family`),
  so a missing endpoint never makes the others easier to pass.
- *Order.* Under ``fixed_sequence`` the primary endpoints are tested in the
  plan's order (each endpoint states one contrast, ``arm - versus``); every
  primary endpoint after the first that does not pass FAILS as "not reached".
- *Intervals.* Every hypothesis a plan states is one-sided, so every interval is
  a one-sided lower bound (``ci_high`` is ``inf``) at the plan's ``confidence``
  (which the plan schema keeps equal to ``1 - alpha``), Bonferroni-adjusted for
  the primary comparisons under Holm or Bonferroni
  (:func:`studyhub.stats.multiplicity.family_interval`). Each result names its
  interval's level and adjustment (``ci_level``, ``ci_sides``, ``ci_adjustment``)
  and the population its inference holds for (``population``).
- *Success.* Every primary endpoint must PASS (the plan marks the endpoints that
  decide success with ``primary: true`` and states no other rule); a primary
  endpoint that FAILS or is NOT EVALUABLE fails the study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import (
    AGREEMENT_STATISTICS,
    COMPARISON_STATISTICS,
    CONDITIONAL_STATISTICS,
    CORRELATION_STATISTICS,
    PROPORTION_STATISTICS,
    AnalysisPlan,
    Endpoint,
)
from studyhub.stats._data import require_columns, require_numeric
from studyhub.stats.multiplicity import FamilyInterval, adjust_family, family_interval

__all__ = ["CriteriaReport", "EndpointResult", "evaluate_criteria"]

Verdict = Literal["PASS", "FAIL", "NOT EVALUABLE"]

#: The plan's success rule, as the report states it.
SUCCESS_RULE = (
    "every primary endpoint must PASS: the plan marks the endpoints that decide success with "
    "primary: true, so a primary endpoint that FAILS or is NOT EVALUABLE fails the study"
)


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint's estimate, interval, p-values and verdict, with the criterion text.

    ``ci_low`` .. ``ci_high`` is the interval: with ``ci_sides`` 1 a one-sided
    lower confidence bound (``ci_high`` is ``inf``), with 2 a two-sided interval;
    ``ci_level`` is its coverage and ``ci_adjustment`` its multiplicity
    adjustment in words. ``population`` says to whom the inference
    generalises (new raters and cases, or only the raters read).
    """

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
    ci_level: float | None = None
    ci_sides: int | None = None
    ci_adjustment: str = ""
    population: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CriteriaReport:
    """The verdicts of every endpoint of a plan.

    ``family`` lists the endpoints of the multiplicity family (every primary
    comparison endpoint, evaluable or not); ``success_rule`` states the rule
    ``success`` applies.
    """

    plan_id: str
    alpha: float
    confidence: float
    multiplicity: str
    results: list[EndpointResult]
    family: list[str] = field(default_factory=list)
    success_rule: str = SUCCESS_RULE

    @property
    def table(self) -> pd.DataFrame:
        """One row per endpoint (the details dict left out)."""
        rows = [{k: v for k, v in r.__dict__.items() if k != "details"} for r in self.results]
        return pd.DataFrame(rows)

    @property
    def success(self) -> bool:
        """True when every primary endpoint passed (``success_rule``)."""
        return all(r.verdict == "PASS" for r in self.results if r.primary)

    @property
    def not_passed(self) -> list[str]:
        """The primary endpoints that did not pass, each with its verdict."""
        return [
            f"{r.endpoint} ({r.verdict})" for r in self.results if r.primary and r.verdict != "PASS"
        ]


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
    if h.type in ("agreement", "correlation", "proportion"):
        return f"{h.type} (threshold {h.threshold:g})"
    return h.type


@dataclass(frozen=True)
class _Inputs:
    """Everything an endpoint may read besides the answers' core columns."""

    truth: str | None = None
    repeat: str | None = None
    metrics: pd.DataFrame | None = None
    label: str | None = None
    prediction: str | None = None
    marks: pd.DataFrame | None = None
    classes: Sequence[str] | None = None


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
    label: str | None = None,
    prediction: str | None = None,
    marks: pd.DataFrame | None = None,
    classes: Sequence[str] | None = None,
) -> CriteriaReport:
    """Evaluate every endpoint of ``plan`` on long rating data.

    Parameters
    ----------
    data
        One row per answer: rater, case, arm, the instrument item (``measure``)
        and its numeric ``value`` (Likert 1..K, yes/no as 1/0, a single choice's
        position, a diagnosis' confidence 0..100), optionally the answer as text
        (``label``), the case's class (``truth``) and the model's predicted
        class (``prediction``).
    plan
        The registered analysis plan.
    rater, case, arm, measure, value
        Column names.
    truth
        Column of the case truth, for ``accuracy`` (the class) and ``mrmc``
        endpoints (0/1, or the class: see :mod:`studyhub.stats._mrmc_endpoint`).
    repeat
        Column marking repeat readings (true for the second reading), for
        ``intra_rater`` endpoints.
    metrics
        Stimulus-level quantitative metrics (columns ``case``, ``arm`` named as
        above, one column per metric), for ``spearman`` endpoints.
    seed
        Seed of every bootstrap (the protocol's seed).
    label
        Column of the answer as text (the choice, the diagnosis class, "yes" /
        "no", the Likert point): the categories of the nominal agreement
        statistics and the answers of ``accuracy`` and ``mrmc`` endpoints.
        Without it nominal agreement uses ``value``.
    prediction
        Column of the model's predicted class, for ``accuracy`` endpoints with
        ``against: prediction``.
    marks
        Cue marks, one row per mark: rater, case, arm (named as above), ``tag``
        (correct / misleading) and ``region`` (the labelled region under the
        mark, ``background``, or empty without a mask), for ``cue_marks``.
    classes
        The protocol's ``data.labels`` in order: an ``mrmc`` endpoint on class
        truth without a ``positive`` option counts every class but the first as
        positive.

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
        label=label,
        prediction=prediction,
        # text items, unanswered items, cases without truth: refused per endpoint
        missing_ok=("value", "truth", "label", "prediction"),
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
    levels = _interval_levels(plan)
    inputs = _Inputs(truth, repeat, metrics, label, prediction, marks, classes)
    estimates: dict[str, _Estimate | str] = {}
    for ep in plan.endpoints:
        try:
            est = _run(ep, data, cols, plan, inputs, seed, levels[ep.id].coverage)
            # one-sided hypotheses: the lower bound alone is the interval
            estimates[ep.id] = replace(est, ci_high=math.inf)
        except DataError as exc:
            estimates[ep.id] = str(exc)
    return CriteriaReport(
        plan_id=plan.id,
        alpha=plan.alpha,
        confidence=plan.confidence,
        multiplicity=plan.multiplicity,
        results=_decide(plan, estimates, levels),
        family=[ep.id for ep in plan.endpoints if _in_family(ep)],
    )


def _in_family(ep: Endpoint) -> bool:
    """Primary endpoints tested by a p-value (arm comparisons, proportions): the hypotheses
    the plan's multiplicity procedure adjusts."""
    return ep.primary and ep.statistic in (*COMPARISON_STATISTICS, *PROPORTION_STATISTICS)


def _interval_levels(plan: AnalysisPlan) -> dict[str, FamilyInterval]:
    """Each endpoint's one-sided interval level, fixed by the plan before any data."""
    m = sum(_in_family(ep) for ep in plan.endpoints)
    family = family_interval(plan.confidence, max(m, 1), plan.multiplicity)
    # Every primary endpoint is in the family (validate refuses the others as primary).
    secondary = FamilyInterval(plan.confidence, "unadjusted: a secondary endpoint")
    return {ep.id: family if _in_family(ep) else secondary for ep in plan.endpoints}


def _population(ep: Endpoint, est: _Estimate | str) -> str:
    """To whom the endpoint's inference generalises."""
    stat = ep.statistic
    if stat in CONDITIONAL_STATISTICS and stat in COMPARISON_STATISTICS:
        return "conditional on the raters read (fixed raters, random cases): sensitivity analysis"
    if stat == "mixed_model":
        vc = est.details.get("variance_components", {}) if isinstance(est, _Estimate) else {}
        text = "new raters and cases (random rater and case effects)"
        if vc:
            missing = [
                f"{who} x arm"
                for who in ("rater", "case")
                if not any(who in str(k) and "arm" in str(k) for k in vc)
            ]
            if missing:
                text += f"; assumes no {' or '.join(missing)} variation"
        return text
    if stat == "cluster_bootstrap":
        return "new raters and cases (two-way cluster bootstrap over raters and cases)"
    if stat == "mrmc":
        return "new readers and cases (Obuchowski-Rockette, random readers and cases)"
    if stat in PROPORTION_STATISTICS:
        return "new raters and cases (two-way rater and case clustered variance)"
    if stat == "spearman":
        return "conditional on the raters read (random cases: case-clustered bootstrap)"
    # agreement statistics, ICC forms with random raters included: the interval leaves out
    # one case at a time and does not cover the sampling of new raters
    return "conditional on the raters read (agreement of these raters, random cases)"


def _subset(
    data: pd.DataFrame, cols: dict[str, str], ep: Endpoint, item: str, *, numeric: bool = True
) -> pd.DataFrame:
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
    if not numeric:  # the statistic reads the answer's text
        return sub
    values = pd.to_numeric(sub[cols["value"]], errors="coerce")
    if values.isna().any():
        bad = sub[cols["value"]][values.isna()].iloc[0]
        raise DataError(f"item {item!r} has a non-numeric value {bad!r}; code answers as numbers")
    return sub.assign(**{cols["value"]: require_numeric(sub, cols["value"], role="value")})


def _first_readings(sub: pd.DataFrame, repeat: str | None) -> pd.DataFrame:
    """``sub`` without repeat readings (they belong to the intra-rater analysis)."""
    if repeat is not None and repeat in sub.columns:
        return sub[~sub[repeat].astype(bool)]
    return sub


def _run(
    ep: Endpoint,
    data: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    inputs: _Inputs,
    seed: int,
    level: float,
) -> _Estimate:
    """Run the endpoint's analysis; ``level`` is the coverage of its one-sided lower bound."""
    opts = dict(ep.options)
    seed = int(opts.pop("seed", seed))
    repeat = inputs.repeat
    if ep.statistic in COMPARISON_STATISTICS and ep.statistic != "mrmc":
        sub = _subset(data, cols, ep, ep.measure)
        sub = _first_readings(sub, repeat)
        from studyhub.stats._compare_endpoint import compare_endpoint

        return compare_endpoint(ep, sub, cols, plan, opts, seed, level)
    if ep.statistic == "mrmc":
        from studyhub.stats._mrmc_endpoint import reader_auc_endpoint

        if inputs.truth is None:
            raise DataError("mrmc endpoints need the case truth: pass truth='column'")
        sub = _subset(data, cols, ep, str(opts.pop("item", "diagnosis")))
        sub = _first_readings(sub, repeat)
        return reader_auc_endpoint(
            ep,
            sub,
            cols,
            plan,
            truth=inputs.truth,
            label=inputs.label,
            classes=inputs.classes,
            opts=opts,
            level=level,
        )
    if ep.statistic == "accuracy":
        from studyhub.stats.accuracy import accuracy_endpoint

        sub = _subset(data, cols, ep, ep.measure, numeric=False)
        sub = _first_readings(sub, repeat)
        return accuracy_endpoint(
            ep,
            sub,
            cols,
            label=inputs.label,
            truth=inputs.truth,
            prediction=inputs.prediction,
            opts=opts,
            level=level,
        )
    if ep.statistic == "cue_marks":
        from studyhub.stats.cue_marks import cue_marks_endpoint

        return cue_marks_endpoint(ep, inputs.marks, cols, opts=opts, level=level)
    if ep.statistic == "spearman":
        from studyhub.stats._spearman_endpoint import spearman_endpoint

        return spearman_endpoint(ep, data, cols, plan, inputs.metrics, opts, seed, level)
    from studyhub.stats._agreement_endpoints import agreement_endpoint, nominal_label

    text = nominal_label(ep, inputs.label, data)
    sub = _subset(data, cols, ep, ep.measure, numeric=text is None)
    return agreement_endpoint(
        ep, sub, {**cols, "value": text or cols["value"]}, plan, repeat, opts, seed
    )


def _decide(
    plan: AnalysisPlan, estimates: dict[str, _Estimate | str], levels: dict[str, FamilyInterval]
) -> list[EndpointResult]:
    family = [ep.id for ep in plan.endpoints if _in_family(ep)]
    p_family = [est.p_value if isinstance(est := estimates[i], _Estimate) else None for i in family]
    adjusted: dict[str, float] = {}
    if family and plan.multiplicity != "fixed_sequence":
        adjusted = dict(
            zip(family, map(float, adjust_family(p_family, plan.multiplicity)), strict=True)
        )
    m = len(family)
    in_family = f"counted in the {plan.multiplicity} family of {m} primary comparisons with p = 1"
    sequence = plan.multiplicity == "fixed_sequence"
    running = 0.0  # fixed sequence: the adjusted p-value is the running maximum
    results: list[EndpointResult] = []
    stopped: str | None = None
    for ep in plan.endpoints:
        est = estimates[ep.id]
        level = levels[ep.id]
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
            "population": _population(ep, est),
        }
        if isinstance(est, str):
            reason = est
            if ep.id in family and m > 1 and plan.multiplicity in ("holm", "bonferroni"):
                reason = f"{est} ({in_family})"
            results.append(EndpointResult(**base, verdict="NOT EVALUABLE", reason=reason))
            if ep.primary and sequence:
                running = 1.0
                stopped = stopped or ep.id
            continue
        p_adj = est.p_value
        testable = p_adj is not None and math.isfinite(p_adj)
        if ep.id in family and not sequence:
            p_adj = adjusted[ep.id] if testable else None
        elif ep.id in family:
            running = max(running, p_adj if testable and p_adj is not None else 1.0)
            p_adj = running if testable else None
        verdict, reason = _verdict(ep, est, p_adj, plan.alpha)
        adjustment = level.adjustment
        if ep.primary and sequence:
            if stopped is not None:
                verdict, reason = "FAIL", f"not reached: the fixed sequence stopped at {stopped!r}"
                adjustment += "; not reached, so no confidence claim"
            elif verdict != "PASS":
                stopped = ep.id
                if ep.id not in family or not testable:
                    running = 1.0  # no p-value of its own to carry on
        results.append(
            EndpointResult(
                **base,
                verdict=verdict,
                reason=reason,
                estimate=est.estimate,
                ci_low=est.ci_low,
                ci_high=est.ci_high,
                p_value=est.p_value,
                p_adjusted=p_adj if ep.statistic not in _THRESHOLD_STATISTICS else None,
                n_raters=est.n_raters,
                n_cases=est.n_cases,
                ci_level=level.coverage,
                ci_sides=1,
                ci_adjustment=adjustment,
                details=est.details,
            )
        )
    return results


#: Statistics judged by their lower limit alone (no p-value is adjusted).
_THRESHOLD_STATISTICS = (*AGREEMENT_STATISTICS, *CORRELATION_STATISTICS)


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
    if h.type == "proportion":
        null = f"proportion <= {h.threshold:g}"
    elif h.type == "non_inferiority":
        null = f"difference <= -{h.margin:g}"
    else:
        null = "difference <= 0"
    verdict: Verdict = "PASS" if ok else "FAIL"
    return (
        verdict,
        f"H0 ({null}) {'rejected' if ok else 'not rejected'}: p = {p:.4g} vs alpha {alpha:g}",
    )
