"""The modality values of a DICOM stimulus, for re-windowing its plain image.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stimulus", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stimulus", schema=None) as batch_op:
        batch_op.drop_column("original_raw")
