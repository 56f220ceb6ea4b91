"""The inference-log writer on SQLite and PostgreSQL: one row the database refuses costs only
itself, never the rest of its batch; a database that is down drops and counts, never raises."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from rakuten_assets.db.engine import connect
from rakuten_assets.db.queries import export_inference_log, inference_log_frame
from serving.inference_log import InferenceLogWriter, LoggedPrediction


def record(designation: str) -> LoggedPrediction:
    return LoggedPrediction(
        at=datetime.now(UTC),
        designation=designation,
        description=None,
        predicted_class=2583,
        confidence=0.9,
        model_version="1",
        latency_ms=0.3,
    )


class Counts:
    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0

    def write(self, n: int) -> None:
        self.written += n

    def drop(self, n: int) -> None:
        self.dropped += n


def test_one_unstorable_row_costs_only_itself(engine: Engine) -> None:
    counts = Counts()
    writer = InferenceLogWriter(
        lambda: engine, batch_size=100, on_write=counts.write, on_drop=counts.drop
    ).start()
    batch = [record(f"listing {i}") for i in range(100)]
    # NUL: PostgreSQL refuses it; a lone surrogate: no UTF-8 encoding (refused by psycopg)
    batch[37] = record("bad \x00 row")
    batch[80] = record("bad \ud800 row")
    writer.put_many(batch)
    writer.close(timeout=30)
    stored = set(inference_log_frame(engine)["designation"])
    good = {r.designation for i, r in enumerate(batch) if i not in (37, 80)}
    assert good <= stored
    if engine.dialect.name == "postgresql":
        assert (counts.written, counts.dropped) == (98, 2)
    else:  # SQLite stores NUL as it came; the surrogate has no UTF-8 encoding there either
        assert (counts.written, counts.dropped) == (99, 1)
        assert "bad \x00 row" in stored


def test_a_database_that_is_down_drops_and_counts_without_retrying_row_by_row(
    tmp_path,
) -> None:
    counts = Counts()
    attempts = []

    def unreachable() -> Engine:
        attempts.append(1)
        return connect("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")

    writer = InferenceLogWriter(
        unreachable, batch_size=50, on_write=counts.write, on_drop=counts.drop
    ).start()
    writer.put_many([record(f"listing {i}") for i in range(50)])
    writer.close(timeout=30)
    assert (counts.written, counts.dropped) == (0, 50)
    assert len(attempts) == 1  # one failure for the batch, not one per half


def test_an_empty_log_exports_the_header_only(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`rakuten export-inference-log` before any prediction: a CSV with its header, no crash."""
    path = tmp_path / "monitoring" / "inference_log.csv"
    assert export_inference_log(engine, path) == 0
    assert path.read_text().splitlines() == [
        "timestamp,designation,description,predicted_class,confidence,model_version"
    ]
