"""The production model graded on each partition's new rows (`model_evaluations`).

`production_model_evaluation` writes one row per (partition, registered model): evaluating a
partition again replaces its row (delete then insert, in one transaction), so re-running the
asset is idempotent. `model_evaluations_frame` reads the series back, in partition order.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, insert, select

from rakuten_assets.db.schema import model_evaluations

COLUMNS: tuple[str, ...] = tuple(
    column.name for column in model_evaluations.columns if column.name != "id"
)


def replace_model_evaluation(engine: Engine, values: dict[str, Any]) -> int:
    """Store the evaluation of (values["partition_key"], values["model_name"]), replacing any
    earlier one of that pair, in one transaction; returns the new row's id."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not columns of model_evaluations: {sorted(unknown)}")
    pair = (
        model_evaluations.c.partition_key == values["partition_key"],
        model_evaluations.c.model_name == values["model_name"],
    )
    with engine.begin() as connection:
        connection.execute(delete(model_evaluations).where(*pair))
        result = connection.execute(insert(model_evaluations).values(**values))
        return int(result.inserted_primary_key[0])


def model_evaluations_frame(engine: Engine, model_name: str | None = None) -> pd.DataFrame:
    """Every stored evaluation (of one registered model, or all), by partition then model."""
    query = select(model_evaluations).order_by(
        model_evaluations.c.partition_key, model_evaluations.c.model_name
    )
    if model_name is not None:
        query = query.where(model_evaluations.c.model_name == model_name)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    frame = pd.DataFrame(rows, columns=[c.name for c in model_evaluations.columns])
    # SQLite returns naive datetimes; everything is stored in UTC.
    frame["evaluated_at"] = [
        value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
        for value in frame["evaluated_at"]
    ]
    return frame
