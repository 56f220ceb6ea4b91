"""Predictions logged the serving writer's way, and the corrections stored for them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from rakuten_assets.data.categories import CODES
from rakuten_assets.db.schema import prediction_feedback
from serving.inference_log import InferenceLogWriter, LoggedPrediction


def log_predictions(
    engine: Engine, predicted: list[int], at: datetime | None = None, text: str = "listing"
) -> list[str]:
    """Log one prediction per code of `predicted` (the serving writer's way); their ids."""
    ids = [str(uuid.uuid4()) for _ in predicted]
    writer = InferenceLogWriter(lambda: engine).start()
    writer.put_many(
        [
            LoggedPrediction(
                at=at or datetime.now(UTC),
                designation=f"{text} {i}",
                description=None,
                predicted_class=code,
                confidence=0.8,
                model_version="1",
                latency_ms=1.0,
                prediction_id=pid,
            )
            for i, (code, pid) in enumerate(zip(predicted, ids, strict=True))
        ]
    )
    writer.close(timeout=30)
    return ids


def stored(engine: Engine) -> dict[str, int]:
    """prediction_id -> stored code of every row of prediction_feedback."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(prediction_feedback.c.prediction_id, prediction_feedback.c.prdtypecode)
        ).all()
    return dict(rows)


def other(code: int) -> int:
    return next(c for c in CODES if c != code)
