"""Audit trail of the production alias: model_promotions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_promotions",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("previous_version", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidate_f1", sa.Float(), nullable=True),
        sa.Column("champion_f1", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('promote', 'force', 'rollback')", name="ck_model_promotions_action"
        ),
    )
    op.create_index(
        "ix_model_promotions_model_name_id", "model_promotions", ["model_name", "id"]
    )


def downgrade() -> None:
    op.drop_table("model_promotions")
