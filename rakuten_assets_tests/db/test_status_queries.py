"""The reads behind `rakuten status`, `dataset`/`train` (default partition) and `evaluations`,
on both backends: plain functions of db/queries.py, JSON-ready as the commands print them."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from rakuten_assets.data.categories import CODES
from rakuten_assets.db.evaluations import replace_model_evaluation
from rakuten_assets.db.loader import load_partition, revert_load
from rakuten_assets.db.queries import (
    latest_loaded_partition,
    model_evaluation_records,
    status_report,
)
from rakuten_assets_tests.support.listings import HASHES, delta, listings


def test_the_status_of_an_empty_database(engine: Engine) -> None:
    report = status_report(engine)
    assert report["loaded_percentage"] == 0
    assert report["loaded_partitions"] == [] and report["loads"] == []
    assert report["next_partition"] == "040"
    assert report["total_rows"] == 0
    assert sorted(c["prdtypecode"] for c in report["classes"]) == sorted(CODES)
    assert {c["rows"] for c in report["classes"]} == {0}
    assert report["database"] == engine.url.render_as_string()
    assert latest_loaded_partition(engine) is None


def test_the_status_counts_loads_reverts_and_gaps(engine: Engine) -> None:
    """040, 043, 046 loaded, then 043 reverted: 40% loaded (no gap from 040), 046 the latest
    loaded, 043 the next to load; every load listed, the reverted one with its status."""
    frame = listings()  # 400 rows: 160 in 040, 12 in 043 and in 046
    first = load_partition(engine, "040", delta(frame, "040"), HASHES, dagster_run_id="run-1")
    second = load_partition(engine, "043", delta(frame, "043"), HASHES, dagster_run_id="run-2")
    assert latest_loaded_partition(engine) == "043"
    assert status_report(engine)["loaded_percentage"] == 43

    load_partition(engine, "046", delta(frame, "046"), HASHES, dagster_run_id="run-3")
    revert_load(engine, second.load_id, "blocking check test failed")
    report = status_report(engine)

    assert report["loaded_percentage"] == 40
    assert report["loaded_partitions"] == ["040", "046"]
    assert report["next_partition"] == "043"
    assert latest_loaded_partition(engine) == "046"
    assert report["total_rows"] == 172 == sum(c["rows"] for c in report["classes"])
    rows = [c["rows"] for c in report["classes"]]
    assert rows == sorted(rows, reverse=True)
    assert {"prdtypecode", "name_fr", "name_en", "rows"} == set(report["classes"][0])

    loads = report["loads"]
    assert [(load["partition_key"], load["status"]) for load in loads] == [
        ("040", "completed"),
        ("043", "reverted"),
        ("046", "completed"),
    ]
    assert [load["dagster_run_id"] for load in loads] == ["run-1", "run-2", "run-3"]
    assert loads[0]["id"] == first.load_id
    assert (loads[0]["batch_name"], loads[0]["percentage"]) == (first.batch_name, 40)
    assert (loads[0]["rows_added"], loads[0]["total_rows"]) == (160, 160)
    assert loads[0]["source_hashes"] == HASHES
    assert datetime.fromisoformat(loads[0]["completed_at"]).tzinfo is not None
    assert json.loads(json.dumps(report)) == report  # what `status --json` prints


def evaluation(partition: str, model: str, test_f1: float | None) -> dict[str, object]:
    return {
        "partition_key": partition,
        "model_name": model,
        "model_version": "1",
        "rows": 120,
        "accuracy": 0.81,
        "weighted_f1": 0.8,
        "macro_f1": 0.75,
        "per_class_f1": {"10": 0.8},
        "model_test_f1": test_f1,
        "evaluated_at": pd.Timestamp("2026-12-01 06:00", tz="UTC").to_pydatetime(),
        "dagster_run_id": "run",
    }


def test_evaluation_records_of_one_model(engine: Engine) -> None:
    assert model_evaluation_records(engine, "clf") == []
    replace_model_evaluation(engine, evaluation("046", "clf", None))
    replace_model_evaluation(engine, evaluation("043", "clf", 0.9))
    replace_model_evaluation(engine, evaluation("043", "other", 0.9))

    records = model_evaluation_records(engine, "clf")

    assert [r["partition_key"] for r in records] == ["043", "046"]
    assert [r["model_test_f1"] for r in records] == [0.9, None]  # NaN never reaches JSON
    assert "id" not in records[0]
    assert records[0]["evaluated_at"] == "2026-12-01T06:00:00+00:00"
    assert records[0]["per_class_f1"] == {"10": 0.8}
    assert json.loads(json.dumps(records)) == records  # what `evaluations --json` prints
