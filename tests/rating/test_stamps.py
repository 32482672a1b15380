"""First-serving stamps: serving never waits behind a writer, and the stamp keeps the serving time."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from studyhub.rating import next_item, stamps, submit
from studyhub.rating.stamps import Stamp, pending_stamp
from studyhub.store.audit import verify_chain
from studyhub.store.db import Store
from studyhub.store.models import Assignment, AuditEvent, ReadingSession, utcnow
from tests.locks import JOIN_S, finishes, write_lock_held
from tests.rating.conftest import GOOD, RatingStudy, new_key


def _first_served(rs: RatingStudy, assignment_id: int) -> object:
    with rs.store.session() as s:
        return s.scalar(select(Assignment.first_served_at).where(Assignment.id == assignment_id))


def _actions(rs: RatingStudy, action: str) -> int:
    with rs.store.session() as s:
        return int(
            s.scalar(select(func.count(AuditEvent.seq)).where(AuditEvent.action == action)) or 0
        )


def test_an_item_is_served_while_another_connection_holds_the_write_lock(
    rs: RatingStudy,
) -> None:
    p = rs.principals["alice"]
    first = rs.queue["alice"][0]
    before = utcnow()
    with write_lock_held(rs.store):
        item = finishes(lambda: next_item(rs.store, p))
        after = utcnow()
        again = finishes(lambda: next_item(rs.store, p))  # a reload, still locked
        assert _first_served(rs, first) is None  # the stamp waits for the lock ...
        assert pending_stamp(rs.store, first) is not None  # ... in this process
    assert item is not None and again is not None
    assert item.assignment_id == again.assignment_id == first
    # submitting waits for the stamp (it must write anyway), then stores the answer
    result = submit(rs.store, p, first, GOOD, time_on_task_ms=2500, idempotency_key=new_key())
    with rs.store.session() as s:
        a = s.get_one(Assignment, first)
        session = s.get_one(ReadingSession, a.session_id)
        assert a.first_served_at is not None
        # the time the item was first returned, not when the lock freed or the reload
        assert before <= a.first_served_at <= after <= result.submitted_at
        assert session.started_at == a.first_served_at
        assert verify_chain(s).ok
    assert _actions(rs, "item_served") == 1 and _actions(rs, "session_start") == 1
    assert pending_stamp(rs.store, first) is None


@pytest.fixture
def failing_once(monkeypatch: pytest.MonkeyPatch) -> list[Stamp]:
    """The first stamp write fails as a lock held past the busy timeout would (60 s, too long
    to wait for in a test); every later one writes. Returns the stamps tried, in order."""
    real = stamps._write
    tried: list[Stamp] = []

    def write(store: Store, stamp: Stamp) -> None:
        tried.append(stamp)
        if len(tried) == 1:
            raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("locked"))
        real(store, stamp)

    monkeypatch.setattr(stamps, "_write", write)
    return tried


def test_a_stamp_that_could_not_be_written_is_written_at_submit_with_the_serving_time(
    rs: RatingStudy, failing_once: list[Stamp]
) -> None:
    p = rs.principals["alice"]
    first = rs.queue["alice"][0]
    item = next_item(rs.store, p)
    assert item is not None and item.assignment_id == first
    pending = pending_stamp(rs.store, first)
    assert pending is not None and pending.done.wait(JOIN_S) and pending.error is not None
    assert _first_served(rs, first) is None
    submit(rs.store, p, first, GOOD, time_on_task_ms=2500, idempotency_key=new_key())
    assert [s.served_at for s in failing_once] == [pending.served_at] * 2
    assert _first_served(rs, first) == pending.served_at
    assert _actions(rs, "item_served") == 1 and pending_stamp(rs.store, first) is None


def test_the_next_serving_retries_a_failed_stamp_with_the_first_serving_time(
    rs: RatingStudy, failing_once: list[Stamp]
) -> None:
    p = rs.principals["alice"]
    first = rs.queue["alice"][0]
    next_item(rs.store, p)
    pending = pending_stamp(rs.store, first)
    assert pending is not None and pending.done.wait(JOIN_S) and pending.error is not None
    next_item(rs.store, p)  # a reload
    retry = failing_once[-1]
    assert len(failing_once) == 2 and retry.done.wait(JOIN_S) and retry.error is None
    assert _first_served(rs, first) == pending.served_at == retry.served_at
    assert _actions(rs, "item_served") == 1
