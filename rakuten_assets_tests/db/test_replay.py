"""Challenger replay: the numbers on a known log, the query behind it, and the promotion rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from rakuten_assets.cli import app
from rakuten_assets.cli import output as cli  # the console the commands print on
from rakuten_assets.db.queries import replay_requests
from rakuten_assets.db.schema import inference_log, model_promotions, prediction_feedback
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.registry import ModelRegistry, RegistryError, decide_promotion
from rakuten_assets.ml.replay import ReplayResult, replay, skipped


def known_log(small_trained: TrainingResult, frame: pd.DataFrame) -> pd.DataFrame:
    """200 requests: production agreed with the challenger on the even rows only; the first
    50 carry a user correction (their true class)."""
    rows = frame.head(200).reset_index(drop=True)
    challenger = small_trained.pipeline.predict(rows[["designation", "description"]])
    classes = list(small_trained.pipeline.classes_)
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


def write_log(engine: Engine, log: pd.DataFrame, version: str) -> None:
    """`log` as `inference_log` rows answered by `version` (its last row the newest), and its
    corrections as `prediction_feedback` rows; plus newer requests of another version, which
    a replay against `version` must not read."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(len(log) + 5)]
    rows = [
        {
            "at": start + timedelta(seconds=n),
            "designation": str(row.designation),
            "description": None if pd.isna(row.description) else str(row.description),
            "predicted_class": int(row.predicted_class),
            "confidence": float(row.confidence),
            "model_version": version,
            "latency_ms": 1.0,
            "prediction_id": ids[n],
        }
        for n, row in enumerate(log.itertuples())
    ]
    rows += [
        {**rows[-1], "model_version": f"{version}0", "prediction_id": ids[len(log) + n]}
        for n in range(5)
    ]
    feedback = [
        {"prediction_id": ids[n], "prdtypecode": int(code), "received_at": start}
        for n, code in enumerate(log["corrected_class"])
        if not pd.isna(code)
    ]
    feedback.append({"prediction_id": ids[-1], "prdtypecode": 10, "received_at": start})
    with engine.begin() as connection:
        connection.execute(insert(inference_log), rows)
        connection.execute(insert(prediction_feedback), feedback)


def test_replay_numbers_on_a_known_log(
    engine: Engine, small_trained: TrainingResult, synth_frame: pd.DataFrame
) -> None:
    log = known_log(small_trained, synth_frame)
    write_log(engine, log, "1")
    result = replay(small_trained.pipeline, replay_requests(engine, "1", 5_000))

    # expected numbers from the construction, not from the code under test
    inputs = log[["designation", "description"]]
    challenger = small_trained.pipeline.predict(inputs)
    truth = log["corrected_class"].head(50).to_numpy(dtype=np.int64)
    assert result.rows == 200
    assert result.agreement == pytest.approx(0.5)  # even rows only, by construction
    assert result.champion_confidence == pytest.approx(0.7)  # mean of linspace(0.5, 0.9)
    probabilities = small_trained.pipeline.predict_proba(inputs)
    assert result.challenger_confidence == pytest.approx(probabilities.max(axis=1).mean())
    assert result.feedback_rows == 50
    assert result.challenger_accuracy == pytest.approx((challenger[:50] == truth).mean())
    logged = log["predicted_class"].head(50).to_numpy()
    assert result.champion_accuracy == pytest.approx((logged == truth).mean())
    assert result.challenger_accuracy > 0 and result.champion_accuracy < 1  # not degenerate
    assert result.skipped is None
    assert "agreement 0.500" in result.summary() and "on 50 corrected" in result.summary()
    assert set(result.mlflow_metrics()) >= {"replay_agreement", "replay_challenger_accuracy"}

    # N is settable: the newest 100 requests, none of them corrected
    newest = replay(small_trained.pipeline, replay_requests(engine, "1", 100), batch_rows=30)
    assert newest.rows == 100 and newest.agreement == pytest.approx(0.5)
    assert newest.champion_confidence == pytest.approx(log["confidence"].tail(100).mean())
    assert newest.feedback_rows == 0
    assert newest.champion_accuracy is None and newest.challenger_accuracy is None


def test_without_corrections_there_is_no_accuracy(
    small_trained: TrainingResult, synth_frame: pd.DataFrame
) -> None:
    log = known_log(small_trained, synth_frame).assign(corrected_class=pd.NA)
    log["corrected_class"] = log["corrected_class"].astype("Int64")
    result = replay(small_trained.pipeline, log)
    assert result.feedback_rows == 0
    assert result.champion_accuracy is None and result.challenger_accuracy is None
    assert "replay_champion_accuracy" not in result.mlflow_metrics()


def test_an_empty_log_is_skipped_with_a_reason(small_trained: TrainingResult) -> None:
    empty = pd.DataFrame(
        columns=["id", "designation", "description", "predicted_class", "confidence"]
    ).assign(corrected_class=pd.array([], dtype="Int64"))
    result = replay(small_trained.pipeline, empty)
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


def test_the_replay_is_recorded_and_can_refuse_a_challenger(
    engine: Engine,
    database_url: str,
    small_trained: TrainingResult,
    synth_frame: pd.DataFrame,
    mlflow_store: dict[str, str],
    logged_small_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The steps of `registered_model_version` on a real registry and database: production
    v1 answered a known log; v2 (the same pipeline) is replayed on it, refused under a minimum
    agreement, promoted without one; v3 has nothing to replay (production v2 logged nothing)."""
    registry = ModelRegistry(mlflow_store["tracking_uri"], f"replay-{uuid.uuid4().hex[:8]}", engine)
    uri, run_id = logged_small_model

    def register() -> str:
        return str(registry.register(uri, run_id, {"partition": "040"}).version)

    v1 = register()
    registry.promote(v1, decide_promotion(0.9, None, 0.7), actor="test")
    log = known_log(small_trained, synth_frame)
    write_log(engine, log, v1)

    v2 = register()
    result = registry.replay_challenger(v2, run_id, v1)  # v2 loaded from the registry
    assert (result.rows, result.feedback_rows) == (200, 50)
    assert result.agreement == pytest.approx(0.5)
    run = mlflow.MlflowClient(mlflow_store["tracking_uri"]).get_run(run_id)
    assert run.data.metrics["replay_agreement"] == pytest.approx(0.5)
    assert run.data.metrics["replay_rows"] == 200
    tags = registry.version(v2).tags
    assert tags["replay_agreement"] == "0.5000" and tags["replay_rows"] == "200"
    assert tags["replay"].startswith("replayed 200 production request(s): agreement 0.500")

    refused = decide_promotion(0.9, 0.9, 0.7, 0.0, v1, result, min_replay_agreement=0.9)
    assert not refused.promote
    assert "replay agreement 0.500 < minimum 0.9" in "; ".join(refused.reasons)
    with pytest.raises(RegistryError, match=r"replay agreement 0\.500 < minimum"):
        registry.promote(v2, refused, actor="test")
    assert str(registry.production().version) == v1  # v2 stays challenger
    assert str(registry.alias("challenger").version) == v2

    accepted = decide_promotion(0.9, 0.9, 0.7, 0.0, v1, result)  # off by default
    assert accepted.promote
    registry.promote(v2, accepted, actor="test")

    v3 = register()
    nothing = registry.replay_challenger(v3, run_id, v2)
    assert nothing.skipped == f"no logged request of production v{v2}" and nothing.rows == 0
    assert (
        registry.version(v3).tags["replay"]
        == f"replay skipped: no logged request of production v{v2}"
    )
    # nothing replayed is no evidence against the challenger, even with a minimum
    decision = decide_promotion(0.9, 0.9, 0.7, 0.0, v2, nothing, min_replay_agreement=0.9)
    assert decision.promote
    registry.promote(v3, decision, actor="test")
    assert registry.replay_challenger(v3, run_id, v2, rows=0).skipped == (
        "replay_rows is 0 (replay turned off)"
    )
    registry.force_promote(v1, actor="cli:ops", reason="hotfix", min_weighted_f1=0.0)
    registry.rollback(actor="cli:ops")

    with engine.connect() as connection:
        audit = connection.execute(
            select(model_promotions.c.action, model_promotions.c.version, model_promotions.c.replay)
            .where(model_promotions.c.model_name == registry.model_name)
            .order_by(model_promotions.c.id)
        ).all()
    assert [(row.action, row.version) for row in audit] == [
        ("promote", v1),
        ("promote", v2),
        ("promote", v3),
        ("force", v1),
        ("rollback", v3),
    ]
    assert audit[1].replay == result.as_dict()
    assert audit[1].replay["agreement"] == pytest.approx(0.5)
    assert audit[2].replay["skipped"] == f"no logged request of production v{v2}"
    assert [row.replay for row in audit if row.action != "promote"] == [None, None]
    assert [event.replay for event in registry.history()] == [row.replay for row in audit]

    # `rakuten models` shows it: a column of the table, the whole record in --json
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", database_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["tracking_uri"])
    monkeypatch.setenv("RAKUTEN_MODEL_NAME", registry.model_name)
    listing = CliRunner().invoke(app, ["models", "--json"])
    assert listing.exit_code == 0, listing.output
    history = json.loads(listing.output)["production_history"]
    assert history[1]["replay"] == audit[1].replay
    monkeypatch.setattr(cli.console, "_width", 250)  # one line per row
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0, table.output
    assert "agreement 0.500 on 200" in table.output and "skipped" in table.output
