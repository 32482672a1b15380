"""The tamper-evident audit log: a hash chain over every write.

Each :class:`~studyhub.store.models.AuditEvent` stores the SHA-256 of its own
content together with the previous event's hash, so editing, deleting,
reordering or inserting a row breaks the chain at a sequence number that
:func:`verify_chain` reports. The head row (last sequence number and hash) makes
a deleted tail visible too. Events are appended inside the caller's write
transaction, so a state change and its audit event commit or fail together.

An event also records the digests of the data rows its transaction created,
changed or deleted (``rows``, see :mod:`studyhub.store.rows`), and its hash covers
them: the chain proves the rows, not only itself. Events are therefore written
when the transaction ends (:func:`finish_events`), once every row is flushed;
:func:`append_event` queues them in order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from studyhub.errors import StoreError
from studyhub.store.models import AuditEvent, AuditHead, Base, utcnow
from studyhub.store.rows import take_touched, touched_digests, unbound_statements

#: ``Session.info`` key of the head row that :meth:`studyhub.store.db.Store.write` locked.
AUDIT_HEAD = "studyhub.audit_head"
#: ``Session.info`` key of the events queued in this write transaction.
_PENDING = "studyhub.audit_pending"

__all__ = [
    "AUDIT_HEAD",
    "GENESIS",
    "ChainReport",
    "append_event",
    "begin_events",
    "event_hash",
    "finish_events",
    "lock_head",
    "verify_chain",
]

#: The "previous hash" of the first event.
GENESIS = "0" * 64


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    *,
    seq: int,
    study_id: str | None,
    actor: str,
    action: str,
    payload: str,
    created_at: dt.datetime,
    prev_hash: str,
    rows: str | None = None,
) -> str:
    """SHA-256 over an event's content, the row digests it records and the previous hash.

    ``rows`` (the canonical JSON of the row digests) is part of the hashed body
    only when present, so events written before rows were bound keep their hash.
    """
    content: dict[str, Any] = {
        "seq": seq,
        "study_id": study_id,
        "actor": actor,
        "action": action,
        "payload": payload,
        "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "prev_hash": prev_hash,
    }
    if rows is not None:
        content["rows"] = rows
    return hashlib.sha256(_canonical(content).encode("utf-8")).hexdigest()


_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_EVENT = insert(Base.metadata.tables["audit_event"])
_MOVE_HEAD = (
    update(Base.metadata.tables["audit_head"])
    .where(Base.metadata.tables["audit_head"].c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def lock_head(session: Session) -> list[Any]:
    """Lock the chain's head row for this transaction; return ``[seq, hash]``, kept on the session.

    :meth:`studyhub.store.db.Store.write` calls this first in every write
    transaction, so all writers lock in the same order and none can deadlock.
    """
    seq, digest = session.execute(_LOCK_HEAD).one()
    head = [seq, digest]
    session.info[AUDIT_HEAD] = head
    return head


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    study_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Queue one event of the caller's write transaction.

    The session must come from :meth:`studyhub.store.db.Store.write`, which has
    locked the chain's head (so concurrent writers queue instead of forking the
    chain) and writes the queued events when the transaction ends, each with the
    digests of the rows touched before it (the last one also with those touched
    after it).
    """
    pending = session.info.get(_PENDING)
    if pending is None:
        raise StoreError(
            "internal: append_event needs a session from Store.write(), which binds the "
            "written rows to the chain"
        )
    session.flush()
    pending.append(
        {
            "actor": actor,
            "action": action,
            "study_id": study_id,
            "payload": _canonical(payload or {}),
            "created_at": utcnow(),
            "touched": take_touched(session),
        }
    )


def begin_events(session: Session) -> None:
    """Start queueing events on a write session (:meth:`studyhub.store.db.Store.write`)."""
    session.info[_PENDING] = []


def finish_events(session: Session) -> None:
    """Write the queued events with the digests of the rows they stand for.

    Called by :meth:`studyhub.store.db.Store.write` just before it commits.
    Refuses (rolling the transaction back) a write that changed bound rows
    without any audit event, or that wrote a bound table by a direct statement
    without naming its rows (:func:`studyhub.store.rows.bind_rows`).
    """
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, None) or []
    session.flush()
    rest = take_touched(session)
    unbound = unbound_statements(session)
    if unbound:
        raise StoreError(
            f"internal: a statement wrote table(s) {sorted(unbound)} without binding its rows "
            "to the audit chain (studyhub.store.rows.bind_rows)"
        )
    if not pending:
        if rest:
            raise StoreError(
                f"internal: a write changed {sorted(rest)} rows without an audit event; every "
                "write must go through the audit chain (append_event)"
            )
        return
    pending[-1]["touched"] = _merge(pending[-1]["touched"], rest)
    # A row touched by several events of one transaction belongs to the last of them.
    owner: dict[tuple[str, str], int] = {}
    for i, ev in enumerate(pending):
        for table, keys in ev["touched"].items():
            for key in keys:
                owner[(table, str(key))] = i
    head = session.info.get(AUDIT_HEAD)
    if not isinstance(head, list):
        head = lock_head(session)
    for i, ev in enumerate(pending):
        mine = {
            table: {k for k in keys if owner[(table, str(k))] == i}
            for table, keys in ev["touched"].items()
        }
        digests = touched_digests(session, {t: k for t, k in mine.items() if k})
        rows = _canonical(digests) if digests else None
        seq, prev_hash = head[0] + 1, head[1]
        digest = event_hash(
            seq=seq,
            study_id=ev["study_id"],
            actor=ev["actor"],
            action=ev["action"],
            payload=ev["payload"],
            created_at=ev["created_at"],
            prev_hash=prev_hash,
            rows=rows,
        )
        session.execute(
            _INSERT_EVENT,
            {
                "seq": seq,
                "study_id": ev["study_id"],
                "actor": ev["actor"],
                "action": ev["action"],
                "payload": ev["payload"],
                "rows": rows,
                "created_at": ev["created_at"],
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        head[0], head[1] = seq, digest
    session.execute(_MOVE_HEAD, {"new_seq": head[0], "new_hash": head[1]})


def _merge(a: dict[str, set[Any]], b: dict[str, set[Any]]) -> dict[str, set[Any]]:
    out = {k: set(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, set()).update(v)
    return out


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found."""

    ok: bool
    events: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    def render(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.events} events, head {self.head_hash}"
        return f"audit chain BROKEN at sequence {self.broken_at}: {self.reason}"


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain from the start; report OK or the first broken sequence number."""
    expected_seq = 1
    prev = GENESIS
    count = 0
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    for ev in rows.yield_per(1000) if hasattr(rows, "yield_per") else rows:
        if ev.seq != expected_seq:
            return ChainReport(
                False,
                count,
                prev,
                expected_seq,
                f"expected sequence {expected_seq}, found {ev.seq}: events deleted or inserted",
            )
        if ev.prev_hash != prev:
            return ChainReport(
                False,
                count,
                prev,
                ev.seq,
                "its previous-hash does not match the event before it: events reordered, "
                "deleted or inserted",
            )
        recomputed = event_hash(
            seq=ev.seq,
            study_id=ev.study_id,
            actor=ev.actor,
            action=ev.action,
            payload=ev.payload,
            created_at=ev.created_at,
            prev_hash=ev.prev_hash,
            rows=ev.rows,
        )
        if recomputed != ev.hash:
            return ChainReport(
                False,
                count,
                prev,
                ev.seq,
                "its content does not match its hash: the event was edited",
            )
        prev = ev.hash
        count += 1
        expected_seq += 1
    head = session.get(AuditHead, 1)
    if head is None:
        return ChainReport(False, count, prev, expected_seq, "the chain's head row is missing")
    if head.seq != count or head.hash != prev:
        return ChainReport(
            False,
            count,
            prev,
            count + 1 if head.seq > count else head.seq,
            f"the head records {head.seq} events ending in {head.hash[:12]}…, the log holds "
            f"{count}: events at the end were deleted or added outside studyhub",
        )
    return ChainReport(True, count, prev)
