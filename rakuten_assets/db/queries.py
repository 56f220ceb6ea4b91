"""Read side of the audit trail: point-in-time snapshots, load history, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Select, and_, func, insert, select

from rakuten_assets.data.challenge_files import LABELLED_COLUMNS
from rakuten_assets.data.partitions import PARTITION_KEYS, latest_partition, next_partition
from rakuten_assets.db.evaluations import model_evaluations_frame
from rakuten_assets.db.schema import (
    categories,
    data_loads,
    drift_reports,
    inference_log,
    prediction_feedback,
    products,
    products_history,
)


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything is stored in UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _all(bind: Engine | Connection, query: Select) -> list:  # type: ignore[type-arg]
    """Rows of a query, on an engine (its own connection) or inside a caller's transaction."""
    if isinstance(bind, Connection):
        return list(bind.execute(query).all())
    with bind.connect() as connection:
        return list(connection.execute(query).all())


def reverted_load_ids() -> Select:  # type: ignore[type-arg]
    """The ids of reverted loads, as a subquery."""
    return select(data_loads.c.id).where(data_loads.c.status == "reverted")


def snapshot(
    engine: Engine, load_id: int | None = None, at: datetime | None = None
) -> pd.DataFrame:
    """The labelled rows exactly as they were after load `load_id` (or at time `at`).

    Built from `products_history`, not from `products`: rows updated or deleted later come
    back with the values they had then. Sorted by productid; columns are those of a
    labelled listing plus `partition_key` and `first_seen` (the id of the product's first
    history row: the order in which products entered the data).

    A reverted load (a blocking check of `products` failed after it) never happened as far as
    snapshots go: its history rows and those of its revert (both carry its load id) are left
    out, whatever `load_id` or `at` is asked for.
    """
    history = products_history
    conditions = [history.c.load_id.not_in(reverted_load_ids())]
    if load_id is not None:
        conditions.append(history.c.load_id <= load_id)
    if at is not None:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        conditions.append(history.c.at <= at.astimezone(UTC))
    latest = (
        select(
            history.c.productid,
            func.max(history.c.id).label("last_id"),
            func.min(history.c.id).label("first_id"),
        )
        .where(and_(True, *conditions))
        .group_by(history.c.productid)
        .subquery()
    )
    query = (
        select(
            history.c.productid,
            history.c.new_imageid.label("imageid"),
            history.c.new_designation.label("designation"),
            history.c.new_description.label("description"),
            history.c.new_prdtypecode.label("prdtypecode"),
            history.c.partition_key,
            latest.c.first_id.label("first_seen"),
        )
        .join(latest, latest.c.last_id == history.c.id)
        .where(history.c.operation != "DELETE")
        .order_by(history.c.productid)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    frame = pd.DataFrame(rows, columns=[*LABELLED_COLUMNS, "partition_key", "first_seen"])
    return frame.astype(
        {"productid": "int64", "imageid": "int64", "prdtypecode": "int64", "first_seen": "int64"}
    )


def current_products(engine: Engine | Connection, partition_key: str | None = None) -> pd.DataFrame:
    """The `products` table as it is now (or one partition of it), sorted by productid.

    `engine` may be a connection, to read inside a transaction (the blocking checks do).
    """
    query = select(
        *(products.c[name] for name in LABELLED_COLUMNS), products.c.partition_key
    ).order_by(products.c.productid)
    if partition_key is not None:
        query = query.where(products.c.partition_key == partition_key)
    return pd.DataFrame(_all(engine, query), columns=[*LABELLED_COLUMNS, "partition_key"])


def load_history(engine: Engine) -> pd.DataFrame:
    """Every committed load, oldest first, reverted ones included (see `status`)."""
    columns = [
        data_loads.c.id,
        data_loads.c.batch_name,
        data_loads.c.partition_key,
        data_loads.c.percentage,
        data_loads.c.rows_added,
        data_loads.c.rows_updated,
        data_loads.c.rows_deleted,
        data_loads.c.rows_unchanged,
        data_loads.c.total_rows,
        data_loads.c.dagster_run_id,
        data_loads.c.started_at,
        data_loads.c.completed_at,
        data_loads.c.status,
        data_loads.c.source_hashes,
        data_loads.c.status_reason,
        data_loads.c.reverted_at,
    ]
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(data_loads.c.id)).all()
    frame = pd.DataFrame(rows, columns=[c.name for c in columns])
    for column in ("started_at", "completed_at", "reverted_at"):
        frame[column] = [_as_utc(v) for v in frame[column]]
    return frame


@dataclass(frozen=True)
class LoadStatus:
    load_id: int
    partition_key: str
    status: str  # completed, or reverted (a blocking check of products failed after it)
    reason: str | None
    dagster_run_id: str | None


def load_status(engine: Engine, load_id: int) -> LoadStatus | None:
    """The status of one load (None when no load has this id)."""
    columns = (
        data_loads.c.id,
        data_loads.c.partition_key,
        data_loads.c.status,
        data_loads.c.status_reason,
        data_loads.c.dagster_run_id,
    )
    rows = _all(engine, select(*columns).where(data_loads.c.id == load_id))
    return LoadStatus(*rows[0]) if rows else None


def latest_load_id(engine: Engine, partition_key: str) -> int | None:
    """The last completed load of a partition (the data "as of" that partition).

    Reverted loads do not count: a partition whose only load was reverted has none.
    """
    query = select(func.max(data_loads.c.id)).where(
        data_loads.c.partition_key == partition_key, data_loads.c.status == "completed"
    )
    with engine.connect() as connection:
        value = connection.execute(query).scalar_one()
    return int(value) if value is not None else None


@dataclass(frozen=True)
class ClassCount:
    prdtypecode: int
    name_fr: str
    name_en: str
    rows: int


def class_counts(engine: Engine) -> list[ClassCount]:
    """Rows per class in `products` now, with the category names, largest first."""
    count = func.count(products.c.productid)
    query = (
        select(categories.c.prdtypecode, categories.c.name_fr, categories.c.name_en, count)
        .select_from(
            categories.outerjoin(products, products.c.prdtypecode == categories.c.prdtypecode)
        )
        .group_by(categories.c.prdtypecode, categories.c.name_fr, categories.c.name_en)
        .order_by(count.desc(), categories.c.prdtypecode)
    )
    with engine.connect() as connection:
        return [ClassCount(*row) for row in connection.execute(query).all()]


def partition_row_count(engine: Engine, partition_key: str) -> int:
    query = select(func.count()).where(products.c.partition_key == partition_key)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def inference_log_frame(
    engine: Engine, since: datetime | None = None, last_n: int | None = None
) -> pd.DataFrame:
    """Predictions served (oldest first), optionally since a time and/or only the last N."""
    query = select(inference_log).order_by(inference_log.c.id.desc())
    if since is not None:
        query = query.where(inference_log.c.at >= since)
    if last_n is not None:
        query = query.limit(last_n)
    with engine.connect() as connection:
        rows = connection.execute(query).all()[::-1]
    frame = pd.DataFrame(rows, columns=[c.name for c in inference_log.columns])
    frame["at"] = [_as_utc(v) for v in frame["at"]]
    return frame


def export_inference_log(engine: Engine, path: Path) -> int:
    """The seed's CSV: timestamp,designation,description,predicted_class,confidence,
    model_version. Returns the number of rows."""
    frame = inference_log_frame(engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame(
        {
            "timestamp": [at.strftime("%Y-%m-%d %H:%M:%S") for at in frame["at"]],
            "designation": frame["designation"],
            "description": frame["description"],
            "predicted_class": frame["predicted_class"],
            # float first: an empty log reads back as an object column, which cannot round
            "confidence": frame["confidence"].astype(float).round(6),
            "model_version": frame["model_version"],
        }
    )
    out.to_csv(path, index=False)
    return len(out)


def insert_drift_report(engine: Engine, values: dict[str, object]) -> int:
    """Store one drift report (one transaction); returns its id."""
    with engine.begin() as connection:
        result = connection.execute(insert(drift_reports).values(**values))
        return int(result.inserted_primary_key[0])


def drift_reports_frame(engine: Engine, last_n: int | None = None) -> pd.DataFrame:
    """Drift reports, oldest first (optionally only the last N)."""
    query = select(drift_reports).order_by(drift_reports.c.id.desc())
    if last_n is not None:
        query = query.limit(last_n)
    with engine.connect() as connection:
        rows = connection.execute(query).all()[::-1]
    frame = pd.DataFrame(rows, columns=[c.name for c in drift_reports.columns])
    for column in ("computed_at", "window_start", "window_end"):
        frame[column] = [_as_utc(v) for v in frame[column]]
    return frame


def replay_requests(engine: Engine, model_version: str, rows: int) -> pd.DataFrame:
    """The last `rows` requests logged as answered by `model_version`, newest first, with
    the class a user sent for them (`corrected_class`, null without a correction)."""
    query = (
        select(
            inference_log.c.id,
            inference_log.c.designation,
            inference_log.c.description,
            inference_log.c.predicted_class,
            inference_log.c.confidence,
            prediction_feedback.c.prdtypecode.label("corrected_class"),
        )
        .select_from(
            inference_log.outerjoin(
                prediction_feedback,
                prediction_feedback.c.prediction_id == inference_log.c.prediction_id,
            )
        )
        .where(inference_log.c.model_version == str(model_version))
        .order_by(inference_log.c.id.desc())
        .limit(max(int(rows), 0))
    )
    columns = ["id", "designation", "description", "predicted_class", "confidence"]
    frame = pd.DataFrame(_all(engine, query), columns=[*columns, "corrected_class"])
    frame["corrected_class"] = frame["corrected_class"].astype("Int64")
    return frame


def _completed_partitions(history: pd.DataFrame) -> set[str]:
    # a reverted load (a blocking check failed after it) leaves its partition unloaded
    return set(history.loc[history["status"] == "completed", "partition_key"])


def loaded_partitions(connection: Connection) -> set[str]:
    """Partitions with a completed load (a reverted load leaves its partition unloaded)."""
    rows = connection.execute(
        select(data_loads.c.partition_key).where(data_loads.c.status == "completed").distinct()
    )
    return {row.partition_key for row in rows}


def latest_loaded_partition(engine: Engine) -> str | None:
    """The highest loaded partition (None before the first load): what a dataset or a
    training is built from when no partition is named."""
    with engine.connect() as connection:
        return latest_partition(loaded_partitions(connection))


def status_report(engine: Engine) -> dict[str, Any]:
    """What `rakuten status` shows, as JSON-ready values: the loaded percentage (the
    partitions loaded without a gap from 040), rows per class and every load, oldest first."""
    history = load_history(engine)
    loaded = _completed_partitions(history)
    percentage = 0
    for key in PARTITION_KEYS:
        if key not in loaded:
            break
        percentage = int(key)
    classes = class_counts(engine)
    loads = [
        {
            "id": int(row.id),
            "batch_name": row.batch_name,
            "partition_key": row.partition_key,
            "percentage": int(row.percentage),
            "rows_added": int(row.rows_added),
            "rows_updated": int(row.rows_updated),
            "rows_deleted": int(row.rows_deleted),
            "rows_unchanged": int(row.rows_unchanged),
            "total_rows": int(row.total_rows),
            "status": row.status,
            "dagster_run_id": row.dagster_run_id,
            "started_at": row.started_at.isoformat() if row.started_at else None,
            "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "source_hashes": row.source_hashes,
        }
        for row in history.itertuples()
    ]
    return {
        "database": engine.url.render_as_string(),
        "loaded_percentage": percentage,
        "loaded_partitions": [key for key in PARTITION_KEYS if key in loaded],
        "next_partition": next_partition(loaded),
        "total_rows": sum(c.rows for c in classes),
        "classes": [
            {
                "prdtypecode": c.prdtypecode,
                "name_fr": c.name_fr,
                "name_en": c.name_en,
                "rows": c.rows,
            }
            for c in classes
        ],
        "loads": loads,
    }


def model_evaluation_records(engine: Engine, model_name: str) -> list[dict[str, Any]]:
    """The evaluations of one registered model as JSON-ready records, in partition order
    (`rakuten evaluations`): no row id, a missing test F1 as None, times in ISO format."""
    frame = model_evaluations_frame(engine, model_name)
    return [
        {
            # a missing test F1 reads back as NaN in a float column
            **{k: None if v != v else v for k, v in row.items() if k != "id"},
            "evaluated_at": row["evaluated_at"].isoformat(),
        }
        for row in frame.to_dict("records")
    ]
