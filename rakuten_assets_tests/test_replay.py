"""Challenger replay: the numbers on a known log, the query behind it, and the promotion rule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert

from rakuten_assets.db.queries import replay_requests
from rakuten_assets.db.schema import inference_log, prediction_feedback
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.registry import decide_promotion
from rakuten_assets.ml.replay import ReplayResult, replay, skipped


def known_log(trained: TrainingResult, frame: pd.DataFrame) -> pd.DataFrame:
    """200 requests: production agreed with the challenger on the even rows only; the first
    50 carry a user correction (their true class)."""
    rows = frame.head(200).reset_index(drop=True)
    challenger = trained.pipeline.predict(rows[["designation", "description"]])
    classes = list(trained.pipeline.classes_)
    other = [classes[(classes.index(code) + 1) % len(classes)] for code in challenger]
    logged = np.where(np.arange(len(rows)) % 2 == 0, challenger, other)
    corrected = pd.array([*rows["prdtypecode"].head(50), *[pd.NA] * 150], dtype="Int64")
    return pd.DataFrame(
        {
            "id": np.arange(len(rows), 0, -1),
            "designation": rows["designation"],
            "description": rows["description"],
            "predicted_class": logged,
            "confidence": np.linspace(0.5, 0.9, len(rows)),
            "corrected_class": corrected,
        }
    )


def test_replay_numbers_on_a_known_log(trained: TrainingResult, synth_frame: pd.DataFrame) -> None:
    log = known_log(trained, synth_frame)
    result = replay(trained.pipeline, log)

    challenger = trained.pipeline.predict(log[["designation", "description"]])
    truth = log["corrected_class"].head(50).to_numpy(dtype=np.int64)
    assert result.rows == 200
    assert result.agreement == pytest.approx(0.5)  # even rows only, by construction
    assert result.champion_confidence == pytest.approx(0.7)
    probabilities = trained.pipeline.predict_proba(log[["designation", "description"]])
    assert result.challenger_confidence == pytest.approx(probabilities.max(axis=1).mean())
    assert result.feedback_rows == 50
    assert result.challenger_accuracy == pytest.approx((challenger[:50] == truth).mean())
    logged = log["predicted_class"].head(50).to_numpy()
    assert result.champion_accuracy == pytest.approx((logged == truth).mean())
    assert result.skipped is None
    assert "agreement 0.500" in result.summary() and "on 50 corrected" in result.summary()
    assert set(result.mlflow_metrics()) >= {"replay_agreement", "replay_challenger_accuracy"}


def test_without_corrections_there_is_no_accuracy(
    trained: TrainingResult, synth_frame: pd.DataFrame
) -> None:
    log = known_log(trained, synth_frame).assign(corrected_class=pd.NA)
    log["corrected_class"] = log["corrected_class"].astype("Int64")
    result = replay(trained.pipeline, log)
    assert result.feedback_rows == 0
    assert result.champion_accuracy is None and result.challenger_accuracy is None
    assert "replay_champion_accuracy" not in result.mlflow_metrics()


def test_an_empty_log_is_skipped_with_a_reason(trained: TrainingResult) -> None:
    empty = pd.DataFrame(
        columns=["id", "designation", "description", "predicted_class", "confidence"]
    ).assign(corrected_class=pd.array([], dtype="Int64"))
    result = replay(trained.pipeline, empty)
    assert result.rows == 0 and result.agreement is None
    assert result.summary() == "replay skipped: no logged request of the production version"


def replayed(agreement: float | None) -> ReplayResult:
    if agreement is None:
        return skipped("no logged request of production v1")
    return ReplayResult(1000, agreement, 0.8, 0.82, 0, None, None)


@pytest.mark.parametrize(
    ("agreement", "minimum", "promote"),
    [
        (0.95, None, True),  # off by default: recorded, never blocks
        (0.40, None, True),
        (0.95, 0.9, True),
        (0.85, 0.9, False),  # disagrees with production more than allowed
        (None, 0.9, True),  # nothing to replay: no evidence against the challenger
    ],
)
def test_the_minimum_agreement_refuses_a_challenger_that_disagrees(
    agreement: float | None, minimum: float | None, promote: bool
) -> None:
    decision = decide_promotion(0.9, 0.88, 0.7, 0.0, "1", replayed(agreement), minimum)
    assert decision.promote is promote
    assert decision.replay is not None and decision.replay["agreement"] == agreement
    if not promote:
        assert any("replay agreement 0.850 < minimum 0.9" in r for r in decision.reasons)


def test_replay_requests_reads_the_newest_rows_of_one_version_with_their_corrections(
    engine: Engine,
) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    rows = [
        {
            "at": start + timedelta(seconds=n),
            "designation": f"listing {n}",
            "description": None if n % 3 else f"text {n}",
            "predicted_class": 2583,
            "confidence": 0.5,
            "model_version": "1" if n < 20 else "2",
            "latency_ms": 1.0,
            "prediction_id": ids[n],
        }
        for n in range(30)
    ]
    with engine.begin() as connection:
        connection.execute(insert(inference_log), rows)
        connection.execute(
            insert(prediction_feedback),
            [
                {"prediction_id": ids[n], "prdtypecode": 10, "received_at": start}
                for n in (18, 19, 25)
            ],
        )

    frame = replay_requests(engine, "1", 5)
    assert list(frame["designation"]) == [f"listing {n}" for n in (19, 18, 17, 16, 15)]
    assert frame["corrected_class"].head(2).tolist() == [10, 10]
    assert frame["corrected_class"].iloc[2:].isna().all()
    assert frame["corrected_class"].notna().sum() == 2  # 25 is version 2's
    assert len(replay_requests(engine, "1", 5_000)) == 20
    assert replay_requests(engine, "3", 10).empty
