"""Where raters stand: progress, resume, and the monitor's blinded summary.

Progress and the monitor summary read; they never serve an item or stamp a
clock. :func:`resume` is for the rating page itself: it serves the next item
(stamping it as served) along with progress and one plain message.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from studyhub.rating._common import (
    Caller,
    answered,
    caller,
    consent_sha256,
    queue_counts,
    require_role,
)
from studyhub.rating.accounts import Principal
from studyhub.rating.serve import ServedItem, next_item, next_unanswered
from studyhub.store.db import Store
from studyhub.store.models import Assignment, Consent, Rater, ReadingSession, Response, utcnow

__all__ = [
    "MonitorSummary",
    "Progress",
    "RaterSummary",
    "ResumeState",
    "catch_failed",
    "monitor_summary",
    "opening_message",
    "progress",
    "resume",
]


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
    consented: bool = False


@dataclass(frozen=True)
class MonitorSummary:
    """Progress of a study for monitors: completion, catch failures, time per item."""

    study_id: str
    state: str
    raters: tuple[RaterSummary, ...]
    median_time_ms: float | None


def _opens_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def progress_in(s: Session, who: Caller, now: dt.datetime) -> Progress:
    sessions = list(
        s.execute(
            select(ReadingSession.number, ReadingSession.not_before)
            .where(ReadingSession.rater_id == who.rater_id)
            .order_by(ReadingSession.number)
        )
    )
    nxt = next_unanswered(s, who.rater_id)
    if nxt is None:
        done, total = queue_counts(s, who.rater_id)
        number = sessions[-1].number if sessions and total else 0
        return Progress(done, total, number, None, len(sessions))
    opens: dt.datetime | None = None
    if nxt.not_before is not None and nxt.not_before > now:
        opens = nxt.not_before
    else:
        following = [x for x in sessions if x.number == nxt.session + 1]
        if following and following[0].not_before is not None and following[0].not_before > now:
            opens = following[0].not_before
    return Progress(nxt.done, nxt.total, nxt.session, opens, len(sessions))


def opening_message(prog: Progress, item: ServedItem | None) -> str:
    """One plain sentence on where the rater stands."""
    if item is not None:
        return f"Item {item.position} of {item.total} (session {item.session} of {prog.sessions})."
    if prog.total == 0:
        return "No items are assigned to you yet; the study lead will let you know."
    if prog.finished:
        return f"All {prog.total} items are done. Thank you."
    if prog.next_session_opens_at is not None:
        return (
            f"Session {prog.session} opens at {_opens_text(prog.next_session_opens_at)} "
            f"(a washout between sessions); {prog.done} of {prog.total} items done."
        )
    if prog.done:
        return f"{prog.done} of {prog.total} items done; session {prog.session} continues."
    return f"{prog.total} items in {prog.sessions} session(s) are waiting for you."


def progress(store: Store, principal: Principal) -> Progress:
    """How many of the rater's items are done, the current session, when the next opens.

    Reads only: nothing is served or stamped.
    """
    with store.session() as s:
        who, _protocol = caller(s, principal)
        require_role(who, "rater", doing="follow a rating queue")
        return progress_in(s, who, utcnow())


def resume(store: Store, principal: Principal) -> ResumeState:
    """Where a returning rater picks up: the next item (served), progress and one message."""
    item = next_item(store, principal)
    prog = progress(store, principal)
    return ResumeState(item, prog, opening_message(prog, item))


def catch_failed(expected: Any, answers: Mapping[str, Any]) -> bool:
    """Whether ``answers`` miss what a catch item's ``expected`` asked for (any accepted value)."""
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
        me, protocol = caller(s, principal)
        require_role(me, "monitor", "admin", doing="see the monitor summary")
        study_id = me.id
        raters = list(
            s.scalars(
                select(Rater)
                .where(Rater.study_id == study_id, Rater.role == "rater")
                .order_by(Rater.name)
            )
        )
        totals: dict[int, int] = {
            rid: n
            for rid, n in s.execute(
                select(Assignment.rater_id, func.count(Assignment.id))
                .where(Assignment.study_id == study_id)
                .group_by(Assignment.rater_id)
            )
        }
        done: dict[int, int] = {
            rid: n
            for rid, n in s.execute(
                select(Assignment.rater_id, func.count(Assignment.id))
                .where(Assignment.study_id == study_id, answered())
                .group_by(Assignment.rater_id)
            )
        }
        times: dict[int, list[int]] = {}
        for rid, ms in s.execute(
            select(Response.rater_id, Response.time_on_task_ms)
            .join(Assignment, Response.assignment_id == Assignment.id)
            .where(
                Assignment.study_id == study_id,
                Response.supersedes_id.is_(None),
                Response.time_on_task_ms.is_not(None),
            )
        ):
            if ms is not None:
                times.setdefault(rid, []).append(ms)
        statement = consent_sha256(protocol)
        consented = set(
            s.scalars(
                select(Consent.rater_id).where(
                    Consent.study_id == study_id, Consent.statement_sha256 == statement
                )
            )
        )
        newer = aliased(Response)
        catches: dict[int, list[bool]] = {}
        for rid, expected, answers in s.execute(
            select(Assignment.rater_id, Assignment.expected, Response.answers)
            .join(Response, Response.assignment_id == Assignment.id)
            .where(
                Assignment.study_id == study_id,
                Assignment.kind == "catch",
                ~exists().where(newer.supersedes_id == Response.id),
            )
        ):
            catches.setdefault(rid, []).append(catch_failed(expected, answers))
        rows = tuple(
            RaterSummary(
                name=r.name,
                revoked=r.revoked_at is not None,
                done=int(done.get(r.id, 0)),
                total=int(totals.get(r.id, 0)),
                catch_items=len(catches.get(r.id, [])),
                catch_failures=sum(catches.get(r.id, [])),
                median_time_ms=(float(statistics.median(times[r.id])) if times.get(r.id) else None),
                consented=r.id in consented,
            )
            for r in raters
        )
        every = [ms for values in times.values() for ms in values]
        return MonitorSummary(
            study_id,
            me.state,
            rows,
            float(statistics.median(every)) if every else None,
        )
