"""Registering, amending, inspecting and closing studies."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyhub import __version__
from studyhub.errors import AuditChainError, InputError, LifecycleError
from studyhub.protocol.load import CANONICAL_VERSION, StudyFiles, sha256_text
from studyhub.protocol.schema import Protocol
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Amendment,
    Arm,
    Assignment,
    AuditEvent,
    Case,
    Rater,
    Response,
    Stimulus,
    Study,
    utcnow,
)

__all__ = [
    "Registration",
    "StudyStatus",
    "amend",
    "check_registration",
    "check_unchanged",
    "close",
    "get_study",
    "list_studies",
    "register",
    "registered_protocol_of",
    "status",
]


@dataclass(frozen=True)
class Registration:
    """What ``register`` and ``amend`` report."""

    study_id: str
    registration_hash: str
    registered_at: dt.datetime
    created: bool
    amendment: int | None = None


def get_study(session: Session, study_id: str | None) -> Study:
    """The study named ``study_id``, or the only study when none is named."""
    if study_id is not None:
        study = session.get(Study, study_id)
        if study is None:
            known = list_studies(session)
            raise InputError(
                f"no study {study_id!r} in this database (studies here: "
                f"{', '.join(known) or 'none'}); check --study or --db"
            )
        return study
    ids = list_studies(session)
    if not ids:
        raise InputError(
            "this database holds no study; register one first: studyhub register PROTOCOL"
        )
    if len(ids) > 1:
        raise InputError(
            f"this database holds {len(ids)} studies ({', '.join(ids)}); choose one with --study"
        )
    study = session.get(Study, ids[0])
    if study is None:  # pragma: no cover - deleted between the two reads
        raise InputError(f"study {ids[0]!r} disappeared while reading; retry")
    return study


def check_registration(session: Session, study: Study) -> None:
    """Refuse a study whose stored protocol or plan no longer matches its registration.

    Re-hashes the stored canonical texts, recomputes the registration hash from
    them, and compares it with the hash the audit chain recorded at the last
    ``register`` or ``amend`` of the study. Every command that reads the
    registered protocol or plan to act on it (sample, enroll, explain, assign,
    serve, analyze) calls this first, so a text edited in the database is never
    served or analysed. :func:`studyhub.store.verify.verify_store` checks the rest.

    Raises
    ------
    AuditChainError
        Naming what does not match.
    """
    problems = []
    if sha256_text(study.protocol_canonical) != study.protocol_hash:
        problems.append("the stored protocol text does not hash to the registered protocol hash")
    if sha256_text(study.plan_canonical) != study.plan_hash:
        problems.append("the stored plan text does not hash to the registered plan hash")
    combined = sha256_text(
        f"{CANONICAL_VERSION}\nprotocol {study.protocol_hash}\nplan {study.plan_hash}\n"
    )
    if combined != study.registration_hash:
        problems.append("the protocol and plan hashes do not combine to the registration hash")
    recorded = _recorded_registration(session, study.id)
    if recorded is None:
        problems.append("the audit log holds no register event for it")
    elif recorded != study.registration_hash:
        problems.append(
            f"the audit log registered hash {recorded[:12]}…, the study row says "
            f"{study.registration_hash[:12]}…"
        )
    if problems:
        raise AuditChainError(
            f"study {study.id!r} does not match its registration: {'; '.join(problems)}. The "
            "database was changed outside studyhub; nothing is served or analysed until it is "
            "restored (run studyhub audit verify for every difference, and restore from a backup)"
        )


def registered_protocol_of(session: Session, study: Study) -> Protocol:
    """The registered protocol of ``study``, checked against its registration first.

    Raises
    ------
    AuditChainError
        When the stored texts do not match the registration (:func:`check_registration`).
    LifecycleError
        When this version of studyhub no longer accepts the registered protocol (a
        value registered by an older release is now out of range): the message
        names the problem and says to record a corrected protocol with ``amend``.
    """
    check_registration(session, study)
    try:
        return Protocol.model_validate_json(study.protocol_canonical)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise LifecycleError(
            f"study {study.id!r} was registered with a protocol this version of studyhub no "
            f"longer accepts ({exc.error_count()} problem(s); first: {where}: {first.get('msg')}, "
            f"found {first.get('input')!r}); correct the protocol file and record the change "
            f"with studyhub amend {study.protocol_path} --reason '...'"
        ) from None


def _recorded_registration(session: Session, study_id: str) -> str | None:
    """The registration hash the chain recorded last for ``study_id`` (register or amend)."""
    row = session.execute(
        select(AuditEvent.action, AuditEvent.payload)
        .where(AuditEvent.study_id == study_id, AuditEvent.action.in_(("register", "amend")))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    payload = json.loads(row.payload)
    value = payload.get("registration_hash" if row.action == "register" else "new_hash")
    return value if isinstance(value, str) else None


def list_studies(session: Session) -> list[str]:
    return list(session.scalars(select(Study.id).order_by(Study.id)))


def register(store: Store, files: StudyFiles, *, actor: str) -> Registration:
    """Lock ``files`` as a new study; idempotent for an unchanged protocol and plan.

    Raises
    ------
    LifecycleError
        When a study with the same id is registered with a different hash: the
        change must go through :func:`amend`.
    """
    p = files.protocol
    with store.write() as s:
        existing = s.get(Study, p.id)
        if existing is not None:
            check_registration(s, existing)
            if existing.registration_hash == files.registration_hash:
                return Registration(
                    existing.id, existing.registration_hash, existing.registered_at, created=False
                )
            raise LifecycleError(
                f"study {p.id!r} is already registered with hash {existing.registration_hash}; "
                f"{files.protocol_path} and its plan now hash to {files.registration_hash}. "
                f"Record the change with: studyhub amend {files.protocol_path} --reason '...'"
            )
        now = utcnow()
        study = Study(
            id=p.id,
            title=p.title,
            design=p.design,
            state="registered",
            seed=p.seed,
            registration_hash=files.registration_hash,
            protocol_hash=files.protocol_hash,
            plan_hash=files.plan_hash,
            protocol_text=files.protocol_text,
            plan_text=files.plan_text,
            protocol_canonical=files.protocol_canonical,
            plan_canonical=files.plan_canonical,
            protocol_path=str(files.protocol_path),
            registered_at=now,
            updated_at=now,
        )
        s.add(study)
        s.flush()
        _sync_arms(s, study, files)
        append_event(
            s,
            actor=actor,
            action="register",
            study_id=p.id,
            payload={
                "registration_hash": files.registration_hash,
                "protocol_hash": files.protocol_hash,
                "plan_hash": files.plan_hash,
                "design": p.design,
                "protocol_path": str(files.protocol_path),
                "plan_path": str(files.plan_path),
                "studyhub_version": __version__,
            },
        )
        return Registration(study.id, study.registration_hash, now, created=True)


def amend(store: Store, files: StudyFiles, *, reason: str, actor: str) -> Registration:
    """Record a change of a registered protocol or plan, with its reason.

    Refused after unblinding, for an empty reason, and when nothing changed.
    """
    reason = reason.strip()
    if len(reason) < 10:
        raise InputError(
            f"--reason {reason!r} is too short; say in a sentence why the protocol changes "
            "(at least 10 characters)"
        )
    with store.write() as s:
        study = s.get(Study, files.protocol.id)
        if study is None:
            raise LifecycleError(
                f"study {files.protocol.id!r} is not registered, so there is nothing to amend; "
                f"register it: studyhub register {files.protocol_path}"
            )
        lifecycle.require(study, "amend")
        check_registration(s, study)
        if study.registration_hash == files.registration_hash:
            raise InputError(
                f"{files.protocol_path} and its plan are unchanged (hash "
                f"{files.registration_hash}); edit them before amending"
            )
        number = (
            s.scalar(select(func.max(Amendment.number)).where(Amendment.study_id == study.id)) or 0
        ) + 1
        now = utcnow()
        old = study.registration_hash
        s.add(
            Amendment(
                study_id=study.id,
                number=number,
                old_hash=old,
                new_hash=files.registration_hash,
                reason=reason,
                protocol_text=files.protocol_text,
                plan_text=files.plan_text,
                created_at=now,
            )
        )
        study.title = files.protocol.title
        study.registration_hash = files.registration_hash
        study.protocol_hash = files.protocol_hash
        study.plan_hash = files.plan_hash
        study.protocol_text = files.protocol_text
        study.plan_text = files.plan_text
        study.protocol_canonical = files.protocol_canonical
        study.plan_canonical = files.plan_canonical
        study.updated_at = now
        _sync_arms(s, study, files)
        append_event(
            s,
            actor=actor,
            action="amend",
            study_id=study.id,
            payload={
                "number": number,
                "old_hash": old,
                "new_hash": files.registration_hash,
                "reason": reason,
            },
        )
        return Registration(study.id, files.registration_hash, now, created=False, amendment=number)


def _sync_arms(s: Session, study: Study, files: StudyFiles) -> None:
    """Arms follow the registered protocol; arms with stimuli cannot be removed."""
    current = {a.arm_key: a for a in s.scalars(select(Arm).where(Arm.study_id == study.id))}
    wanted = {a.id: a for a in files.protocol.arms}
    for key, existing in current.items():
        if key not in wanted:
            used = s.scalar(
                select(func.count()).select_from(Stimulus).where(Stimulus.arm_id == existing.id)
            )
            if used:
                raise LifecycleError(
                    f"arm {key!r} already has {used} stimuli and cannot be removed by an "
                    "amendment; "
                    "keep the arm in the protocol"
                )
            s.delete(existing)
    for key, arm in wanted.items():
        row = current.get(key)
        if row is None:
            s.add(
                Arm(
                    study_id=study.id,
                    arm_key=key,
                    kind=arm.kind,
                    method=arm.method,
                    params=arm.params,
                )
            )
        else:
            row.kind, row.method, row.params = arm.kind, arm.method, dict(arm.params)


def check_unchanged(study: Study, files: StudyFiles) -> None:
    """Refuse to go on when the files on disk differ from what was registered."""
    if study.plan_hash != files.plan_hash:
        raise LifecycleError(
            f"the analysis plan {files.plan_path} has changed since registration (registered "
            f"hash {study.plan_hash}, file hash {files.plan_hash}); restore the registered plan "
            "or record the change with studyhub amend before unblinding"
        )
    if study.protocol_hash != files.protocol_hash:
        raise LifecycleError(
            f"the protocol {files.protocol_path} has changed since registration (registered hash "
            f"{study.protocol_hash}, file hash {files.protocol_hash}); restore it or record the "
            "change with studyhub amend"
        )


@dataclass(frozen=True)
class StudyStatus:
    """State and counts of a study; nothing that unblinds."""

    study_id: str
    title: str
    design: str
    state: str
    registration_hash: str
    registered_at: dt.datetime
    amendments: int
    counts: dict[str, int] = field(default_factory=dict)
    #: "OK", or why the stored protocol and plan do not match their registration.
    registration_check: str = "OK"


def status(store: Store, study_id: str | None) -> StudyStatus:
    """Counts of cases, stimuli, raters, assignments and responses; never per arm."""
    with store.session() as s:
        study = get_study(s, study_id)

        def count(model: type, *where: object) -> int:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]

        counts = {
            "cases enrolled": count(Case, Case.study_id == study.id, Case.enrolled.is_(True)),
            "cases excluded": count(Case, Case.study_id == study.id, Case.enrolled.is_(False)),
            "arms": count(Arm, Arm.study_id == study.id),
            "stimuli": count(Stimulus, Stimulus.study_id == study.id),
            "raters": count(
                Rater, Rater.study_id == study.id, Rater.role == "rater", Rater.revoked_at.is_(None)
            ),
            "assignments": count(Assignment, Assignment.study_id == study.id),
            "responses": int(
                s.scalar(
                    select(func.count())
                    .select_from(Response)
                    .join(Assignment, Response.assignment_id == Assignment.id)
                    .where(Assignment.study_id == study.id)
                )
                or 0
            ),
        }
        amendments = count(Amendment, Amendment.study_id == study.id)
        try:
            check_registration(s, study)
            checked = "OK: the stored protocol and plan match the registration in the audit log"
        except AuditChainError as exc:
            checked = f"FAILED: {exc}"
        return StudyStatus(
            study.id,
            study.title,
            study.design,
            study.state,
            study.registration_hash,
            study.registered_at,
            amendments,
            counts,
            checked,
        )


def close(store: Store, study_id: str | None, *, actor: str) -> Study:
    """End rating: no more responses are accepted."""
    with store.write() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "close")
        lifecycle.advance(s, study, "closed", actor=actor)
        return study
