"""Reading: expected answers of catch items, and sign-in attempts for throttling.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expected", sa.JSON(), nullable=True))
    op.create_table(
        "auth_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=63), nullable=True),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_attempt")),
    )
    with op.batch_alter_table("auth_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_attempt_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_attempt_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_attempt_study_id"))
        batch_op.drop_index(batch_op.f("ix_auth_attempt_key"))
    op.drop_table("auth_attempt")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_column("expected")
