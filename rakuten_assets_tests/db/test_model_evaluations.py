"""`model_evaluations` written idempotently and read back, on PostgreSQL and SQLite."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from rakuten_assets.cli import app
from rakuten_assets.db.evaluations import model_evaluations_frame, replace_model_evaluation


# -- the table ------------------------------------------------------------------------------
def row(partition: str, version: str, f1: float, model: str = "clf") -> dict[str, object]:
    return {
        "partition_key": partition,
        "model_name": model,
        "model_version": version,
        "rows": 120,
        "accuracy": f1 + 0.01,
        "weighted_f1": f1,
        "macro_f1": f1 - 0.05,
        "per_class_f1": {"10": f1, "2583": 1.0},
        "model_test_f1": 0.9,
        "evaluated_at": pd.Timestamp("2026-12-01 06:00", tz="UTC").to_pydatetime(),
        "dagster_run_id": "run",
    }


def test_model_evaluations_are_replaced_not_duplicated(engine: Engine, database_url: str) -> None:
    replace_model_evaluation(engine, row("046", "2", 0.80))
    replace_model_evaluation(engine, row("043", "1", 0.85))
    replace_model_evaluation(engine, row("043", "1", 0.84))  # evaluated again
    replace_model_evaluation(engine, row("043", "1", 0.70, model="other"))
    frame = model_evaluations_frame(engine, "clf")
    assert frame[["partition_key", "model_version", "weighted_f1"]].values.tolist() == [
        ["043", "1", 0.84],
        ["046", "2", 0.80],
    ]
    assert frame["per_class_f1"].iloc[0] == {"10": 0.84, "2583": 1.0}
    assert str(frame["evaluated_at"].iloc[0]) == "2026-12-01 06:00:00+00:00"
    assert len(model_evaluations_frame(engine)) == 3
    with pytest.raises(ValueError, match="not columns"):
        replace_model_evaluation(engine, {**row("049", "2", 0.8), "f1": 0.8})

    # `rakuten evaluations`: the series of one model, as stored
    replace_model_evaluation(engine, {**row("049", "2", 0.75), "model_test_f1": None})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAKUTEN_DATABASE_URL", database_url)
        patch.setenv("RAKUTEN_MODEL_NAME", "clf")
        shown = CliRunner().invoke(app, ["evaluations", "--json"])
        assert shown.exit_code == 0, shown.output
        listed = json.loads(shown.output)
        table = CliRunner().invoke(app, ["evaluations"], env={"COLUMNS": "200"})
    assert [(r["partition_key"], r["weighted_f1"], r["model_test_f1"]) for r in listed] == [
        ("043", 0.84, 0.9),
        ("046", 0.80, 0.9),
        ("049", 0.75, None),
    ]
    assert listed[0]["evaluated_at"] == "2026-12-01T06:00:00+00:00"
    assert table.exit_code == 0 and "+0.0600" in table.output  # 043: 0.9 - 0.84
