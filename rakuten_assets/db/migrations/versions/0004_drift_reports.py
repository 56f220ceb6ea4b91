"""Drift reports of the `drift_metrics` asset.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_predictions", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("psi_predicted_class", sa.Float(), nullable=True),
        sa.Column("js_predicted_class", sa.Float(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "verdict IN ('drift', 'no_drift', 'not_enough_data')",
            name="ck_drift_reports_verdict",
        ),
    )
    op.create_index("ix_drift_reports_computed_at", "drift_reports", ["computed_at"])


def downgrade() -> None:
    op.drop_table("drift_reports")
