"""Writing the reading plan: ReadingSession and Assignment rows, in one transaction.

Idempotence and late raters
    A rater counts as assigned once they have reading sessions in the study.
    :func:`assign_study` plans only the active raters (role ``rater``, not
    revoked) who are not yet assigned; a rerun with the same raters does nothing
    and says so. Raters added later are assigned as a new batch: fully crossed,
    they read every stimulus; balanced incomplete block, the batch gets its own
    BIB replicate (each stimulus read by ``k`` raters *of the batch*, so the
    batch needs at least ``k`` new raters), which leaves the first batch's
    balance untouched and adds ``k`` readings to every stimulus. Existing
    assignments are never changed.

Session and washout contract (for the rating service)
    Every rater gets ``reading.sessions`` ReadingSession rows, numbered from 1,
    all written with ``not_before = None``. The service must

    * serve a rater's sessions in number order: session ``n + 1`` opens only
      when session ``n`` is finished (``finished_at`` set, every item answered);
    * when it first serves an item of session ``n`` it sets that session's
      ``started_at`` and, in the same transaction, session ``n + 1``'s
      ``not_before = washout_until(started_at, washout_days)``, with
      ``washout_days`` from the registered protocol (``reading.washout_days``);
    * refuse session ``n + 1`` while ``now < not_before`` and say when it opens.

    Within a session items are served by ``position`` (1, 2, ...); training items
    come first in session 1. ``kind`` is ``training``, ``read``, ``catch`` or
    ``repeat`` (see :mod:`studyhub.blinding.plan`); a catch item's ``expected``
    holds ``item``, ``value`` and the ``prompt`` to show.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.blinding.balance import Balance, ItemRow, balance
from studyhub.blinding.designs import StimulusRef
from studyhub.blinding.plan import Plan, build_plan
from studyhub.cases.enroll import registered_protocol
from studyhub.errors import InputError, LifecycleError
from studyhub.protocol.schema import Protocol
from studyhub.rating.pseudonyms import pseudonym
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Arm,
    Assignment,
    Case,
    Rater,
    ReadingSession,
    Stimulus,
    Study,
)
from studyhub.store.studies import get_study

__all__ = ["AssignReport", "assign_study", "check_study", "washout_until"]


@dataclass(frozen=True)
class AssignReport:
    """What :func:`assign_study` did."""

    study_id: str
    design: str
    raters: list[str]
    sessions: int
    assignments: int
    kinds: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    already_done: bool = False


def washout_until(started_at: dt.datetime, washout_days: int) -> dt.datetime:
    """``not_before`` of the next session: the previous session's start plus the washout."""
    return started_at + dt.timedelta(days=washout_days)


@dataclass
class _Inputs:
    study: Study
    protocol: Protocol
    stimuli: list[StimulusRef]
    stimuli_per_arm: dict[str, list[int]]
    names: dict[int, str]
    active: list[int]
    assigned: set[int]

    @property
    def pending(self) -> list[int]:
        return [r for r in self.active if r not in self.assigned]


def _inputs(s: Session, study_id: str | None) -> _Inputs:
    study = get_study(s, study_id)
    lifecycle.require(study, "assign")
    protocol, _base = registered_protocol(study)
    rows = s.execute(
        select(Stimulus.id, Stimulus.case_id, Arm.arm_key)
        .join(Arm, Stimulus.arm_id == Arm.id)
        .join(Case, Stimulus.case_id == Case.id)
        .where(Stimulus.study_id == study.id, Case.enrolled.is_(True))
        .order_by(Stimulus.id)
    ).all()
    stimuli = [StimulusRef(int(i), int(c), str(a)) for i, c, a in rows]
    if not stimuli:
        raise LifecycleError(
            f"study {study.id!r} has no stimuli to assign; generate them first: studyhub explain"
        )
    arms = [a.id for a in protocol.arms]
    per_case = Counter(st.case_id for st in stimuli)
    missing = sorted(c for c, n in per_case.items() if n < len(arms))
    if missing:
        raise InputError(
            f"{len(missing)} enrolled cases lack a stimulus for some of the {len(arms)} arms "
            f"(case ids {missing[:5]}); finish generating them with studyhub explain"
        )
    per_arm: dict[str, list[int]] = {a: [] for a in arms}
    for st in stimuli:
        per_arm.setdefault(st.arm, []).append(st.id)
    raters = s.scalars(
        select(Rater)
        .where(Rater.study_id == study.id, Rater.role == "rater", Rater.revoked_at.is_(None))
        .order_by(Rater.id)
    ).all()
    names = {r.id: r.name for r in s.scalars(select(Rater).where(Rater.study_id == study.id))}
    assigned = set(
        s.scalars(select(ReadingSession.rater_id).where(ReadingSession.study_id == study.id))
    )
    active = [r.id for r in raters]
    need = protocol.raters.min_raters
    if len(active) < need:
        raise LifecycleError(
            f"study {study.id!r} has {len(active)} active raters but raters.min_raters is "
            f"{need}; add raters with studyhub rater add"
        )
    return _Inputs(study, protocol, stimuli, per_arm, names, active, assigned)


def _plan(inp: _Inputs) -> Plan:
    p = inp.protocol
    return build_plan(
        inp.stimuli, inp.pending, p.reading, p.instrument, p.seed, shuffle=p.blinding.shuffle
    )


def assign_study(store: Store, study_id: str | None, *, actor: str) -> AssignReport:
    """Assign stimuli to every active, not yet assigned rater and open rating.

    Parameters
    ----------
    store
        The open store.
    study_id
        The study, or None for the only study in the store.
    actor
        Who assigns, for the audit log.

    Returns
    -------
    AssignReport
        ``already_done`` when every active rater was assigned before.

    Raises
    ------
    LifecycleError
        When the study is not enrolling or rating, has no stimuli, or has fewer
        active raters than ``raters.min_raters``.
    InputError
        When the reading design cannot be met (see :mod:`studyhub.blinding.designs`
        and :mod:`studyhub.blinding.ordering` for the messages).
    """
    with store.write() as s:
        inp = _inputs(s, study_id)
        design = inp.protocol.reading.design
        if not inp.pending:
            return AssignReport(
                inp.study.id,
                design,
                [],
                inp.protocol.reading.sessions,
                0,
                already_done=True,
            )
        plan = _plan(inp)
        kinds: Counter[str] = Counter()
        for rp in plan.raters:
            ids: dict[int, Assignment] = {}
            repeats: list[tuple[Assignment, int]] = []
            for number, items in enumerate(rp.sessions, start=1):
                rs = ReadingSession(study_id=inp.study.id, rater_id=rp.rater_id, number=number)
                s.add(rs)
                s.flush()
                for position, it in enumerate(items, start=1):
                    row = Assignment(
                        study_id=inp.study.id,
                        rater_id=rp.rater_id,
                        session_id=rs.id,
                        stimulus_id=it.stimulus_id,
                        position=position,
                        kind=it.kind,
                        expected=it.expected,
                    )
                    s.add(row)
                    ids[it.key] = row
                    kinds[it.kind] += 1
                    if it.repeat_of is not None:
                        repeats.append((row, it.repeat_of))
            s.flush()
            for row, key in repeats:
                row.repeat_of_id = ids[key].id
        total = sum(kinds.values())
        append_event(
            s,
            actor=actor,
            action="assign",
            study_id=inp.study.id,
            payload={
                "design": design,
                "seed": inp.protocol.seed,
                "raters": [pseudonym("rater", r.rater_id) for r in plan.raters],
                "sessions_per_rater": inp.protocol.reading.sessions,
                "assignments": total,
                "kinds": dict(sorted(kinds.items())),
                "notes": plan.notes,
            },
        )
        lifecycle.advance(s, inp.study, "rating", actor=actor)
        return AssignReport(
            inp.study.id,
            design,
            [inp.names[r.rater_id] for r in plan.raters],
            inp.protocol.reading.sessions,
            total,
            dict(sorted(kinds.items())),
            plan.notes,
        )


def check_study(store: Store, study_id: str | None) -> tuple[Balance, list[str]]:
    """The balance table of stored assignments plus the plan for unassigned raters.

    Writes nothing. Stored rows have status ``assigned``, planned ones ``planned``.
    """
    with store.session() as s:
        inp = _inputs(s, study_id)
        rows = s.execute(
            select(
                Assignment.rater_id,
                ReadingSession.number,
                Assignment.position,
                Assignment.kind,
                Stimulus.case_id,
                Arm.arm_key,
                Stimulus.id,
            )
            .join(ReadingSession, Assignment.session_id == ReadingSession.id)
            .join(Stimulus, Assignment.stimulus_id == Stimulus.id)
            .join(Arm, Stimulus.arm_id == Arm.id)
            .where(Assignment.study_id == inp.study.id)
        ).all()
        items = [
            ItemRow(inp.names[r], "assigned", n, p, k, c, a, st) for r, n, p, k, c, a, st in rows
        ]
        plan = _plan(inp)
    for rp in plan.raters:
        for number, its in enumerate(rp.sessions, start=1):
            items += [
                ItemRow(
                    inp.names[rp.rater_id],
                    "planned",
                    number,
                    pos,
                    it.kind,
                    it.case_id,
                    it.arm,
                    it.stimulus_id,
                )
                for pos, it in enumerate(its, start=1)
            ]
    return balance(items, inp.stimuli_per_arm), plan.notes
