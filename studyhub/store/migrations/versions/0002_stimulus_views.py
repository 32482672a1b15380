"""Stimulus views for the viewer (original and overlay layer), seed and duration.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stimulus", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_png", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("overlay_png", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("seed", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("duration_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stimulus", schema=None) as batch_op:
        batch_op.drop_column("duration_ms")
        batch_op.drop_column("seed")
        batch_op.drop_column("overlay_png")
        batch_op.drop_column("original_png")
