"""The first serving of an item, stamped without making the rater wait for the write lock.

Serving an item reads; stamping its first serving (``first_served_at``, an
``item_served`` audit event and, with a session's first item, the session's
start and the next session's opening) writes. Writes queue for the store's one
write lock, which another connection may hold for a while (a long command on
SQLite, a backup). The stamp is therefore written by a worker thread, and
:func:`stamp_first_serving` waits for it at most :data:`STAMP_WAIT` seconds:
when the lock is free (nearly always) the stamp is in the database when the
item is returned; when it is not, the item is served anyway and the worker
writes the stamp as soon as the lock frees.

The stamp always carries the time the item was *first returned*, not the time
the write got through, so time on task is measured from when the rater saw
the item. Before anything relies on the stamp, :func:`settle` waits for the
pending write (submitting an answer must write anyway); a write that failed
(the lock was held past the store's busy timeout) is retried there, and by
the next serving of the item, still with the first serving's time. Pending
stamps live in the serving process (``Store.caches``): if that process ends
before the write got through, the item counts as served when it is next
served, as if it had not been shown before.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any, Final, cast

from sqlalchemy import CursorResult, bindparam, select, update

from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Assignment, ReadingSession
from studyhub.store.rows import bind_rows

__all__ = ["STAMP_WAIT", "Stamp", "pending_stamp", "settle", "stamp_first_serving"]

#: Seconds serving waits for the stamp's write before it serves the item anyway.
STAMP_WAIT: Final = 0.5

_BOOK = "rating.pending_stamps"
_lock = threading.Lock()
_STAMP = (
    update(Assignment)
    .where(Assignment.id == bindparam("assignment_id"), Assignment.first_served_at.is_(None))
    .values(first_served_at=bindparam("now"))
)


@dataclass
class Stamp:
    """What one first serving writes, and the state of its write.

    Attributes
    ----------
    assignment_id, session_id : int
        The served assignment and its reading session.
    rater_id : int
        The rater it was served to.
    actor, study_id : str
        The rater's pseudonym (the audit log's actor, e.g. ``rater-12``) and the study.
    washout_days : int
        The protocol's washout before the next session opens.
    served_at : datetime
        When the item was first returned: what ``first_served_at`` records.
    session_started : bool
        Whether the session had started already (then only the item is stamped).
    """

    assignment_id: int
    session_id: int
    rater_id: int
    actor: str
    study_id: str
    washout_days: int
    served_at: dt.datetime
    session_started: bool
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def _book(store: Store) -> dict[int, Stamp]:
    book: Any = store.caches.setdefault(_BOOK, {})
    return cast(dict[int, Stamp], book)


def pending_stamp(store: Store, assignment_id: int) -> Stamp | None:
    """The stamp of ``assignment_id`` not yet written by this process, if any."""
    with _lock:
        return _book(store).get(assignment_id)


def stamp_first_serving(store: Store, stamp: Stamp, *, wait: float = STAMP_WAIT) -> bool:
    """Write ``stamp`` in a worker thread; wait for it at most ``wait`` seconds.

    A stamp already pending for the assignment is kept (with its serving time)
    and only restarted if its write failed.

    Returns
    -------
    bool
        Whether the stamp was written within ``wait``.
    """
    with _lock:
        book = _book(store)
        pending = book.get(stamp.assignment_id)
        if pending is None or (pending.done.is_set() and pending.error is not None):
            if pending is not None:  # its write failed: retry with the first serving's time
                stamp.served_at = pending.served_at
            pending = book[stamp.assignment_id] = stamp
            worker = threading.Thread(
                target=_work,
                args=(store, stamp),
                name=f"studyhub-stamp-{stamp.assignment_id}",
                daemon=True,
            )
            worker.start()
    return pending.done.wait(wait) and pending.error is None


def settle(store: Store, assignment_id: int) -> None:
    """Make sure the pending stamp of ``assignment_id`` (if any) is written; wait for it.

    A write that failed is retried here, in the caller's thread, so its error
    (e.g. the store's busy timeout) reaches the caller.
    """
    pending = pending_stamp(store, assignment_id)
    if pending is None:
        return
    pending.done.wait()
    if pending.error is not None:
        _write(store, pending)
        _forget(store, pending)


def _work(store: Store, stamp: Stamp) -> None:
    try:
        _write(store, stamp)
    except Exception as exc:  # kept: retried by settle() or the next serving
        stamp.error = exc
    else:
        _forget(store, stamp)
    finally:
        stamp.done.set()


def _forget(store: Store, stamp: Stamp) -> None:
    with _lock:
        book = _book(store)
        if book.get(stamp.assignment_id) is stamp:
            del book[stamp.assignment_id]


def _write(store: Store, stamp: Stamp) -> None:
    """Record the first serving of an item and, with a session's first item, its start."""
    now = stamp.served_at
    with store.write() as s:
        result = s.execute(_STAMP, {"assignment_id": stamp.assignment_id, "now": now})
        stamped = cast(CursorResult[Any], result).rowcount
        bind_rows(s, "assignment", [stamp.assignment_id] if stamped else [])
        if stamped:
            append_event(
                s,
                actor=stamp.actor,
                action="item_served",
                study_id=stamp.study_id,
                payload={"assignment_id": stamp.assignment_id, "rater_id": stamp.rater_id},
            )
        if stamp.session_started:
            return
        session = s.get_one(ReadingSession, stamp.session_id)
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
            following.not_before = now + dt.timedelta(days=stamp.washout_days)
            opens = following.not_before.isoformat()
        append_event(
            s,
            actor=stamp.actor,
            action="session_start",
            study_id=stamp.study_id,
            payload={
                "rater_id": stamp.rater_id,
                "session": session.number,
                "next_session_opens_at": opens,
            },
        )
