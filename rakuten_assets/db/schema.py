"""Tables of the project database (SQLAlchemy Core). Alembic migrations create them.

`products` and `products_history` take every row of every load, so they carry no foreign-key
triggers (per-row RI checks made bulk loads ~40% slower): labels are held to the 27 codes by a
CHECK constraint, and `load_id` always names the load that wrote the row in the same
transaction (tests verify that every `load_id` exists in `data_loads`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from rakuten_assets.data.categories import CODES

metadata = MetaData()

# `running` exists only inside a load's transaction; `completed` is a committed load;
# `reverted` is a load undone because a blocking check of `products` failed after it.
LOAD_STATUSES: tuple[str, ...] = ("running", "completed", "reverted")

# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

categories = Table(
    "categories",
    metadata,
    Column("prdtypecode", Integer, primary_key=True, autoincrement=False),
    Column("name_fr", String(120), nullable=False),
    Column("name_en", String(120), nullable=False),
)

data_loads = Table(
    "data_loads",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("batch_name", String(32), nullable=False),
    Column("partition_key", String(8), nullable=False),
    Column("percentage", Integer, nullable=False),
    Column("rows_added", Integer, nullable=False, server_default="0"),
    Column("rows_updated", Integer, nullable=False, server_default="0"),
    Column("rows_deleted", Integer, nullable=False, server_default="0"),
    Column("rows_unchanged", Integer, nullable=False, server_default="0"),
    Column("total_rows", Integer, nullable=False, server_default="0"),
    Column("source_hashes", JSON, nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),
    # Why a load is not (or no longer) completed: the blocking check that reverted it.
    Column("status_reason", Text, nullable=True),
    Column("reverted_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        f"status IN ({', '.join(repr(s) for s in LOAD_STATUSES)})", name="ck_data_loads_status"
    ),
    Index("ix_data_loads_partition_key", "partition_key"),
)

products = Table(
    "products",
    metadata,
    Column("productid", BigInteger, primary_key=True, autoincrement=False),
    Column("imageid", BigInteger, nullable=False),
    Column("designation", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("prdtypecode", Integer, nullable=False),
    Column("partition_key", String(8), nullable=False, index=True),
    Column("source_row", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("load_id", AutoId, nullable=False, index=True),
    CheckConstraint(f"prdtypecode IN ({', '.join(map(str, CODES))})", name="ck_products_label"),
)

products_history = Table(
    "products_history",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("operation", String(6), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("load_id", AutoId, nullable=False),
    Column("productid", BigInteger, nullable=False),
    Column("partition_key", String(8), nullable=False),
    Column("source_row", Integer, nullable=False),
    Column("old_imageid", BigInteger, nullable=True),
    Column("old_designation", Text, nullable=True),
    Column("old_description", Text, nullable=True),
    Column("old_prdtypecode", Integer, nullable=True),
    Column("new_imageid", BigInteger, nullable=True),
    Column("new_designation", Text, nullable=True),
    Column("new_description", Text, nullable=True),
    Column("new_prdtypecode", Integer, nullable=True),
    # Set on the rows written by a revert: the id of the history row this row undoes.
    Column("reverts_id", BigInteger, nullable=True),
    CheckConstraint(
        "operation IN ('INSERT', 'UPDATE', 'DELETE')", name="ck_products_history_operation"
    ),
    Index("ix_products_history_productid_id", "productid", "id"),
)

# The columns a listing version is made of, as stored in products and (old_/new_) history.
VALUE_COLUMNS: tuple[str, ...] = ("imageid", "designation", "description", "prdtypecode")

# Every change of the `production` alias, so promotions and rollbacks can be audited.
model_promotions = Table(
    "model_promotions",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("action", String(16), nullable=False),
    Column("version", String(32), nullable=False),
    Column("previous_version", String(32), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("candidate_f1", Float, nullable=True),
    Column("champion_f1", Float, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    # The challenger replayed on logged production requests before a promotion (rows,
    # agreement, mean confidences, accuracies on corrected requests); null for other actions.
    Column("replay", JSON, nullable=True),
    CheckConstraint(
        "action IN ('promote', 'force', 'rollback')", name="ck_model_promotions_action"
    ),
    Index("ix_model_promotions_model_name_id", "model_name", "id"),
)

# Every prediction served, written asynchronously by the serving workers (monitoring reads it).
inference_log = Table(
    "inference_log",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("designation", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("predicted_class", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("latency_ms", Float, nullable=False),
    # The id every /predict answer carries, so a user can send a correction (/feedback);
    # null on rows logged before it existed.
    Column("prediction_id", String(36), nullable=True),
    Index("ux_inference_log_prediction_id", "prediction_id", unique=True),
)

# Corrections sent by users for served predictions: the class the listing really has.
# One row per prediction; a correction sent again replaces the earlier one.
prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("prediction_id", String(36), nullable=False, unique=True),
    Column("prdtypecode", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    CheckConstraint(
        f"prdtypecode IN ({', '.join(map(str, CODES))})", name="ck_prediction_feedback_label"
    ),
)

# The production model graded on each partition's new rows before any retraining on them
# (`production_model_evaluation`); one row per (partition, model), replaced on re-runs.
model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("partition_key", String(8), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("accuracy", Float, nullable=False),
    Column("weighted_f1", Float, nullable=False),
    Column("macro_f1", Float, nullable=False),
    Column("per_class_f1", JSON, nullable=False),
    # the model's own weighted F1 on its test set, the baseline of the quality check
    Column("model_test_f1", Float, nullable=True),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
    Index("ux_model_evaluations_partition_model", "partition_key", "model_name", unique=True),
)

# Every drift report of `drift_metrics` (the full report as JSON, headline numbers as columns).
drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=True),
    Column("window_end", DateTime(timezone=True), nullable=True),
    Column("window_predictions", Integer, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("verdict", String(20), nullable=False),
    Column("psi_predicted_class", Float, nullable=True),
    Column("js_predicted_class", Float, nullable=True),
    Column("reasons", JSON, nullable=False),
    Column("report", JSON, nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
    CheckConstraint(
        "verdict IN ('drift', 'no_drift', 'not_enough_data')", name="ck_drift_reports_verdict"
    ),
    Index("ix_drift_reports_computed_at", "computed_at"),
)
