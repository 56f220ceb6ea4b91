"""The serving path without the server: the compiled classifier gives the pipeline's own
probabilities, and the inference-log writer stores rows on SQLite and PostgreSQL, drops
(and counts) instead of blocking when the queue is full or the database is down."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine

from rakuten_assets.db.queries import inference_log_frame
from rakuten_assets.ml.inference import PROBES, CompiledClassifier, compile_pipeline
from rakuten_assets.ml.model import TrainingParams, TrainingResult, build_pipeline
from serving.inference_log import InferenceLogWriter, LoggedPrediction


def listings_of(frame: pd.DataFrame) -> list[tuple[str, str | None]]:
    descriptions = frame["description"].astype(object).where(frame["description"].notna(), None)
    return list(zip(frame["designation"], descriptions, strict=True))


def test_compiled_classifier_reproduces_the_pipeline(
    trained: TrainingResult, synth_frame: pd.DataFrame
) -> None:
    sample = synth_frame.sample(3_000, random_state=0)
    compiled = compile_pipeline(trained.pipeline)
    assert isinstance(compiled, CompiledClassifier)
    expected = trained.pipeline.predict_proba(sample[["designation", "description"]])
    actual = compiled.predict_proba(listings_of(sample))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert compiled.classes == tuple(int(c) for c in trained.pipeline.classes_)


def test_compiled_classifier_handles_edge_listings(trained: TrainingResult) -> None:
    compiled = compile_pipeline(trained.pipeline)
    edge = [("", None), ("!!!", "&amp; <br />"), ("a", "b"), ("é" * 5_000, None)]
    frame = pd.DataFrame(edge, columns=["designation", "description"])
    np.testing.assert_allclose(
        compiled.predict_proba(edge), trained.pipeline.predict_proba(frame), atol=1e-5
    )
    assert compiled.predict_proba(edge).sum(axis=1) == pytest.approx([1.0] * len(edge))


def test_pipelines_it_cannot_reproduce_are_served_as_they_are(trained: TrainingResult) -> None:
    # the default pipeline's shape with binary word counts, which the fast path does not do
    params = TrainingParams(min_df=1, classifier="logistic_regression")
    pipeline = build_pipeline(params).set_params(features__words__binary=True)
    frame = pd.DataFrame(list(PROBES), columns=["designation", "description"])
    pipeline.fit(frame, trained.pipeline.classes_[: len(PROBES)])
    served = compile_pipeline(pipeline)
    assert not served.compiled
    np.testing.assert_allclose(served.predict_proba(PROBES), pipeline.predict_proba(frame))


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
