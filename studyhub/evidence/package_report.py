"""The report of an analysed study, assembled from the store for its evidence package."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.evidence.export import TidyData, case_pseudonym
from studyhub.evidence.report_input import (
    AmendmentRecord,
    CalibrationData,
    ReportInput,
    StudyInfo,
)
from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.schema import Protocol
from studyhub.store.models import Amendment, Arm, AuditEvent, ModelVersion, Stimulus, Study

__all__ = ["report_input"]


def report_input(
    s: Session,
    study: Study,
    protocol: Protocol,
    plan: AnalysisPlan,
    results: dict[str, Any],
    tidy: TidyData,
    environment: dict[str, Any],
) -> ReportInput:
    """Everything the report shows, read from the store after unblinding."""
    import json

    amendments = [
        AmendmentRecord(a.number, a.reason, a.old_hash, a.new_hash, a.created_at.isoformat())
        for a in s.scalars(
            select(Amendment).where(Amendment.study_id == study.id).order_by(Amendment.number)
        )
    ]
    sample = s.scalars(
        select(AuditEvent.payload)
        .where(AuditEvent.study_id == study.id, AuditEvent.action.in_(("sample", "enroll")))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    version = s.scalars(
        select(ModelVersion).where(ModelVersion.study_id == study.id).order_by(ModelVersion.id)
    ).first()
    calibration = None
    if tidy.cases is not None and tidy.cases["probability"].notna().any():
        calibration = CalibrationData.from_cases(
            tidy.cases.dropna(subset=["probability", "correct"]).assign(
                correct=lambda f: f["correct"].astype(bool)
            ),
            ece_before=version.ece_before if version is not None else None,
            ece_after=version.ece_after if version is not None else None,
        )
    return ReportInput(
        study=StudyInfo(
            id=study.id,
            title=study.title,
            design=study.design,
            registration_hash=study.registration_hash,
            plan_hash=study.plan_hash,
            registered_at=study.registered_at.isoformat(),
            protocol_id=protocol.id,
            plan_id=plan.id,
            protocol_hash=study.protocol_hash,
        ),
        results=results,
        answers=tidy.answers,
        cases=tidy.cases,
        marks=tidy.marks,
        amendments=amendments,
        sampling_report=json.loads(sample) if sample is not None else None,
        calibration=calibration,
        metric_correlation=_metric_correlation(s, study, protocol, tidy),
        montage=_montage(s, study),
        environment=environment,
    )


def _metric_correlation(
    s: Session, study: Study, protocol: Protocol, tidy: TidyData
) -> pd.DataFrame | None:
    """Per stimulus: each stored metric against the mean rating of the first likert item."""
    likert = next((i.id for i in protocol.instrument.items if i.type == "likert"), None)
    if likert is None:
        return None
    reads = tidy.answers[(tidy.answers["item"] == likert) & (tidy.answers["kind"] == "read")]
    means = reads.groupby("stimulus")["value"].mean()
    rows = []
    for code, arm, metrics in s.execute(
        select(Stimulus.code, Arm.arm_key, Stimulus.metrics)
        .join(Arm, Arm.id == Stimulus.arm_id)
        .where(Stimulus.study_id == study.id)
        .order_by(Stimulus.id)
    ):
        if code not in means.index:
            continue
        for name, value in (metrics or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                rows.append(
                    {
                        "arm": arm,
                        "metric": name,
                        "metric_value": float(value),
                        "mean_rating": float(means[code]),
                    }
                )
    return pd.DataFrame(rows) if rows else None


def _montage(s: Session, study: Study) -> list[tuple[str, bytes]]:
    """The stimuli of the first enrolled case, one per arm (the report's examples)."""
    first = s.scalars(
        select(Stimulus.case_id).where(Stimulus.study_id == study.id).order_by(Stimulus.case_id)
    ).first()
    if first is None:
        return []
    return [
        (f"{arm} ({case_pseudonym(first)})", png)
        for arm, png in s.execute(
            select(Arm.arm_key, Stimulus.image_png)
            .join(Arm, Arm.id == Stimulus.arm_id)
            .where(Stimulus.study_id == study.id, Stimulus.case_id == first)
            .order_by(Arm.id)
        )
        if png is not None
    ]
