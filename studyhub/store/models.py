"""SQLAlchemy 2.0 models of the data model in DESIGN.md.

The schema itself is owned by the Alembic migrations in ``migrations/``; a test
checks that these models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Amendment",
    "AnalysisRun",
    "Arm",
    "Assignment",
    "AuditEvent",
    "AuditHead",
    "AuthAttempt",
    "Base",
    "Case",
    "Consent",
    "ModelVersion",
    "Prediction",
    "Rater",
    "ReadingSession",
    "Response",
    "Stimulus",
    "Study",
    "UTCDateTime",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, UTC, with time zone."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("studyhub stores aware datetimes only; pass a UTC time")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class Study(Base):
    """A registered study: its locked protocol and plan and its lifecycle state."""

    __tablename__ = "study"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    design: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(BigInteger)
    registration_hash: Mapped[str] = mapped_column(String(64))
    protocol_hash: Mapped[str] = mapped_column(String(64))
    plan_hash: Mapped[str] = mapped_column(String(64))
    protocol_text: Mapped[str] = mapped_column(Text)
    plan_text: Mapped[str] = mapped_column(Text)
    protocol_canonical: Mapped[str] = mapped_column(Text)
    plan_canonical: Mapped[str] = mapped_column(Text)
    protocol_path: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    unblinded_at: Mapped[dt.datetime | None]


class Amendment(Base):
    """A recorded change of a registered protocol or plan, with its reason."""

    __tablename__ = "amendment"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    old_hash: Mapped[str] = mapped_column(String(64))
    new_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    protocol_text: Mapped[str] = mapped_column(Text)
    plan_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


class Case(Base):
    """An enrolled (or assessed and excluded) case of a study."""

    __tablename__ = "case"
    __table_args__ = (UniqueConstraint("study_id", "case_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    case_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    image_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(63))
    mask_source: Mapped[str | None] = mapped_column(Text)
    split: Mapped[str | None] = mapped_column(String(63))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=True)
    exclusion_reason: Mapped[str | None] = mapped_column(Text)
    enrollment_order: Mapped[int | None] = mapped_column(Integer)
    enrolled_at: Mapped[dt.datetime]


class ModelVersion(Base):
    """A model as used by a study: entry point, weights hash, calibration."""

    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    entry_point: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    temperature: Mapped[float | None] = mapped_column(Float)
    ece_before: Mapped[float | None] = mapped_column(Float)
    ece_after: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime]


class Prediction(Base):
    """The model's output for one case: raw and calibrated probabilities."""

    __tablename__ = "prediction"
    __table_args__ = (UniqueConstraint("case_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    predicted_label: Mapped[str] = mapped_column(String(63))
    probability_raw: Mapped[float] = mapped_column(Float)
    probability_calibrated: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime]


class Arm(Base):
    """One arm of a study (method or control), as registered."""

    __tablename__ = "arm"
    __table_args__ = (UniqueConstraint("study_id", "arm_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    arm_key: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Stimulus(Base):
    """A case shown under one arm: the rendered image, raw attribution and provenance."""

    __tablename__ = "stimulus"
    __table_args__ = (
        UniqueConstraint("study_id", "code"),
        UniqueConstraint("case_id", "arm_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arm.id"))
    code: Mapped[str] = mapped_column(String(32))
    image_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    original_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    overlay_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: DICOM cases only: the modality values for re-windowing the plain image
    #: (:func:`studyhub.cases.dicom.modality_bytes`); None for every other image.
    original_raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    attribution: Mapped[bytes | None] = mapped_column(LargeBinary)
    attribution_sha256: Mapped[str | None] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    narrative: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


class Rater(Base):
    """A person with access to a study: rater, monitor or admin."""

    __tablename__ = "rater"
    __table_args__ = (
        UniqueConstraint("study_id", "name"),
        UniqueConstraint("study_id", "sso_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(Text)
    token_hint: Mapped[str] = mapped_column(String(16))
    qualifications: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    #: The single sign-on identity (the provider's e-mail claim) mapped to this account.
    sso_identity: Mapped[str | None] = mapped_column(String(320))


class Consent(Base):
    """A rater's agreement to the protocol's consent statement (append-only)."""

    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("rater_id", "statement_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id"))
    statement_sha256: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[dt.datetime]


class ReadingSession(Base):
    """One reading session of a rater; ``not_before`` enforces the washout."""

    __tablename__ = "reading_session"
    __table_args__ = (UniqueConstraint("rater_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id"))
    number: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Assignment(Base):
    """One item in a rater's queue: a stimulus, its position and its kind."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("session_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("reading_session.id"))
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id"))
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    first_served_at: Mapped[dt.datetime | None]


class Response(Base):
    """An answer to an assignment. Append-only: corrections supersede, never update.

    The database itself allows one original answer per assignment (a unique
    index over the rows that supersede nothing) and one correction per response.
    """

    __tablename__ = "response"
    __table_args__ = (
        Index(
            "uq_response_original_answer",
            "assignment_id",
            unique=True,
            sqlite_where=text("supersedes_id IS NULL"),
            postgresql_where=text("supersedes_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    cue_marks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    time_on_task_ms: Mapped[int | None] = mapped_column(Integer)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("response.id"), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[dt.datetime]


class AuditEvent(Base):
    """One link of the hash-chained audit log."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    study_id: Mapped[str | None] = mapped_column(String(63), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(63))
    payload: Mapped[str] = mapped_column(Text)
    #: Canonical JSON of the digests of the rows this event's write created, changed or
    #: deleted (table -> primary key -> digest, or null for a deleted row); see
    #: :mod:`studyhub.store.rows`. Null for events that touched no data row.
    rows: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's head (one row): last sequence number and hash; writers lock it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuthAttempt(Base):
    """One sign-in attempt, for throttling repeated bad tokens."""

    __tablename__ = "auth_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str | None] = mapped_column(String(63), index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime]


class AnalysisRun(Base):
    """One run of the registered analysis plan (the unblinding event)."""

    __tablename__ = "analysis_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"), index=True)
    plan_hash: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    software: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
