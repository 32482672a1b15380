"""The audit chain: appends, verification, tampering of every kind, concurrency."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import delete, select, text, update

from studyhub.store.audit import GENESIS, append_event, verify_chain
from studyhub.store.models import AuditEvent


def _append(store, n: int, *, actor: str = "tester") -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        with store.write() as s:
            append_event(s, actor=actor, action="test", payload={"i": i, "text": "ü"})


def _verify(store):  # type: ignore[no-untyped-def]
    with store.session() as s:
        return verify_chain(s)


def test_empty_chain_is_ok(store) -> None:  # type: ignore[no-untyped-def]
    report = _verify(store)
    assert report.ok and report.events == 0 and report.head_hash == GENESIS


def test_chain_links_each_event_to_the_previous(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 5)
    with store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert all(e.created_at.tzinfo is not None for e in events)
    report = _verify(store)
    assert report.ok and report.events == 5 and report.head_hash == events[-1].hash


def test_a_failed_transaction_leaves_no_event(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 2)
    with pytest.raises(RuntimeError), store.write() as s:
        append_event(s, actor="x", action="doomed")
        raise RuntimeError("crash mid-write")
    report = _verify(store)
    assert report.ok and report.events == 2


@pytest.mark.tampers
def test_edited_payload_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 6)
    with store.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(payload='{"i":99}'))
    report = _verify(store)
    assert not report.ok and report.broken_at == 4
    assert "edited" in (report.reason or "")


@pytest.mark.tampers
def test_edited_actor_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 3)
    with store.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
    assert _verify(store).broken_at == 2


@pytest.mark.tampers
def test_deleted_middle_event_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 6)
    with store.engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    report = _verify(store)
    assert not report.ok and report.broken_at == 3


@pytest.mark.tampers
def test_deleted_tail_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 6)
    with store.engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 6))
    report = _verify(store)
    assert not report.ok and report.broken_at == 6
    assert "deleted" in (report.reason or "")


@pytest.mark.tampers
def test_reordered_events_are_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 6)
    with store.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=1000))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(seq=3))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 1000).values(seq=4))
    report = _verify(store)
    assert not report.ok and report.broken_at == 3


@pytest.mark.tampers
def test_inserted_event_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 4)
    with store.session() as s:
        last = s.scalars(select(AuditEvent).where(AuditEvent.seq == 4)).one()
        forged = AuditEvent(
            seq=5,
            study_id=None,
            actor="mallory",
            action="test",
            payload="{}",
            created_at=last.created_at,
            prev_hash=last.hash,
            hash="f" * 64,
        )
        s.add(forged)
        s.commit()
    report = _verify(store)
    assert not report.ok and report.broken_at == 5


@pytest.mark.tampers
def test_inserted_event_in_the_middle_is_detected(store) -> None:  # type: ignore[no-untyped-def]
    _append(store, 4)
    with store.engine.begin() as conn:
        for seq in (4, 3):
            conn.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        conn.execute(
            text(
                "INSERT INTO audit_event (seq, study_id, actor, action, payload, created_at, "
                "prev_hash, hash) SELECT 3, study_id, actor, action, payload, created_at, "
                "prev_hash, :h FROM audit_event WHERE seq = 2"
            ),
            {"h": "e" * 64},
        )
    report = _verify(store)
    assert not report.ok and report.broken_at == 3


def test_fifty_concurrent_writers_lose_nothing(store) -> None:  # type: ignore[no-untyped-def]
    writers, per_writer = 50, 4
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def work(w: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with store.write() as s:
                    append_event(s, actor=f"writer-{w}", action="test", payload={"w": w, "i": i})
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(store)
    assert report.ok, report.render()
    assert report.events == writers * per_writer
    with store.session() as s:
        seen = {(e.actor, e.payload) for e in s.scalars(select(AuditEvent))}
    assert len(seen) == writers * per_writer
