"""Consent records, single sign-on identities, one original answer per assignment.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ORIGINAL = sa.text("supersedes_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=63), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("statement_sha256", sa.String(length=64), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rater_id"], ["rater.id"], name=op.f("fk_consent_rater_id_rater")),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_consent_study_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint(
            "rater_id", "statement_sha256", name=op.f("uq_consent_rater_id_statement_sha256")
        ),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_study_id"), ["study_id"], unique=False)
    with op.batch_alter_table("rater", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sso_identity", sa.String(length=320), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_rater_study_id_sso_identity"), ["study_id", "sso_identity"]
        )
    op.create_index(
        "uq_response_original_answer",
        "response",
        ["assignment_id"],
        unique=True,
        sqlite_where=_ORIGINAL,
        postgresql_where=_ORIGINAL,
    )


def downgrade() -> None:
    op.drop_index("uq_response_original_answer", table_name="response")
    with op.batch_alter_table("rater", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_rater_study_id_sso_identity"), type_="unique")
        batch_op.drop_column("sso_identity")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_study_id"))
    op.drop_table("consent")
