"""Answering: append-only, atomic, idempotent responses and corrections.

:func:`submit` and :func:`correct` write the response and its audit event in one
transaction; repeating a call with the same idempotency key returns the stored
response instead of adding one; a correction is a new row that supersedes the
old one, with a reason, never an update in place.

Everything that can be checked without the write lock (the account, the
assignment, the answers, an earlier answer) is checked first on a read
snapshot; the write transaction then re-checks only what another writer could
have changed (the study's state, a revocation) and inserts. The database
itself refuses a second original answer to an assignment, a second
correction of one response and a reused key, so two racing submits store one
row: the loser's insert fails and it is answered from the stored row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from studyhub.errors import AccessError, AuthError, InputError
from studyhub.protocol.schema import Protocol
from studyhub.rating._common import (
    Caller,
    caller,
    current_response,
    own_assignment,
    require_role,
)
from studyhub.rating.accounts import AUTH_FAILED, Principal
from studyhub.rating.answers import check_time_on_task, validate_answers, validate_cue_marks
from studyhub.rating.stamps import settle
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Assignment,
    Base,
    Rater,
    ReadingSession,
    Response,
    Study,
    utcnow,
)
from studyhub.store.rows import bind_rows

__all__ = ["SubmitResult", "correct", "submit"]

_MAX_KEY: Final = 200
_MIN_REASON: Final = 5


@dataclass(frozen=True)
class SubmitResult:
    """A stored response: new, or the one a repeated idempotency key already stored."""

    response_id: int
    assignment_id: int
    submitted_at: dt.datetime
    duplicate: bool
    supersedes_id: int | None = None


def _stored_key(principal: Principal, key: Any) -> str:
    """Idempotency keys are scoped to the account: another rater's key never matches."""
    if not isinstance(key, str) or not key.strip() or len(key) > _MAX_KEY:
        raise InputError(
            f"idempotency_key is {key!r}; send a fresh random string (1 to {_MAX_KEY} "
            "characters, e.g. a UUID) per answer, and the same one when retrying it"
        )
    scoped = f"{principal.study_id}\x00{principal.rater_id}\x00{key}"
    return hashlib.sha256(scoped.encode()).hexdigest()


def _replayed(
    candidates: Sequence[Any], stored_key: str, assignment_id: int, answers: dict[str, Any]
) -> SubmitResult | None:
    prior = next((r for r in candidates if r.idempotency_key == stored_key), None)
    if prior is None:
        return None
    if prior.assignment_id != assignment_id or prior.answers != answers:
        raise InputError(
            "this idempotency_key was already used for a different answer; send a fresh key "
            "for each new answer (reuse a key only to retry the very same answer)"
        )
    return SubmitResult(
        prior.id, prior.assignment_id, prior.submitted_at, True, prior.supersedes_id
    )


def _answers_digest(answers: Mapping[str, Any], marks: Sequence[Any]) -> str:
    body = json.dumps({"answers": answers, "cue_marks": marks}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _still_allowed(s: Session, who: Caller) -> None:
    """Inside the write lock: the account is not revoked and the study still rates."""
    row = s.execute(_STILL_ALLOWED, {"rater_id": who.rater_id}).one()
    if row.revoked_at is not None:
        raise AuthError(AUTH_FAILED)
    lifecycle.require(_StudyNow(who.id, row.state), "rate")


@dataclass(frozen=True)
class _StudyNow:
    id: str
    state: str


@dataclass(frozen=True)
class _Checked:
    """A submit checked on a read snapshot, ready to insert."""

    who: Caller
    assignment_id: int
    session_id: int
    stored_key: str
    answers: dict[str, Any]
    marks: list[dict[str, Any]]
    ms: int
    last_of_session: bool


def _assignment_statement() -> Any:
    other = aliased(Assignment)
    others_open = (
        select(func.count(other.id))
        .where(
            other.session_id == Assignment.session_id,
            other.id != Assignment.id,
            ~exists().where(Response.assignment_id == other.id),
        )
        .correlate(Assignment)
        .scalar_subquery()
    )
    return select(
        Assignment.id,
        Assignment.rater_id,
        Assignment.study_id,
        Assignment.session_id,
        Assignment.first_served_at,
        others_open,
    ).where(Assignment.id == bindparam("assignment_id"))


# Built once: submit runs them on every call.
_ASSIGNMENT = _assignment_statement()
_PRIOR = select(
    Response.id,
    Response.assignment_id,
    Response.idempotency_key,
    Response.answers,
    Response.submitted_at,
    Response.supersedes_id,
).where(
    or_(
        Response.idempotency_key == bindparam("key"),
        Response.assignment_id == bindparam("assignment_id"),
    )
)
_STILL_ALLOWED = (
    select(Rater.revoked_at, Study.state)
    .join(Study, Study.id == Rater.study_id)
    .where(Rater.id == bindparam("rater_id"))
)
_INSERT_RESPONSE = insert(Base.metadata.tables["response"]).returning(
    Base.metadata.tables["response"].c.id
)
_FINISH_SESSION = (
    update(ReadingSession)
    .where(ReadingSession.id == bindparam("session_id"), ReadingSession.finished_at.is_(None))
    .values(finished_at=bindparam("now"))
)


def _check_submit(
    store: Store,
    principal: Principal,
    assignment_id: int,
    answers: Mapping[str, Any],
    cue_marks: Sequence[Mapping[str, Any]],
    time_on_task_ms: int,
    idempotency_key: str,
) -> _Checked | SubmitResult:
    with store.session() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="submit answers")
        lifecycle.require(who, "rate")
        stored_key = _stored_key(principal, idempotency_key)
        if isinstance(assignment_id, bool) or not isinstance(assignment_id, int):
            raise InputError(f"assignment id is {assignment_id!r}; pass the served item's id")
        a = s.execute(_ASSIGNMENT, {"assignment_id": assignment_id}).first()
        if a is None or a.rater_id != who.rater_id or a.study_id != who.id:
            raise AccessError(
                f"assignment {assignment_id} is not in the queue of {who.name!r}; answer only "
                "items served to you"
            )
        clean = validate_answers(answers, protocol)
        prior = list(s.execute(_PRIOR, {"key": stored_key, "assignment_id": a.id}))
        replay = _replayed(prior, stored_key, a.id, clean)
        if replay is not None:
            return replay
        marks = validate_cue_marks(cue_marks, protocol)
        ms = check_time_on_task(time_on_task_ms)
        if a.first_served_at is None:
            raise InputError(
                f"assignment {a.id} has not been served yet; answer the items in the order "
                "next_item serves them"
            )
        if prior:
            raise InputError(
                f"assignment {a.id} is already answered; to change the answer, send a "
                "correction with a reason"
            )
        return _Checked(
            who, a.id, a.session_id, stored_key, clean, marks, ms, last_of_session=not a[5]
        )


def submit(
    store: Store,
    principal: Principal,
    assignment_id: int,
    answers: Mapping[str, Any],
    *,
    cue_marks: Sequence[Mapping[str, Any]] = (),
    time_on_task_ms: int,
    idempotency_key: str,
) -> SubmitResult:
    """Store a rater's answer to one served item.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    assignment_id : int
        ``ServedItem.assignment_id``.
    answers : mapping
        Item id -> value; checked against the registered instrument.
    cue_marks : sequence of mapping, optional
        Points ``{"x": 0..1, "y": 0..1, "tag": "correct" | "misleading"}``.
    time_on_task_ms : int
        Milliseconds between showing the item and submitting.
    idempotency_key : str
        A fresh random string per answer; a retry with the same key (a double
        click, a lost reply) returns the stored response and adds nothing.

    Returns
    -------
    SubmitResult
        ``duplicate`` is true when the key had already stored this answer.

    Raises
    ------
    InputError
        For invalid answers, marks or time (the message names the item, the
        value and the fix); an item not yet served; an item already answered
        (use :func:`correct`); a key reused for another answer.
    AccessError
        For an assignment outside the rater's queue, or a monitor or admin.
    AuthError
        When the account was revoked.
    LifecycleError
        When the study is not in ``rating``.
    """
    if isinstance(assignment_id, int):
        # A first serving whose stamp is still waiting for the write lock is
        # written first: submitting writes anyway, and the check needs it.
        settle(store, assignment_id)
    for _attempt in range(2):
        checked = _check_submit(
            store, principal, assignment_id, answers, cue_marks, time_on_task_ms, idempotency_key
        )
        if isinstance(checked, SubmitResult):
            return checked
        try:
            return _insert(store, checked)
        except IntegrityError:
            # Another call stored an answer between the check and the insert (a
            # double click on two connections): check again, which now replays it
            # or says the item is answered.
            continue
    raise InputError(  # pragma: no cover - the second check always sees the stored row
        f"assignment {assignment_id} is being answered by another request; reload and retry"
    )


def _insert(store: Store, c: _Checked) -> SubmitResult:
    now = utcnow()
    with store.write() as s:
        _still_allowed(s, c.who)
        response_id = s.execute(
            _INSERT_RESPONSE,
            {
                "assignment_id": c.assignment_id,
                "rater_id": c.who.rater_id,
                "idempotency_key": c.stored_key,
                "answers": c.answers,
                "cue_marks": {"marks": c.marks},
                "time_on_task_ms": c.ms,
                "supersedes_id": None,
                "reason": None,
                "submitted_at": now,
            },
        ).scalar_one()
        bind_rows(s, "response", [response_id])
        if c.last_of_session:
            s.execute(_FINISH_SESSION, {"session_id": c.session_id, "now": now})
            bind_rows(s, "reading_session", [c.session_id])
        append_event(
            s,
            actor=c.who.pseudonym,
            action="response",
            study_id=c.who.id,
            payload={
                "response_id": response_id,
                "assignment_id": c.assignment_id,
                "rater_id": c.who.rater_id,
                "answers_sha256": _answers_digest(c.answers, c.marks),
                "time_on_task_ms": c.ms,
            },
        )
        return SubmitResult(response_id, c.assignment_id, now, False)


def correct(
    store: Store,
    principal: Principal,
    assignment_id: int,
    answers: Mapping[str, Any],
    *,
    reason: str,
    idempotency_key: str,
    cue_marks: Sequence[Mapping[str, Any]] | None = None,
) -> SubmitResult:
    """Correct an answer: a new response that supersedes the current one, with a reason.

    Nothing is updated or deleted; the original stays, and the chain of
    corrections is kept through ``supersedes_id``. ``cue_marks=None`` keeps the
    marks of the response being corrected.

    Raises
    ------
    InputError
        For a reason under five characters, invalid answers, an assignment with
        no answer yet, or a key reused for another answer.
    AccessError, AuthError, LifecycleError
        As for :func:`submit`.
    """
    # Corrections check and insert inside the write lock: they are rare, and the
    # chain of supersessions must be read where no other writer can extend it.
    return _correct_locked(
        store, principal, assignment_id, answers, reason, idempotency_key, cue_marks
    )


def _correct_locked(
    store: Store,
    principal: Principal,
    assignment_id: int,
    answers: Mapping[str, Any],
    reason: str,
    idempotency_key: str,
    cue_marks: Sequence[Mapping[str, Any]] | None,
) -> SubmitResult:
    with store.write() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="correct answers")
        lifecycle.require(who, "rate")
        stored_key = _stored_key(principal, idempotency_key)
        a = own_assignment(s, who, assignment_id)
        clean = validate_answers(answers, protocol)
        replay = _replayed(
            s.scalars(select(Response).where(Response.idempotency_key == stored_key)).all(),
            stored_key,
            a.id,
            clean,
        )
        if replay is not None:
            return replay
        why = reason.strip() if isinstance(reason, str) else ""
        if len(why) < _MIN_REASON:
            raise InputError(
                f"reason is {reason!r}; say in a few words why the answer changes "
                f"(at least {_MIN_REASON} characters), e.g. 'clicked the wrong value'"
            )
        current = current_response(s, a.id)
        if current is None:
            raise InputError(f"assignment {a.id} has no answer to correct; submit an answer first")
        marks = _kept_marks(current, cue_marks, protocol)
        now = utcnow()
        response = Response(
            assignment_id=a.id,
            rater_id=who.rater_id,
            idempotency_key=stored_key,
            answers=clean,
            cue_marks={"marks": marks},
            time_on_task_ms=None,
            supersedes_id=current.id,
            reason=why,
            submitted_at=now,
        )
        s.add(response)
        s.flush()
        append_event(
            s,
            actor=who.pseudonym,
            action="response_correct",
            study_id=who.id,
            payload={
                "response_id": response.id,
                "supersedes_id": current.id,
                "assignment_id": a.id,
                "rater_id": who.rater_id,
                "answers_sha256": _answers_digest(clean, marks),
                "reason": why,
            },
        )
        return SubmitResult(response.id, a.id, now, False, current.id)


def _kept_marks(
    current: Response, cue_marks: Sequence[Mapping[str, Any]] | None, protocol: Protocol
) -> list[dict[str, Any]]:
    if cue_marks is None:
        return list(current.cue_marks.get("marks", []))
    return validate_cue_marks(cue_marks, protocol)
