"""The tamper-evident audit log: a hash chain over every write.

Each :class:`~studyhub.store.models.AuditEvent` stores the SHA-256 of its own
content together with the previous event's hash, so editing, deleting,
reordering or inserting a row breaks the chain at a sequence number that
:func:`verify_chain` reports. The head row (last sequence number and hash) makes
a deleted tail visible too. Events are appended inside the caller's write
transaction, so a state change and its audit event commit or fail together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from studyhub.store.models import AuditEvent, AuditHead, Base, utcnow

#: ``Session.info`` key of the head row that :meth:`studyhub.store.db.Store.write` locked.
AUDIT_HEAD = "studyhub.audit_head"

__all__ = [
    "AUDIT_HEAD",
    "GENESIS",
    "ChainReport",
    "append_event",
    "event_hash",
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
) -> str:
    """SHA-256 over an event's content and the previous event's hash."""
    body = _canonical(
        {
            "seq": seq,
            "study_id": study_id,
            "actor": actor,
            "action": action,
            "payload": payload,
            "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


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
) -> str:
    """Append one event to the chain inside the caller's write transaction.

    The session must come from :meth:`studyhub.store.db.Store.write`, which has
    already locked the chain's head, so concurrent writers queue instead of
    forking the chain. Returns the new event's hash.
    """
    head = session.info.get(AUDIT_HEAD)
    if not isinstance(head, list):
        head = lock_head(session)
    seq = head[0] + 1
    prev_hash = head[1]
    created_at = utcnow()
    text = _canonical(payload or {})
    digest = event_hash(
        seq=seq,
        study_id=study_id,
        actor=actor,
        action=action,
        payload=text,
        created_at=created_at,
        prev_hash=prev_hash,
    )
    session.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "study_id": study_id,
            "actor": actor,
            "action": action,
            "payload": text,
            "created_at": created_at,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    head[0], head[1] = seq, digest
    return digest


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
