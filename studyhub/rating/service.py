"""The rating service every front end calls: next item, submit, correct, resume, progress.

Plain functions over a :class:`~studyhub.store.db.Store` and a signed-in
:class:`~studyhub.rating.accounts.Principal`; no web framework. The rules they
enforce:

- **Blinding.** :class:`ServedItem` carries the opaque stimulus code, the image
  bytes, the cue text the protocol shows, the instrument and the queue position
  — never the arm, method, model, case key, label, file name, provenance, the
  item's kind beyond "training" / the catch prompt, or anyone's answers.
- **Own queue only.** A rater reads and answers only their own assignments;
  monitors and admins see :func:`monitor_summary` and nothing else; a token
  revoked after sign-in is refused on the next call.
- **Washout.** Sessions are served in order; a session whose ``not_before``
  lies in the future is not served. When a rater starts session *n*, session
  *n + 1* is set to open ``reading.washout_days`` later (unless already set).
- **Append-only, atomic, idempotent answers.** :func:`submit` and
  :func:`correct` write the response and its audit event in one transaction;
  repeating a call with the same idempotency key returns the stored response
  instead of adding one; a correction is a new row that supersedes the old one.

Catch items keep what is expected in ``Assignment.expected``:
``{"prompt": "...", "answers": {item_id: value or [values]}}`` (a mapping
without ``"answers"`` is read as the answers themselves).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from studyhub.errors import AccessError, InputError, StudyhubError
from studyhub.protocol.schema import Instrument, Protocol
from studyhub.rating._common import protocol_of, require_role, signed_in
from studyhub.rating._tx import write
from studyhub.rating.accounts import Principal
from studyhub.rating.answers import (
    check_time_on_task,
    validate_answers,
    validate_cue_marks,
)
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Assignment,
    Prediction,
    Rater,
    ReadingSession,
    Response,
    Stimulus,
    Study,
    utcnow,
)

__all__ = [
    "DEFAULT_CATCH_PROMPT",
    "MonitorSummary",
    "Progress",
    "RaterSummary",
    "ResumeState",
    "ServedItem",
    "SubmitResult",
    "correct",
    "monitor_summary",
    "next_item",
    "progress",
    "resume",
    "submit",
]

#: Shown on a catch item whose ``expected`` names no prompt.
DEFAULT_CATCH_PROMPT: Final = "Attention check: please answer this item as instructed."
_MAX_KEY = 200
_MIN_REASON = 5


@dataclass(frozen=True)
class ServedItem:
    """One blinded item, as a front end shows it.

    Attributes
    ----------
    assignment_id : int
        What :func:`submit` answers.
    code : str
        The stimulus's opaque code.
    image_png, original_png, overlay_png : bytes
        The rendered stimulus, the plain image and the overlay alone (the last
        two may be None when not rendered).
    cue_text : str
        The model's decision and verbal confidence as the protocol shows them
        (``""`` when hidden).
    narrative : str or None
        The narrative text, only when ``cues.show_narrative`` is on.
    instrument : Instrument
        The questions to answer.
    diagnosis_labels : tuple of str
        The classes to choose from, only when the instrument has a diagnosis item.
    catch_prompt : str or None
        The instruction of an attention check; None on every other item.
    training : bool
        A practice item (not analysed).
    session : int
        The reading session (1-based).
    position, total : int
        This item's place in the rater's whole queue (1-based) and its length.
    opacity : float
        The protocol's default overlay opacity.
    legend : str
        The colour bar's plain-words legend.
    """

    assignment_id: int
    code: str
    image_png: bytes
    original_png: bytes | None
    overlay_png: bytes | None
    cue_text: str
    narrative: str | None
    instrument: Instrument
    diagnosis_labels: tuple[str, ...]
    catch_prompt: str | None
    training: bool
    session: int
    position: int
    total: int
    opacity: float
    legend: str


@dataclass(frozen=True)
class SubmitResult:
    """A stored response: new, or the one a repeated idempotency key already stored."""

    response_id: int
    assignment_id: int
    submitted_at: dt.datetime
    duplicate: bool
    supersedes_id: int | None = None


@dataclass(frozen=True)
class Progress:
    """How far a rater is.

    Attributes
    ----------
    done, total : int
        Answered assignments and all assignments.
    session : int
        The session of the next item (the last session when all are done; 0
        when the rater has no queue).
    next_session_opens_at : datetime or None
        When the next item's session opens, if that is in the future; else when
        the following session opens, if that is in the future.
    sessions : int
        How many sessions the rater has.
    """

    done: int
    total: int
    session: int
    next_session_opens_at: dt.datetime | None
    sessions: int = 0

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done >= self.total


@dataclass(frozen=True)
class ResumeState:
    """Where a returning rater stands: the item to show (if any), progress, one message."""

    item: ServedItem | None
    progress: Progress
    message: str


@dataclass(frozen=True)
class RaterSummary:
    """A monitor's line per rater: no answers, nothing per arm."""

    name: str
    revoked: bool
    done: int
    total: int
    catch_items: int
    catch_failures: int
    median_time_ms: float | None


@dataclass(frozen=True)
class MonitorSummary:
    """Progress of a study for monitors: completion, catch failures, time per item."""

    study_id: str
    state: str
    raters: tuple[RaterSummary, ...]
    median_time_ms: float | None


# --- queries ---------------------------------------------------------------------


def _answered() -> Any:
    return exists().where(Response.assignment_id == Assignment.id)


def _next_unanswered(s: Session, rater_id: int) -> tuple[Assignment, ReadingSession] | None:
    row = s.execute(
        select(Assignment, ReadingSession)
        .join(ReadingSession, Assignment.session_id == ReadingSession.id)
        .where(Assignment.rater_id == rater_id, ~_answered())
        .order_by(ReadingSession.number, Assignment.position)
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def _counts(s: Session, rater_id: int) -> tuple[int, int]:
    total = s.scalar(select(func.count(Assignment.id)).where(Assignment.rater_id == rater_id))
    done = s.scalar(
        select(func.count(Assignment.id)).where(Assignment.rater_id == rater_id, _answered())
    )
    return int(done or 0), int(total or 0)


def _current_response(s: Session, assignment_id: int) -> Response | None:
    """The response not superseded by any other (the head of the correction chain)."""
    newer = aliased(Response)
    return s.scalar(
        select(Response)
        .where(
            Response.assignment_id == assignment_id,
            ~exists().where(newer.supersedes_id == Response.id),
        )
        .limit(1)
    )


def _own_assignment(s: Session, rater: Rater, assignment_id: Any) -> Assignment:
    """The assignment, if it is in this rater's queue; one message for "not yours" and "none"."""
    if isinstance(assignment_id, bool) or not isinstance(assignment_id, int):
        raise InputError(f"assignment id is {assignment_id!r}; pass the served item's id")
    a = s.get(Assignment, assignment_id)
    if a is None or a.rater_id != rater.id or a.study_id != rater.study_id:
        raise AccessError(
            f"assignment {assignment_id} is not in the queue of {rater.name!r}; answer only "
            "items served to you"
        )
    return a


def _opens_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- serving ---------------------------------------------------------------------


def _cue_text(s: Session, protocol: Protocol, stimulus: Stimulus) -> str:
    cues = protocol.cues
    if not (cues.show_prediction or cues.show_confidence):
        return ""
    pred = s.scalar(
        select(Prediction)
        .where(Prediction.case_id == stimulus.case_id)
        .order_by(Prediction.model_version_id.desc())
        .limit(1)
    )
    if pred is None:
        return ""
    # Imported here: the explain package loads the model stack, which a front end
    # needs only once it shows a cue.
    from studyhub.explain.cues import ConfidenceCue

    cue = ConfidenceCue.from_cues(
        pred.predicted_label,
        pred.probability_calibrated,
        cues,
        label_terms=protocol.data.label_terms,
    )
    return cue.text()


def _catch_prompt(a: Assignment) -> str | None:
    if a.kind != "catch":
        return None
    expected = a.expected or {}
    prompt = expected.get("prompt") if isinstance(expected, Mapping) else None
    return prompt if isinstance(prompt, str) and prompt.strip() else DEFAULT_CATCH_PROMPT


def _serve(
    s: Session,
    protocol: Protocol,
    a: Assignment,
    session: ReadingSession,
    position: int,
    total: int,
) -> ServedItem:
    stim = s.get(Stimulus, a.stimulus_id)
    if stim is None or stim.image_png is None:
        raise StudyhubError(
            f"assignment {a.id} points at stimulus {a.stimulus_id}, which has no rendered image; "
            "the study lead must run studyhub explain"
        )
    has_diagnosis = any(i.type == "diagnosis" for i in protocol.instrument.items)
    return ServedItem(
        assignment_id=a.id,
        code=stim.code,
        image_png=stim.image_png,
        original_png=stim.original_png,
        overlay_png=stim.overlay_png,
        cue_text=_cue_text(s, protocol, stim),
        narrative=stim.narrative if protocol.cues.show_narrative else None,
        instrument=protocol.instrument,
        diagnosis_labels=tuple(protocol.data.labels) if has_diagnosis else (),
        catch_prompt=_catch_prompt(a),
        training=a.kind == "training",
        session=session.number,
        position=position,
        total=total,
        opacity=protocol.rendering.opacity,
        legend=protocol.rendering.colorbar_legend,
    )


def next_item(store: Store, principal: Principal) -> ServedItem | None:
    """The rater's next unanswered item, in session and position order.

    Stamps ``first_served_at`` the first time an item is served. Serving the
    first item of a session marks it started and sets the next session to open
    ``reading.washout_days`` later (unless it already has an opening time).

    Returns
    -------
    ServedItem or None
        None when the queue is done, or when the next session has not opened yet
        (:func:`progress` and :func:`resume` say when it does).

    Raises
    ------
    AuthError
        When the account was revoked.
    AccessError
        For monitors and admins.
    LifecycleError
        When the study is not in ``rating``.
    """
    now = utcnow()
    with store.session() as s:
        rater, study = signed_in(s, principal)
        require_role(rater, "rater", doing="fetch items to rate")
        lifecycle.require(study, "rate")
        found = _next_unanswered(s, rater.id)
        if found is None:
            return None
        a, session = found
        if session.not_before is not None and session.not_before > now:
            return None
        done, total = _counts(s, rater.id)
        protocol = protocol_of(study)
        item = _serve(s, protocol, a, session, done + 1, total)
        stamp = a.first_served_at is None or session.started_at is None
    if stamp:
        _stamp_served(store, principal, study, protocol, a.id, session.id, now)
    return item


def _stamp_served(
    store: Store,
    principal: Principal,
    study: Study,
    protocol: Protocol,
    assignment_id: int,
    session_id: int,
    now: dt.datetime,
) -> None:
    with write(store) as s:
        s.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id, Assignment.first_served_at.is_(None))
            .values(first_served_at=now)
        )
        session = s.get_one(ReadingSession, session_id)
        if session.started_at is not None:
            return
        session.started_at = now
        following = s.scalar(
            select(ReadingSession).where(
                ReadingSession.rater_id == session.rater_id,
                ReadingSession.number == session.number + 1,
            )
        )
        opens = None
        if following is not None and following.not_before is None:
            following.not_before = now + dt.timedelta(days=protocol.reading.washout_days)
            opens = following.not_before.isoformat()
        append_event(
            s,
            actor=principal.name,
            action="session_start",
            study_id=study.id,
            payload={
                "rater_id": principal.rater_id,
                "session": session.number,
                "next_session_opens_at": opens,
            },
        )


# --- answering -------------------------------------------------------------------


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
    candidates: Sequence[Response], stored_key: str, assignment_id: int, answers: dict[str, Any]
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
    with write(store) as s:
        rater, study = signed_in(s, principal)
        require_role(rater, "rater", doing="submit answers")
        lifecycle.require(study, "rate")
        protocol = protocol_of(study)
        stored_key = _stored_key(principal, idempotency_key)
        a = _own_assignment(s, rater, assignment_id)
        clean = validate_answers(answers, protocol)
        prior = list(
            s.scalars(
                select(Response).where(
                    or_(Response.idempotency_key == stored_key, Response.assignment_id == a.id)
                )
            )
        )
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
        now = utcnow()
        response = Response(
            assignment_id=a.id,
            rater_id=rater.id,
            idempotency_key=stored_key,
            answers=clean,
            cue_marks={"marks": marks},
            time_on_task_ms=ms,
            submitted_at=now,
        )
        s.add(response)
        s.flush()
        remaining = s.scalar(
            select(func.count(Assignment.id)).where(
                Assignment.session_id == a.session_id, ~_answered()
            )
        )
        if not remaining:
            session = s.get_one(ReadingSession, a.session_id)
            session.finished_at = now
        append_event(
            s,
            actor=principal.name,
            action="response",
            study_id=study.id,
            payload={
                "response_id": response.id,
                "assignment_id": a.id,
                "rater_id": rater.id,
                "answers_sha256": _answers_digest(clean, marks),
                "time_on_task_ms": ms,
            },
        )
        return SubmitResult(response.id, a.id, now, False)


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
    with write(store) as s:
        rater, study = signed_in(s, principal)
        require_role(rater, "rater", doing="correct answers")
        lifecycle.require(study, "rate")
        protocol = protocol_of(study)
        stored_key = _stored_key(principal, idempotency_key)
        a = _own_assignment(s, rater, assignment_id)
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
        current = _current_response(s, a.id)
        if current is None:
            raise InputError(f"assignment {a.id} has no answer to correct; submit an answer first")
        marks = (
            list(current.cue_marks.get("marks", []))
            if cue_marks is None
            else validate_cue_marks(cue_marks, protocol)
        )
        now = utcnow()
        response = Response(
            assignment_id=a.id,
            rater_id=rater.id,
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
            actor=principal.name,
            action="response_correct",
            study_id=study.id,
            payload={
                "response_id": response.id,
                "supersedes_id": current.id,
                "assignment_id": a.id,
                "rater_id": rater.id,
                "answers_sha256": _answers_digest(clean, marks),
                "reason": why,
            },
        )
        return SubmitResult(response.id, a.id, now, False, current.id)


# --- progress --------------------------------------------------------------------


def _progress(s: Session, rater: Rater, now: dt.datetime) -> Progress:
    done, total = _counts(s, rater.id)
    sessions = list(
        s.scalars(
            select(ReadingSession)
            .where(ReadingSession.rater_id == rater.id)
            .order_by(ReadingSession.number)
        )
    )
    found = _next_unanswered(s, rater.id)
    if found is None:
        number = sessions[-1].number if sessions and total else 0
        return Progress(done, total, number, None, len(sessions))
    _a, current = found
    opens: dt.datetime | None = None
    if current.not_before is not None and current.not_before > now:
        opens = current.not_before
    else:
        following = [x for x in sessions if x.number == current.number + 1]
        if following and following[0].not_before is not None and following[0].not_before > now:
            opens = following[0].not_before
    return Progress(done, total, current.number, opens, len(sessions))


def progress(store: Store, principal: Principal) -> Progress:
    """How many of the rater's items are done, the current session, when the next opens."""
    with store.session() as s:
        rater, _study = signed_in(s, principal)
        require_role(rater, "rater", doing="follow a rating queue")
        return _progress(s, rater, utcnow())


def resume(store: Store, principal: Principal) -> ResumeState:
    """Where a returning rater picks up: the next item, progress and one plain message."""
    item = next_item(store, principal)
    prog = progress(store, principal)
    if item is not None:
        message = (
            f"Item {item.position} of {item.total} (session {item.session} of {prog.sessions})."
        )
    elif prog.total == 0:
        message = "No items are assigned to you yet; the study lead will let you know."
    elif prog.finished:
        message = f"All {prog.total} items are done. Thank you."
    elif prog.next_session_opens_at is not None:
        message = (
            f"Session {prog.session} opens at {_opens_text(prog.next_session_opens_at)} "
            f"(a washout between sessions); {prog.done} of {prog.total} items done."
        )
    else:  # pragma: no cover - next_item returned nothing yet items remain and none waits
        message = f"{prog.done} of {prog.total} items done."
    return ResumeState(item, prog, message)


def _catch_failed(expected: Any, answers: Mapping[str, Any]) -> bool:
    if not isinstance(expected, Mapping):
        return False
    wanted = expected.get("answers", {k: v for k, v in expected.items() if k != "prompt"})
    if not isinstance(wanted, Mapping):
        return False
    for item_id, value in wanted.items():
        accepted = value if isinstance(value, list) else [value]
        accepted = [("yes" if v else "no") if isinstance(v, bool) else v for v in accepted]
        if answers.get(item_id) not in accepted:
            return True
    return False


def monitor_summary(store: Store, principal: Principal) -> MonitorSummary:
    """Completion, catch-item failures and median time per item for each rater.

    For monitors and admins only. Nothing is reported per arm and no answer is
    shown: a catch item counts as failed when the current answer differs from
    ``Assignment.expected``.

    Raises
    ------
    AccessError
        For raters.
    """
    with store.session() as s:
        me, study = signed_in(s, principal)
        require_role(me, "monitor", "admin", doing="see the monitor summary")
        raters = list(
            s.scalars(
                select(Rater)
                .where(Rater.study_id == study.id, Rater.role == "rater")
                .order_by(Rater.name)
            )
        )
        totals: dict[int, int] = {
            rid: n
            for rid, n in s.execute(
                select(Assignment.rater_id, func.count(Assignment.id))
                .where(Assignment.study_id == study.id)
                .group_by(Assignment.rater_id)
            )
        }
        done: dict[int, int] = {
            rid: n
            for rid, n in s.execute(
                select(Assignment.rater_id, func.count(Assignment.id))
                .where(Assignment.study_id == study.id, _answered())
                .group_by(Assignment.rater_id)
            )
        }
        times: dict[int, list[int]] = {}
        for rid, ms in s.execute(
            select(Response.rater_id, Response.time_on_task_ms)
            .join(Assignment, Response.assignment_id == Assignment.id)
            .where(
                Assignment.study_id == study.id,
                Response.supersedes_id.is_(None),
                Response.time_on_task_ms.is_not(None),
            )
        ):
            if ms is not None:
                times.setdefault(rid, []).append(ms)
        newer = aliased(Response)
        catches: dict[int, list[bool]] = {}
        for rid, expected, answers in s.execute(
            select(Assignment.rater_id, Assignment.expected, Response.answers)
            .join(Response, Response.assignment_id == Assignment.id)
            .where(
                Assignment.study_id == study.id,
                Assignment.kind == "catch",
                ~exists().where(newer.supersedes_id == Response.id),
            )
        ):
            catches.setdefault(rid, []).append(_catch_failed(expected, answers))
        rows = tuple(
            RaterSummary(
                name=r.name,
                revoked=r.revoked_at is not None,
                done=int(done.get(r.id, 0)),
                total=int(totals.get(r.id, 0)),
                catch_items=len(catches.get(r.id, [])),
                catch_failures=sum(catches.get(r.id, [])),
                median_time_ms=(float(statistics.median(times[r.id])) if times.get(r.id) else None),
            )
            for r in raters
        )
        every = [ms for values in times.values() for ms in values]
        return MonitorSummary(
            study.id,
            study.state,
            rows,
            float(statistics.median(every)) if every else None,
        )
