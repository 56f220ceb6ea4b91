"""The inference-log writer stores rows on SQLite and PostgreSQL, and drops (and counts)
instead of blocking when the queue is full or the database is down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine

from rakuten_assets.db.queries import inference_log_frame
from serving.inference_log import InferenceLogWriter, LoggedPrediction


def record(n: int, at: datetime) -> LoggedPrediction:
    return LoggedPrediction(
        at=at,
        designation=f"Piscine tubulaire n°{n} l'été",
        description=None if n % 2 else "<p>Pompe &amp; bâche</p>",
        predicted_class=2583,
        confidence=0.5 + n / 1000,
        model_version="7",
        latency_ms=1.25,
    )


def test_writer_stores_rows_on_each_backend(engine: Engine) -> None:
    written: list[int] = []
    at = datetime(2026, 11, 28, 10, 30, 15, 123456, tzinfo=UTC)
    writer = InferenceLogWriter(lambda: engine, on_write=written.append).start()
    writer.put_many([record(n, at) for n in range(1_200)])
    writer.put(record(1_200, at))
    writer.close(timeout=30)
    frame = inference_log_frame(engine)
    assert len(frame) == 1_201 and sum(written) == 1_201
    first = frame.iloc[0]
    assert first["at"] == at
    assert first["designation"] == "Piscine tubulaire n°0 l'été"
    assert first["description"] == "<p>Pompe &amp; bâche</p>"
    assert frame.iloc[1]["description"] is None
    assert first["predicted_class"] == 2583 and first["model_version"] == "7"
    assert frame["confidence"].tolist() == pytest.approx([0.5 + n / 1000 for n in range(1_201)])


def test_full_queue_drops_and_counts_instead_of_blocking(engine: Engine) -> None:
    dropped: list[int] = []
    writer = InferenceLogWriter(lambda: engine, capacity=10, on_drop=dropped.append)
    # not started: nothing drains the queue
    writer.put_many([record(n, datetime.now(UTC)) for n in range(25)])
    writer.put(record(25, datetime.now(UTC)))
    assert sum(dropped) == 16


def test_database_down_drops_and_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dropped: list[int] = []
    down = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    writer = InferenceLogWriter(lambda: down, on_drop=dropped.append).start()
    writer.put_many([record(n, datetime.now(UTC)) for n in range(5)])
    writer.close(timeout=30)
    assert sum(dropped) == 5
