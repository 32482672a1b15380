"""Audit events record the digests of the data rows they stand for.

Adds ``audit_event.rows``. A database that already holds data gets one event,
``bind_existing_rows``, recording the digest of every existing row, so that
``studyhub audit verify`` can check those rows from now on. The event says
honestly what it is: the rows are bound as they were found at the upgrade, not
as they were first written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows", sa.Text(), nullable=True))
    _bind_existing_rows()


def _bind_existing_rows() -> None:
    from sqlalchemy.orm import Session

    from studyhub.store.audit import _canonical, event_hash
    from studyhub.store.models import utcnow
    from studyhub.store.rows import BOUND_TABLES, iter_table_digests

    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    session = Session(bind=bind)
    digests: dict[str, dict[str, Any]] = {}
    for name in BOUND_TABLES:
        if name not in existing:
            continue
        columns = [c["name"] for c in inspector.get_columns(name)]
        rows = {key: d.to_json() for key, d in iter_table_digests(session, name, columns)}
        if rows:
            digests[name] = rows
    if not digests:
        return
    head = bind.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    seq, prev_hash = int(head[0]) + 1, str(head[1])
    created_at = utcnow()
    rows_text = _canonical(digests)
    payload = _canonical(
        {
            "migration": revision,
            "note": "rows that existed before row binding, bound as found at this upgrade",
            "rows": {name: len(rows) for name, rows in digests.items()},
        }
    )
    digest = event_hash(
        seq=seq,
        study_id=None,
        actor="studyhub migration 0006",
        action="bind_existing_rows",
        payload=payload,
        created_at=created_at,
        prev_hash=prev_hash,
        rows=rows_text,
    )
    from studyhub.store.models import AuditEvent

    # The model's table (its UTC time type included): audit_event has every column by now.
    bind.execute(
        sa.insert(AuditEvent).values(
            seq=seq,
            study_id=None,
            actor="studyhub migration 0006",
            action="bind_existing_rows",
            payload=payload,
            rows=rows_text,
            created_at=created_at,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    bind.execute(
        sa.text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
        {"seq": seq, "hash": digest},
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("rows")
