"""Enrolling cases into a registered study: retrospective sampling or prospective enrollment.

Both run the registered protocol (the text locked in the store, not whatever the
file says now), predict every assessed case with the model (raw and calibrated
probabilities), record the model version, write the enrolled cases with their
checksums, and append the sampling report to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from studyhub.cases.dataset import read_cases
from studyhub.cases.eligibility import apply_eligibility
from studyhub.cases.manifest import Progress
from studyhub.cases.pool import calibration_cases, no_case_in, pool_cases, pool_frame
from studyhub.cases.records import CaseRecord, load_image
from studyhub.cases.sampling import diversity_figure, draw_sample, standardized_differences
from studyhub.errors import DataError, LifecycleError, StoreError
from studyhub.models import Calibration, LoadedModel, embed, load_model, logits, probabilities
from studyhub.protocol.schema import Protocol
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Case, ModelVersion, Prediction, Study, utcnow
from studyhub.store.studies import get_study, registered_protocol_of

__all__ = ["EnrollmentResult", "enroll_prospective", "registered_protocol", "sample_retrospective"]


@dataclass(frozen=True)
class EnrollmentResult:
    """What a sampling or enrollment run did."""

    study_id: str
    enrolled: list[str]
    report: dict[str, Any]
    already_done: bool = False


def registered_protocol(study: Study) -> tuple[Protocol, Path]:
    """The protocol as registered, and the folder its relative paths start from.

    Refuses a study whose stored texts no longer match its registration
    (:func:`studyhub.store.studies.registered_protocol_of`).
    """
    session = object_session(study)
    if session is None:  # pragma: no cover - callers pass rows of an open session
        raise StoreError("internal: registered_protocol needs a study row of an open session")
    return registered_protocol_of(session, study), Path(study.protocol_path).parent


@dataclass
class _Scored:
    records: list[CaseRecord]
    z: np.ndarray  # (n, k) logits
    embeddings: np.ndarray | None
    temperature: float = 1.0

    @cached_property
    def raw(self) -> np.ndarray:
        """(n, k) probabilities at T = 1."""
        return probabilities(self.z)

    @cached_property
    def calibrated(self) -> np.ndarray:
        """(n, k) probabilities at the fitted temperature."""
        return probabilities(self.z, self.temperature)

    def subset(self, keep: list[CaseRecord], temperature: float) -> _Scored:
        """The scores of ``keep`` (a subset of the records), at ``temperature``."""
        where = {r.case_key: i for i, r in enumerate(self.records)}
        rows = [where[r.case_key] for r in keep]
        emb = None if self.embeddings is None else self.embeddings[rows]
        return _Scored(list(keep), self.z[rows], emb, temperature)


def _model(protocol: Protocol, base: Path) -> LoadedModel:
    weights = base / protocol.model.weights if protocol.model.weights else None
    return load_model(protocol.model.entry_point, weights)


def _calibrate(
    model: LoadedModel, protocol: Protocol, records: list[CaseRecord], held_out: _Scored
) -> tuple[Calibration | None, dict[str, Any]]:
    """Fit the temperature on the calibration split; report the ECE on ``held_out``."""
    split = protocol.model.calibration_split
    if split is None:
        return None, {"split": None, "note": "calibration switched off by the protocol"}
    fit = calibration_cases(protocol, records)
    if not fit:
        raise DataError(no_case_in(records, "model.calibration_split", split))
    labels = protocol.data.labels
    fit_z = logits(
        model,
        [load_image(r) for r in fit],
        n_classes=len(labels),
        keys=[r.case_key for r in fit],
    )
    cal = Calibration.fit(
        fit_z,
        np.array([labels.index(r.label) for r in fit]),
        held_out.z,
        np.array([labels.index(r.label) for r in held_out.records]),
    )
    return cal, {
        "split": split,
        "temperature": cal.temperature,
        "ece_before": cal.ece_before,
        "ece_after": cal.ece_after,
        "n_fit": cal.n_fit,
        "n_eval": cal.n_eval,
        "evaluated_on": "the pool split (held out from the calibration split)",
    }


def _score(
    model: LoadedModel, protocol: Protocol, records: list[CaseRecord], *, with_embeddings: bool
) -> _Scored:
    """Logits (and embeddings) of ``records``, each image read and checked once."""
    images = [load_image(r) for r in records]
    keys = [r.case_key for r in records]
    z = logits(model, images, n_classes=len(protocol.data.labels), keys=keys)
    return _Scored(records, z, embed(model, images, keys=keys) if with_embeddings else None)


def _frame(scored: _Scored, labels: list[str]) -> pd.DataFrame:
    return pool_frame(scored.records, labels, scored.calibrated)


def _model_version(
    s: Session, study: Study, model: LoadedModel, calib: dict[str, Any]
) -> ModelVersion:
    existing = s.scalars(
        select(ModelVersion).where(
            ModelVersion.study_id == study.id,
            ModelVersion.weights_sha256 == model.weights_sha256,
            ModelVersion.entry_point == model.entry_point,
        )
    ).first()
    if existing is not None:
        return existing
    row = ModelVersion(
        study_id=study.id,
        entry_point=model.entry_point,
        weights_sha256=model.weights_sha256,
        temperature=calib.get("temperature"),
        ece_before=calib.get("ece_before"),
        ece_after=calib.get("ece_after"),
        details={"calibration": calib, "weights_file": str(model.weights_file or "")},
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return row


def _write_cases(
    s: Session,
    study: Study,
    version: ModelVersion,
    scored: _Scored,
    indices: list[int],
    labels: list[str],
    *,
    first_order: int,
) -> list[str]:
    now = utcnow()
    keys: list[str] = []
    for order, i in enumerate(indices, start=first_order):
        r = scored.records[i]
        case = _case_row(study, r, at=now, order=order)
        s.add(case)
        s.flush()
        k = int(scored.calibrated[i].argmax())
        s.add(
            Prediction(
                case_id=case.id,
                model_version_id=version.id,
                predicted_label=labels[k],
                probability_raw=float(scored.raw[i, k]),
                probability_calibrated=float(scored.calibrated[i, k]),
                probabilities={
                    "raw": dict(zip(labels, map(float, scored.raw[i]), strict=True)),
                    "calibrated": dict(zip(labels, map(float, scored.calibrated[i]), strict=True)),
                },
                created_at=now,
            )
        )
        keys.append(r.case_key)
    return keys


def _case_row(
    study: Study,
    r: CaseRecord,
    *,
    at: dt.datetime,
    order: int | None = None,
    reason: str | None = None,
) -> Case:
    """A Case row: enrolled in ``order``, or assessed and excluded for ``reason``."""
    return Case(
        study_id=study.id,
        case_key=r.case_key,
        source=r.source,
        image_sha256=r.image_sha256,
        label=r.label,
        mask_source=r.mask_source,
        split=r.split,
        meta=dict(r.metadata),
        enrolled=reason is None,
        exclusion_reason=reason,
        enrollment_order=order,
        enrolled_at=at,
    )


def _write_excluded(s: Session, study: Study, excluded: list[tuple[CaseRecord, str]]) -> None:
    """Assessed but ineligible cases: kept with their reason, for the flow diagram."""
    now = utcnow()
    for r, reason in excluded:
        s.add(_case_row(study, r, at=now, reason=reason))


def _case_list_hash(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def sample_retrospective(
    store: Store,
    study_id: str | None,
    *,
    data_dir: Path,
    actor: str,
    progress: Progress | None = None,
) -> EnrollmentResult:
    """Draw the protocol's sample from the pool and enroll it (once; reruns are no-ops).

    ``progress`` hears how far reading the data source has come (see
    :func:`~studyhub.cases.dataset.read_cases`).
    """
    with store.session() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "sample")
        protocol, base = registered_protocol(study)
        done = s.scalar(select(func.count()).select_from(Case).where(Case.study_id == study.id))
    if protocol.design != "retrospective":
        raise LifecycleError(
            f"study {study.id!r} is prospective: cases are enrolled consecutively with "
            "studyhub enroll, not sampled from a pool"
        )
    records = read_cases(protocol.data, base, cache_dir=data_dir, progress=progress)
    pool = pool_cases(protocol, records)
    if not pool:
        raise DataError(
            no_case_in(records, "sampling.pool_split", str(protocol.sampling.pool_split))
        )
    model = _model(protocol, base)
    pool_scores = _score(model, protocol, pool, with_embeddings=True)
    cal, calib = _calibrate(model, protocol, records, pool_scores)
    eligible, excluded = apply_eligibility(
        pool, protocol.sampling.eligibility, pool_split=protocol.sampling.pool_split
    )
    labels = protocol.data.labels
    scored = pool_scores.subset(eligible, cal.temperature if cal else 1.0)
    frame = _frame(scored, labels)
    draw = draw_sample(frame, scored.embeddings, protocol.sampling, seed=protocol.seed)
    chosen = [int(i) for i in draw.rows]
    chosen_keys = [scored.records[i].case_key for i in chosen]
    report = _report(protocol, pool, excluded, frame, scored, chosen, draw, calib, model)
    if done:
        with store.session() as s:
            existing = list(
                s.scalars(
                    select(Case.case_key)
                    .where(Case.study_id == study.id, Case.enrolled.is_(True))
                    .order_by(Case.enrollment_order)
                )
            )
        if existing == chosen_keys:
            return EnrollmentResult(study.id, existing, report, already_done=True)
        raise LifecycleError(
            f"study {study.id!r} already has {len(existing)} enrolled cases that differ from what "
            "the registered protocol draws now (the data or the model changed); sampling runs once "
            "— restore the data, or amend the protocol and start a new study"
        )
    with store.write() as s:
        study = get_study(s, study.id)
        lifecycle.require(study, "sample")
        version = _model_version(s, study, model, calib)
        keys = _write_cases(s, study, version, scored, chosen, labels, first_order=1)
        _write_excluded(s, study, excluded)
        lifecycle.advance(s, study, "enrolling", actor=actor)
        append_event(s, actor=actor, action="sample", study_id=study.id, payload=report)
    return EnrollmentResult(study.id, keys, report)


def _report(
    protocol: Protocol,
    pool: list[CaseRecord],
    excluded: list[tuple[CaseRecord, str]],
    frame: pd.DataFrame,
    scored: _Scored,
    chosen: list[int],
    draw: Any,
    calib: dict[str, Any],
    model: LoadedModel,
) -> dict[str, Any]:
    sample = frame.iloc[chosen]
    reasons: dict[str, int] = {}
    for _rec, reason in excluded:
        reasons[reason] = reasons.get(reason, 0) + 1
    strata_pool = draw.strata.value_counts()
    strata_sample = draw.strata.iloc[chosen].value_counts()
    meta_cols = [c for c in frame.columns if c not in ("key", "predicted", "confidence")]
    std = standardized_differences(frame, sample, meta_cols)
    assert_emb = scored.embeddings if scored.embeddings is not None else np.zeros((len(frame), 1))
    diversity = diversity_figure(assert_emb, np.asarray(chosen), seed=protocol.seed)
    keys = [scored.records[i].case_key for i in chosen]
    return json.loads(
        json.dumps(
            {
                "design": protocol.design,
                "seed": protocol.seed,
                "n_cases": protocol.sampling.n_cases,
                "flow": {
                    "assessed": len(pool),
                    "excluded": len(excluded),
                    "excluded_by_reason": reasons,
                    "eligible": len(frame),
                    "enrolled": len(chosen),
                    "eligible_not_sampled": len(frame) - len(chosen),
                },
                "strata": [
                    {
                        "stratum": str(k),
                        "eligible": int(strata_pool.get(k, 0)),
                        "quota": int(draw.quotas.get(k, 0)),
                        "sample": int(strata_sample.get(k, 0)),
                    }
                    for k in sorted(set(strata_pool.index) | set(draw.quotas))
                ],
                "standardized_differences": std.to_dict(orient="records"),
                "diversity": diversity,
                "enrichment": draw.enrichment,
                "notes": draw.notes,
                "calibration": calib,
                "model": {"entry_point": model.entry_point, "weights_sha256": model.weights_sha256},
                "pool_accuracy": float(frame["correct"].mean()),
                "case_list_sha256": _case_list_hash(keys),
            },
            default=float,
        )
    )


def enroll_prospective(
    store: Store,
    study_id: str | None,
    *,
    data_dir: Path,
    actor: str,
    limit: int | None = None,
    progress: Progress | None = None,
) -> EnrollmentResult:
    """Enroll the next consecutive eligible cases, up to the protocol's target count.

    ``progress`` hears how far reading the data source has come.
    """
    with store.session() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "enroll")
        protocol, base = registered_protocol(study)
        enrolled_keys = set(
            s.scalars(
                select(Case.case_key).where(Case.study_id == study.id, Case.enrolled.is_(True))
            )
        )
        seen_keys = set(s.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    if protocol.design != "prospective":
        raise LifecycleError(
            f"study {study.id!r} is retrospective: its cases are drawn once with studyhub sample"
        )
    target = protocol.sampling.n_cases
    room = target - len(enrolled_keys)
    if room <= 0:
        raise LifecycleError(
            f"study {study.id!r} has reached its target of {target} enrolled cases; no more cases "
            "can be enrolled (amend sampling.n_cases before unblinding to enlarge the study)"
        )
    if limit is not None and limit < 1:
        raise DataError(f"--limit is {limit}; give a positive number of cases")
    records = read_cases(protocol.data, base, cache_dir=data_dir, progress=progress)
    if not pool_cases(protocol, records):
        raise DataError(
            no_case_in(records, "sampling.pool_split", str(protocol.sampling.pool_split))
        )
    pool = [r for r in pool_cases(protocol, records) if r.case_key not in seen_keys]
    eligible, excluded = apply_eligibility(
        pool, protocol.sampling.eligibility, pool_split=protocol.sampling.pool_split
    )
    take = eligible[: min(room, limit or room)]
    # consecutive enrollment: ineligible cases met before the last one enrolled are assessed
    last_row = take[-1].row if take else None
    assessed_excluded = [(r, why) for r, why in excluded if last_row is None or r.row < last_row]
    if not take:
        raise DataError(
            f"no eligible case left to enroll ({len(excluded)} assessed cases were excluded); "
            "add cases to the data source"
        )
    model = _model(protocol, base)
    pool_scores = _score(model, protocol, pool_cases(protocol, records), with_embeddings=False)
    cal, calib = _calibrate(model, protocol, records, pool_scores)
    scored = pool_scores.subset(take, cal.temperature if cal else 1.0)
    labels = protocol.data.labels
    with store.write() as s:
        study = get_study(s, study.id)
        lifecycle.require(study, "enroll")
        version = _model_version(s, study, model, calib)
        keys = _write_cases(
            s,
            study,
            version,
            scored,
            list(range(len(take))),
            labels,
            first_order=len(enrolled_keys) + 1,
        )
        _write_excluded(s, study, assessed_excluded)
        lifecycle.advance(s, study, "enrolling", actor=actor)
        report = {
            "design": "prospective",
            "assessed": len(take) + len(assessed_excluded),
            "excluded": len(assessed_excluded),
            "enrolled_now": len(keys),
            "enrolled_total": len(enrolled_keys) + len(keys),
            "target": target,
            "first_key": keys[0],
            "last_key": keys[-1],
        }
        append_event(s, actor=actor, action="enroll", study_id=study.id, payload=report)
    return EnrollmentResult(study.id, keys, report)
