"""``studyhub audit verify``: the chain, and every data row against the chain.

:func:`verify_store` walks the audit chain (:func:`studyhub.store.audit.verify_chain`),
collects the row digests each event recorded (the last record of a row wins; a
``null`` record says the row was legitimately deleted), and then recomputes the
digest of every row of every bound table. It reports *every* discrepancy, not
only the first:

- a row that differs from its last recorded digest (naming the columns that differ),
- a row that no event recorded (inserted outside studyhub),
- a row that an event recorded but that is gone (deleted outside studyhub),
- a row that exists although its deletion was recorded.

What this can and cannot detect is the threat model in the README ("What the audit
chain proves"): any change made outside studyhub to data rows or events, unless the
whole chain from the change onwards is rewritten consistently, which only a copy
of the head hash kept outside the database (:func:`anchor`) reveals.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.errors import InputError
from studyhub.store.audit import ChainReport, verify_chain
from studyhub.store.models import AuditEvent, AuditHead, utcnow
from studyhub.store.rows import BOUND_TABLES, RowDigest, iter_table_digests

__all__ = [
    "Anchor",
    "Discrepancy",
    "StoreReport",
    "anchor",
    "check_anchor",
    "read_anchor",
    "verify_store",
]


@dataclass(frozen=True)
class Discrepancy:
    """One row that does not match the chain."""

    table: str
    row: str
    problem: str
    seq: int | None = None

    def render(self) -> str:
        where = f" (recorded by event {self.seq})" if self.seq is not None else ""
        return f"{self.table} row {self.row}: {self.problem}{where}"


@dataclass(frozen=True)
class StoreReport:
    """What :func:`verify_store` found: the chain's report and every row discrepancy."""

    chain: ChainReport
    rows_checked: int
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.discrepancies

    def render(self) -> list[str]:
        """Lines for a person: OK with counts, or every problem found."""
        if self.ok:
            return [
                f"audit chain OK: {self.chain.events} events, head {self.chain.head_hash}",
                f"data rows OK: {self.rows_checked} rows in {len(BOUND_TABLES)} tables match "
                "the chain",
            ]
        lines = []
        if not self.chain.ok:
            lines.append(self.chain.render())
        if self.discrepancies:
            lines.append(
                f"{len(self.discrepancies)} data row(s) do not match the audit chain "
                f"({self.rows_checked} rows checked):"
            )
            lines.extend("  " + d.render() for d in self.discrepancies)
        return lines


def _recorded(session: Session) -> dict[tuple[str, str], tuple[int, RowDigest | None]]:
    """(table, row) -> (seq, digest or None for deleted), the last record of each row."""
    out: dict[tuple[str, str], tuple[int, RowDigest | None]] = {}
    stmt = (
        select(AuditEvent.seq, AuditEvent.rows)
        .where(AuditEvent.rows.is_not(None))
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=500)
    )
    for seq, text in session.execute(stmt):
        for table, rows in json.loads(text or "{}").items():
            for key, value in rows.items():
                out[(table, key)] = (seq, None if value is None else RowDigest.from_json(value))
    return out


def verify_store(session: Session) -> StoreReport:
    """Verify the chain and every data row against the digests the chain records."""
    chain = verify_chain(session)
    recorded = _recorded(session)
    problems: list[Discrepancy] = []
    seen: set[tuple[str, str]] = set()
    checked = 0
    for table in BOUND_TABLES:
        for key, digest in iter_table_digests(session, table):
            checked += 1
            seen.add((table, key))
            record = recorded.get((table, key))
            if record is None:
                problems.append(
                    Discrepancy(
                        table, key, "no audit event records this row: inserted outside studyhub"
                    )
                )
                continue
            seq, expected = record
            if expected is None:
                problems.append(
                    Discrepancy(table, key, "exists although its deletion was recorded", seq)
                )
            elif expected.sha256 != digest.sha256:
                cols = expected.differing_columns(digest)
                what = ", ".join(cols) if cols else "content"
                problems.append(
                    Discrepancy(table, key, f"changed outside studyhub: {what} differ", seq)
                )
    for (table, key), (seq, expected) in sorted(recorded.items()):
        if expected is not None and (table, key) not in seen and table in BOUND_TABLES:
            problems.append(Discrepancy(table, key, "deleted outside studyhub", seq))
    return StoreReport(chain, checked, problems)


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one time: what a witness outside the database keeps."""

    seq: int
    head_hash: str
    at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_head_seq": self.seq,
            "audit_head_hash": self.head_hash,
            "at": self.at.isoformat(timespec="seconds"),
        }


def anchor(session: Session) -> Anchor:
    """The current head of the chain (sequence number and hash) with the time, UTC."""
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return Anchor(int(row[0]), str(row[1]), utcnow())


_HASH = re.compile(r"^[0-9a-f]{64}$")


def read_anchor(path: Path) -> tuple[int, str]:
    """The (sequence number, hash) of a head kept with :func:`anchor` (``audit anchor --out``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, digest = data["audit_head_seq"], data["audit_head_hash"]
    except FileNotFoundError:
        raise InputError(
            f"--anchor {str(path)!r} does not exist; give the file written by "
            "studyhub audit anchor --out"
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"--anchor {str(path)!r} is not an anchor file (JSON with audit_head_seq and "
            "audit_head_hash); give the file written by studyhub audit anchor --out"
        ) from None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InputError(
            f"--anchor {str(path)!r}: audit_head_seq is {seq!r}, not a sequence number; give "
            "the file written by studyhub audit anchor --out"
        )
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise InputError(
            f"--anchor {str(path)!r}: audit_head_hash is {digest!r}, not a SHA-256; give the "
            "file written by studyhub audit anchor --out"
        )
    return seq, digest


def check_anchor(session: Session, expected: tuple[int, str]) -> str:
    """Whether the chain still holds the anchored event: one line, starting ``anchor OK`` if so.

    A chain rewritten from some event onwards verifies on its own, but no longer
    holds the event a witness kept (or holds it with another hash).
    """
    seq, digest = expected
    if seq == 0:
        return "anchor OK: the anchor predates every event"
    found = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    if found is None:
        return (
            f"anchor MISMATCH: the anchored event {seq} (hash {digest[:12]}…) is no longer in "
            "the chain: events were deleted and the chain rewritten"
        )
    if found != digest:
        return (
            f"anchor MISMATCH: event {seq} has hash {found[:12]}…, the anchor kept "
            f"{digest[:12]}…: the chain was rewritten from that event or before"
        )
    return f"anchor OK: event {seq} still has hash {digest[:12]}…"
