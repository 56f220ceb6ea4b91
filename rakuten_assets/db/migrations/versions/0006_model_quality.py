"""Model quality: graded partitions, user corrections, challenger replay.

- `model_evaluations`: the production model scored on each partition's new rows.
- `inference_log.prediction_id` (unique, null on older rows) and `prediction_feedback`.
- `model_promotions.replay`: the challenger replayed on logged production requests.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rakuten_assets.data.categories import CODES

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_evaluations",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("partition_key", sa.String(8), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("weighted_f1", sa.Float(), nullable=False),
        sa.Column("macro_f1", sa.Float(), nullable=False),
        sa.Column("per_class_f1", sa.JSON(), nullable=False),
        sa.Column("model_test_f1", sa.Float(), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
    )
    op.create_index(
        "ux_model_evaluations_partition_model",
        "model_evaluations",
        ["partition_key", "model_name"],
        unique=True,
    )
    # A nullable column without a default: no rewrite of the (large) log table.
    op.add_column("inference_log", sa.Column("prediction_id", sa.String(36), nullable=True))
    op.create_index(
        "ux_inference_log_prediction_id", "inference_log", ["prediction_id"], unique=True
    )
    op.create_table(
        "prediction_feedback",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(36), nullable=False, unique=True),
        sa.Column("prdtypecode", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"prdtypecode IN ({', '.join(map(str, CODES))})", name="ck_prediction_feedback_label"
        ),
    )
    op.create_index(
        "ix_prediction_feedback_received_at", "prediction_feedback", ["received_at"]
    )
    op.add_column("model_promotions", sa.Column("replay", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_promotions", "replay")
    op.drop_index("ix_prediction_feedback_received_at", table_name="prediction_feedback")
    op.drop_table("prediction_feedback")
    op.drop_index("ux_inference_log_prediction_id", table_name="inference_log")
    op.drop_column("inference_log", "prediction_id")
    op.drop_index("ux_model_evaluations_partition_model", table_name="model_evaluations")
    op.drop_table("model_evaluations")
