"""Serving blinded items: the rater's next item, in session and position order.

:class:`ServedItem` carries the opaque stimulus code, the image bytes, the cue
text the protocol shows, the instrument and the queue position — never the
arm, method, model, case key, label, file name, provenance, the item's kind
beyond "training" / the catch prompt, or anyone's answers.

Sessions are served in order; a session whose ``not_before`` lies in the
future is not served (the washout). The first time an item is served its
``first_served_at`` is stamped and an ``item_served`` audit event written;
serving the first item of a session also marks the session started and sets
the next session to open ``reading.washout_days`` later (unless already set).
Serving never waits long for the write lock: when another connection holds
it, the item is served and the stamp written as soon as the lock frees, with
the time of serving (:mod:`studyhub.rating.stamps`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from studyhub.errors import AccessError, StudyhubError
from studyhub.protocol.schema import Instrument, Protocol
from studyhub.rating._common import answered, caller, require_role
from studyhub.rating.accounts import Principal
from studyhub.rating.images import images_of
from studyhub.rating.stamps import Stamp, stamp_first_serving
from studyhub.rating.windowing import window_presets_of
from studyhub.store import lifecycle
from studyhub.store.db import Store
from studyhub.store.models import Assignment, Prediction, ReadingSession, Stimulus, utcnow

__all__ = ["DEFAULT_CATCH_PROMPT", "ServedItem", "next_item"]

#: Shown on a catch item whose ``expected`` names no prompt.
DEFAULT_CATCH_PROMPT: Final = "Attention check: please answer this item as instructed."
#: Refusal for a rater who has not agreed to the consent statement.
NO_CONSENT: Final = (
    "consent first: {name!r} has not agreed to this study's consent statement; "
    "read it and agree (give_consent, or the app's start page) before items are served"
)


@dataclass(frozen=True)
class ServedItem:
    """One blinded item, as a front end shows it.

    Attributes
    ----------
    assignment_id : int
        What :func:`~studyhub.rating.respond.submit` answers.
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
    window_presets : tuple of str
        Names of the protocol's display windows the plain image can be shown
        with (:func:`~studyhub.rating.windowing.windowed_original`); empty
        unless the stimulus is a DICOM image and the protocol has presets.
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
    window_presets: tuple[str, ...]


@dataclass(frozen=True)
class _Next:
    """The next unanswered assignment, its session, and the rater's queue counts."""

    assignment_id: int
    stimulus_id: int
    kind: str
    expected: Any
    first_served_at: dt.datetime | None
    session_id: int
    session: int
    not_before: dt.datetime | None
    started_at: dt.datetime | None
    done: int
    total: int


def _next_statement() -> Any:
    rater = bindparam("rater_id", type_=Integer)
    total_q = select(func.count(Assignment.id)).where(Assignment.rater_id == rater)
    done_q = select(func.count(Assignment.id)).where(Assignment.rater_id == rater, answered())
    return (
        select(
            Assignment.id,
            Assignment.stimulus_id,
            Assignment.kind,
            Assignment.expected,
            Assignment.first_served_at,
            ReadingSession.id,
            ReadingSession.number,
            ReadingSession.not_before,
            ReadingSession.started_at,
            done_q.scalar_subquery(),
            total_q.scalar_subquery(),
        )
        .join(ReadingSession, Assignment.session_id == ReadingSession.id)
        .where(Assignment.rater_id == rater, ~answered())
        .order_by(ReadingSession.number, Assignment.position)
        .limit(1)
    )


def _stimulus_statement() -> Any:
    newest = aliased(Prediction)
    latest = (
        select(func.max(newest.model_version_id))
        .where(newest.case_id == Stimulus.case_id)
        .correlate(Stimulus)
        .scalar_subquery()
    )
    return (
        select(
            Stimulus.code,
            Stimulus.narrative,
            Prediction.predicted_label,
            Prediction.probability_calibrated,
            # Whether DICOM values are stored, without reading them (this is the hot path).
            Stimulus.original_raw.is_not(None).label("has_raw"),
        )
        .outerjoin(
            Prediction,
            (Prediction.case_id == Stimulus.case_id) & (Prediction.model_version_id == latest),
        )
        .where(Stimulus.id == bindparam("stimulus_id"))
    )


# Built once: next_item runs them on every call.
_NEXT = _next_statement()
_STIMULUS = _stimulus_statement()


def next_unanswered(s: Session, rater_id: int) -> _Next | None:
    """The rater's next unanswered assignment with its session and counts, in one query."""
    row = s.execute(_NEXT, {"rater_id": rater_id}).first()
    if row is None:
        return None
    return _Next(
        assignment_id=row[0],
        stimulus_id=row[1],
        kind=row[2],
        expected=row[3],
        first_served_at=row[4],
        session_id=row[5],
        session=row[6],
        not_before=row[7],
        started_at=row[8],
        done=int(row[9] or 0),
        total=int(row[10] or 0),
    )


def _cue_text(protocol: Protocol, label: str | None, probability: float | None) -> str:
    cues = protocol.cues
    if not (cues.show_prediction or cues.show_confidence) or label is None or probability is None:
        return ""
    # Imported here: the explain package loads the model stack, which a front end
    # needs only once it shows a cue.
    from studyhub.explain.cues import ConfidenceCue

    cue = ConfidenceCue.from_cues(label, probability, cues, label_terms=protocol.data.label_terms)
    return cue.text()


def _catch_prompt(kind: str, expected: Any) -> str | None:
    if kind != "catch":
        return None
    prompt = expected.get("prompt") if isinstance(expected, Mapping) else None
    return prompt if isinstance(prompt, str) and prompt.strip() else DEFAULT_CATCH_PROMPT


def _serve(store: Store, s: Session, protocol: Protocol, nxt: _Next) -> ServedItem:
    row = s.execute(_STIMULUS, {"stimulus_id": nxt.stimulus_id}).first()
    images = None if row is None else images_of(store, s, nxt.stimulus_id, row.code)
    if row is None or images is None or images.image_png is None:
        raise StudyhubError(
            f"assignment {nxt.assignment_id} points at stimulus {nxt.stimulus_id}, which has no "
            "rendered image; the study lead must run studyhub explain"
        )
    has_diagnosis = any(i.type == "diagnosis" for i in protocol.instrument.items)
    return ServedItem(
        assignment_id=nxt.assignment_id,
        code=row.code,
        image_png=images.image_png,
        original_png=images.original_png,
        overlay_png=images.overlay_png,
        cue_text=_cue_text(protocol, row.predicted_label, row.probability_calibrated),
        narrative=row.narrative if protocol.cues.show_narrative else None,
        instrument=protocol.instrument,
        diagnosis_labels=tuple(protocol.data.labels) if has_diagnosis else (),
        catch_prompt=_catch_prompt(nxt.kind, nxt.expected),
        training=nxt.kind == "training",
        session=nxt.session,
        position=nxt.done + 1,
        total=nxt.total,
        opacity=protocol.rendering.opacity,
        legend=protocol.rendering.colorbar_legend,
        window_presets=window_presets_of(protocol, has_raw=bool(row.has_raw)),
    )


def next_item(store: Store, principal: Principal) -> ServedItem | None:
    """The rater's next unanswered item, in session and position order.

    Stamps ``first_served_at`` (with an ``item_served`` audit event) the first
    time an item is served. Serving the first item of a session marks it
    started and sets the next session to open ``reading.washout_days`` later
    (unless it already has an opening time). That write waits for the write
    lock at most :data:`~studyhub.rating.stamps.STAMP_WAIT` seconds; past
    that the item is returned and the stamp, with this call's time, is
    written as soon as the lock frees (:mod:`studyhub.rating.stamps`).

    Returns
    -------
    ServedItem or None
        None when the queue is done, or when the next session has not opened yet
        (:func:`~studyhub.rating.progress.progress` and
        :func:`~studyhub.rating.progress.resume` say when it does).

    Raises
    ------
    AuthError
        When the account was revoked.
    AccessError
        For monitors and admins, and for a rater who has not agreed to the
        consent statement yet (:func:`~studyhub.rating.consent.give_consent`).
    LifecycleError
        When the study is not in ``rating``.
    """
    now = utcnow()
    with store.session() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="fetch items to rate")
        lifecycle.require(who, "rate")
        if not who.consented:
            raise AccessError(NO_CONSENT.format(name=who.name))
        nxt = next_unanswered(s, who.rater_id)
        if nxt is None or (nxt.not_before is not None and nxt.not_before > now):
            return None
        item = _serve(store, s, protocol, nxt)
    if nxt.first_served_at is None or nxt.started_at is None:
        stamp = Stamp(
            assignment_id=nxt.assignment_id,
            session_id=nxt.session_id,
            rater_id=who.rater_id,
            actor=who.pseudonym,
            study_id=who.id,
            washout_days=protocol.reading.washout_days,
            served_at=now,
            session_started=nxt.started_at is not None,
        )
        stamp_first_serving(store, stamp)
    return item
