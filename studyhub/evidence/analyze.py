"""The analysis run: the registered plan applied to a closed study, once unblinded.

:func:`analyze_study` refuses unless the study is closed (or already analysed)
and its stored protocol and plan re-hash to their registration; it reads the
tidy data, applies the plan's data rules (every deviation listed), evaluates
every endpoint with :func:`studyhub.stats.criteria.evaluate_criteria` (the
bootstrap seed is the protocol's), and then, in one transaction, records the
unblinding (the first time: actor, time, reason, as a state change to
``analyzed``) and the :class:`~studyhub.store.models.AnalysisRun` with its
results. Nothing is written when any step fails. Re-running gives the same
``results`` (the run's own time and actor are kept beside them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub import __version__
from studyhub.errors import DataError, InputError
from studyhub.evidence.deviations import apply_rules
from studyhub.evidence.export import TidyData, data_digest, tidy_data
from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.schema import Protocol
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import AnalysisRun, AuditEvent, Case, ModelVersion, Stimulus, Study
from studyhub.store.studies import get_study, registered_protocol_of

if TYPE_CHECKING:
    from studyhub.stats.criteria import CriteriaReport

__all__ = [
    "AnalysisOutcome",
    "analysis_inputs",
    "analyze_study",
    "canonical_results",
    "compute_results",
    "criteria_dict",
    "json_safe",
    "load_masks",
    "marked_case_keys",
    "registered_plan_of",
    "results_from_session",
    "software_versions",
    "unblinding_of",
]

#: Libraries whose versions an analysis run records.
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "pingouin",
    "krippendorff",
    "SQLAlchemy",
    "torch",
    "captum",
    "matplotlib",
)


@dataclass(frozen=True)
class AnalysisOutcome:
    """What one ``analyze`` did: the run's id, its results and whether it unblinded."""

    study_id: str
    run_id: int
    results: dict[str, Any]
    unblinded_now: bool


def json_safe(obj: Any) -> Any:
    """``obj`` as plain JSON values: non-finite floats become None, arrays lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return json_safe(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return json_safe(obj.to_dict())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dt.datetime):
        return obj.astimezone(dt.UTC).isoformat()
    if obj is None or isinstance(obj, str | int):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def criteria_dict(report: CriteriaReport) -> dict[str, Any]:
    """The JSON form of a criteria report (``results["criteria"]`` of an analysis run)."""
    return {
        "plan_id": report.plan_id,
        "alpha": report.alpha,
        "confidence": report.confidence,
        "multiplicity": report.multiplicity,
        "family": report.family,
        "success": report.success,
        "success_rule": report.success_rule,
        "results": [json_safe(r) for r in report.results],
    }


def canonical_results(results: dict[str, Any]) -> str:
    """The canonical JSON text of ``results`` (sorted keys): what its hash covers."""
    return json.dumps(json_safe(results), sort_keys=True, separators=(",", ":"), allow_nan=False)


def software_versions() -> dict[str, str]:
    """studyhub, Python, platform and the analysis libraries' versions."""
    out = {
        "studyhub": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def registered_plan_of(study: Study) -> AnalysisPlan:
    """The registered plan, from the stored canonical text (checked by the caller first)."""
    return AnalysisPlan.model_validate_json(study.plan_canonical)


def analysis_inputs(tidy: TidyData, protocol: Protocol, plan: AnalysisPlan) -> dict[str, Any]:
    """The data frames :func:`compute_results` needs, from the tidy data (after unblinding)."""
    ruled = apply_rules(tidy, protocol, plan)
    frame = ruled.answers.rename(columns={"item": "measure"})
    if tidy.cases is not None:
        frame = frame.merge(
            tidy.cases[["case", "truth", "predicted"]], on="case", how="left", validate="m:1"
        )
    return {"frame": frame, "ruled": ruled}


def compute_results(
    tidy: TidyData,
    protocol: Protocol,
    plan: AnalysisPlan,
    *,
    metrics: pd.DataFrame | None,
    flow: dict[str, Any],
) -> dict[str, Any]:
    """Everything an analysis run reports, computed from the tidy data alone.

    ``verify`` calls this on the packaged data, so it must depend on nothing but
    its arguments.
    """
    from studyhub.stats.criteria import evaluate_criteria
    from studyhub.stats.free_text import free_text_summary

    inputs = analysis_inputs(tidy, protocol, plan)
    frame, ruled = inputs["frame"], inputs["ruled"]
    marks = tidy.marks[
        (tidy.marks["kind"] == "read") & ~tidy.marks["rater"].isin(ruled.excluded_raters)
    ]
    report = evaluate_criteria(
        frame,
        plan=plan,
        truth="truth",
        repeat="repeat",
        metrics=metrics,
        seed=protocol.seed,
        label="label",
        prediction="predicted",
        marks=marks,
        classes=list(protocol.data.labels),
    )
    criteria = criteria_dict(report)
    answers = tidy.answers
    free_text = free_text_summary(answers[answers["kind"] == "read"])
    analysed = frame[frame["kind"] == "read"]
    flow = json_safe(flow)
    flow.setdefault("cases", {})["rated"] = int(
        answers.loc[answers["kind"] == "read", "case"].nunique()
    )
    flow["cases"]["analysed"] = int(analysed["case"].nunique())
    flow.setdefault("raters", {})["started"] = int(answers["rater"].nunique())
    flow["raters"]["excluded"] = len(ruled.excluded_raters)
    flow["raters"]["analysed"] = int(analysed["rater"].nunique())
    return {
        "seed": protocol.seed,
        "data_digest": data_digest(tidy),
        "criteria": criteria,
        "deviations": [d.as_dict() for d in ruled.deviations],
        "excluded_raters": ruled.excluded_raters,
        "flow": flow,
        "free_text": free_text,
        "n_answers_analysed": len(frame),
    }


def _flow(s: Session, study: Study, tidy: TidyData) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    events = s.execute(
        select(AuditEvent.action, AuditEvent.payload)
        .where(AuditEvent.study_id == study.id, AuditEvent.action.in_(("sample", "enroll")))
        .order_by(AuditEvent.seq)
    ).all()
    for action, payload in events:
        f = json.loads(payload).get("flow", {})
        if action == "sample":
            cases = {"pool": f.get("assessed"), "eligible": f.get("eligible")}
        else:
            cases["pool"] = (cases.get("pool") or 0) + int(f.get("assessed", 0) or 0)
            cases["eligible"] = (cases.get("eligible") or 0) + int(f.get("eligible", 0) or 0)
    cases["sampled"] = len(
        s.scalars(select(Case.id).where(Case.study_id == study.id, Case.enrolled.is_(True))).all()
    )
    from studyhub.store.models import Rater

    invited = s.scalars(
        select(Rater.id).where(Rater.study_id == study.id, Rater.role == "rater")
    ).all()
    missing = tidy.missing
    incomplete = set(missing["rater"]) if not missing.empty else set()
    started = set(tidy.answers["rater"])
    return {
        "cases": cases,
        "raters": {"invited": len(invited), "completed": len(started - incomplete)},
    }


def stimulus_metrics(s: Session, study_id: str) -> pd.DataFrame:
    """One row per stimulus: case, arm and every stored quantitative metric."""
    from studyhub.evidence.export import case_pseudonym
    from studyhub.store.models import Arm

    rows = []
    for case_id, arm, metrics in s.execute(
        select(Stimulus.case_id, Arm.arm_key, Stimulus.metrics)
        .join(Arm, Arm.id == Stimulus.arm_id)
        .where(Stimulus.study_id == study_id)
        .order_by(Stimulus.id)
    ):
        values = {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)}
        rows.append({"case": case_pseudonym(case_id), "arm": arm, **values})
    return pd.DataFrame(rows)


def require_stored_metrics(s: Session, study_id: str, plan: AnalysisPlan) -> None:
    """Refuse the analysis while a stimulus with a map lacks a metric an endpoint reads.

    The metrics are computed by ``studyhub explain --metrics``, a step of its own
    after ``explain``; an endpoint with statistic spearman or measure metric:NAME
    needs NAME stored on every stimulus that has a map.
    """
    from studyhub.protocol.metric_settings import METRIC_SETTING

    needed = sorted(
        {
            ep.measure.removeprefix("metric:")
            for ep in plan.endpoints
            if ep.statistic == "spearman" or ep.measure.startswith("metric:")
        }
    )
    if not needed:
        return
    stored = [
        metrics or {}
        for (metrics,) in s.execute(
            select(Stimulus.metrics).where(
                Stimulus.study_id == study_id, Stimulus.attribution.is_not(None)
            )
        )
    ]
    for name in needed:
        lacking = sum(name not in metrics for metrics in stored)
        if lacking:
            setting = METRIC_SETTING.get(name)
            switch = f" with metrics.{setting} switched on in the protocol" if setting else ""
            raise DataError(
                f"the plan analyses metric {name!r}, but {lacking} of {len(stored)} stimuli "
                f"have no stored {name}; compute it first with studyhub explain --metrics"
                f"{switch}, then run studyhub analyze again"
            )


def load_masks(
    protocol: Protocol, study: Study, data_dir: Path | None, case_keys: dict[str, int]
) -> dict[int, np.ndarray] | None:
    """Case id -> region mask of the cases with cue marks (None without the data)."""
    if data_dir is None or not protocol.data.mask_labels or not case_keys:
        return None
    from studyhub.cases.dataset import read_cases
    from studyhub.cases.records import load_mask

    base = Path(study.protocol_path).parent
    out: dict[int, np.ndarray] = {}
    for record in read_cases(protocol.data, base, cache_dir=data_dir):
        if record.case_key in case_keys:
            mask = load_mask(record)
            if mask is not None:
                out[case_keys[record.case_key]] = mask
    return out


def results_from_session(
    s: Session,
    study: Study,
    protocol: Protocol,
    plan: AnalysisPlan,
    masks: dict[int, np.ndarray] | None,
) -> tuple[dict[str, Any], TidyData]:
    """Every result of an analysis run but the unblinding, from the rows of one session.

    ``analyze`` runs it on the store; ``verify`` on the rows of an evidence package
    loaded into a scratch database, so the two compute the same thing the same way.
    """
    tidy = tidy_data(s, study, protocol, unblinded=True, masks=masks)
    metrics = stimulus_metrics(s, study.id)
    flow = _flow(s, study, tidy)
    results = compute_results(tidy, protocol, plan, metrics=metrics, flow=flow)
    versions = s.scalars(
        select(ModelVersion).where(ModelVersion.study_id == study.id).order_by(ModelVersion.id)
    ).all()
    results["calibration"] = [
        {"ece_before": v.ece_before, "ece_after": v.ece_after, "temperature": v.temperature}
        for v in versions
    ]
    results["study"] = {
        "id": study.id,
        "title": study.title,
        "design": study.design,
        "registration_hash": study.registration_hash,
        "protocol_hash": study.protocol_hash,
        "plan_hash": study.plan_hash,
        "registered_at": study.registered_at,
    }
    results["plan_hash"] = study.plan_hash
    return results, tidy


def analyze_study(
    store: Store,
    study_id: str | None,
    *,
    actor: str,
    reason: str,
    data_dir: Path | None = None,
) -> AnalysisOutcome:
    """Unblind (the first time) and run the registered plan on a closed study.

    Raises
    ------
    InputError
        For an empty reason.
    LifecycleError
        When the study is not closed (or analysed).
    AuditChainError
        When the stored protocol or plan no longer re-hashes to its registration.
    DataError
        When the data cannot be analysed as the plan says.
    """
    if not reason.strip():
        raise InputError(
            "analyze unblinds the study and needs a reason for the audit log; give --reason "
            "'...' (e.g. 'primary analysis per the registered plan')"
        )
    started = dt.datetime.now(dt.UTC)
    with store.snapshot() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "analyze")
        protocol = registered_protocol_of(s, study)
        plan = registered_plan_of(study)
        require_stored_metrics(s, study.id, plan)
        masks = load_masks(protocol, study, data_dir, marked_case_keys(s, study.id))
        results, _ = results_from_session(s, study, protocol, plan, masks)
        head = (study.id, study.state, study.registration_hash)
    with store.write() as s:
        study = get_study(s, head[0])
        if (study.state, study.registration_hash) != head[1:]:
            raise InputError(
                f"study {study.id!r} changed while it was analysed; run studyhub analyze again"
            )
        first = study.state == "closed"
        if first:
            lifecycle.advance(s, study, "analyzed", actor=actor, payload={"unblinding": reason})
        who = (
            {"by": actor, "at": study.unblinded_at, "reason": reason}
            if first
            else unblinding_of(s, study)
        )
        results["unblinded_at"] = who["at"]
        results["unblinded_by"] = who["by"]
        results["unblinding_reason"] = who["reason"]
        results = json_safe(results)
        run = AnalysisRun(
            study_id=study.id,
            plan_hash=study.plan_hash,
            started_at=started,
            finished_at=dt.datetime.now(dt.UTC),
            results=results,
            software=software_versions(),
        )
        s.add(run)
        s.flush()
        append_event(
            s,
            actor=actor,
            action="analysis_run",
            study_id=study.id,
            payload={
                "run_id": run.id,
                "reason": reason,
                "plan_hash": study.plan_hash,
                "data_digest": results["data_digest"],
                "results_sha256": hashlib.sha256(canonical_results(results).encode()).hexdigest(),
                "success": results["criteria"]["success"],
            },
        )
        return AnalysisOutcome(study.id, run.id, results, first)


def unblinding_of(s: Session, study: Study) -> dict[str, Any]:
    """Who unblinded the study, when and why: the state change to ``analyzed``."""
    for actor, payload in s.execute(
        select(AuditEvent.actor, AuditEvent.payload)
        .where(AuditEvent.study_id == study.id, AuditEvent.action == "state_change")
        .order_by(AuditEvent.seq)
    ):
        body = json.loads(payload)
        if body.get("to") == "analyzed":
            return {"by": actor, "at": study.unblinded_at, "reason": body.get("unblinding", "")}
    return {"by": None, "at": study.unblinded_at, "reason": ""}


def marked_case_keys(s: Session, study_id: str) -> dict[str, int]:
    from studyhub.store.models import Assignment, Response

    rows = s.execute(
        select(Case.case_key, Case.id, Response.cue_marks)
        .join(Assignment, Assignment.id == Response.assignment_id)
        .join(Stimulus, Stimulus.id == Assignment.stimulus_id)
        .join(Case, Case.id == Stimulus.case_id)
        .where(Assignment.study_id == study_id)
    ).all()
    return {key: case_id for key, case_id, marks in rows if (marks or {}).get("marks")}
