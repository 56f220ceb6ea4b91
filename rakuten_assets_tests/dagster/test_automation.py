"""Monitoring and automation on a real Dagster instance (`instance_for_test`):

- `drift_metrics` end to end: a production model in an MLflow store, an inference log filled
  with the model's own predictions of generated traffic, the real Pushgateway; no drift on
  unshifted traffic, drift on category-shifted traffic (stored in `drift_reports`, the
  non-blocking check fails, the gauges reach the gateway);
- the sensors: a new `products` partition triggers its evaluation, then its training (once,
  after its loading run has finished); drift triggers a retraining of the latest loaded
  partition; the cooldown holds;
- the weekly load schedule asks for the next partition;
- blocking checks block: a partition the loader refuses writes nothing, and a load whose
  blocking check fails after the commit is reverted; neither is trained nor counted as loaded;
- the drift reference falls back to the audit trail for a run without its artifact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from sqlalchemy import Engine

from rakuten_assets.benchmarks.processes import http
from rakuten_assets.data.partitions import PartitionDelta, partition_rows
from rakuten_assets.db import loader
from rakuten_assets.db.engine import connect
from rakuten_assets.db.loader import load_partition, loaded_partitions
from rakuten_assets.db.queries import (
    current_products,
    drift_reports_frame,
    latest_load_id,
    load_history,
    snapshot,
)
from rakuten_assets.defs import automation, ingestion, training
from rakuten_assets.defs.monitoring import DRIFT_CHECK
from rakuten_assets.defs.partitions import products_partitions
from rakuten_assets.defs.resources import DatabaseResource
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.inference import compile_pipeline
from rakuten_assets.ml.model import TrainingParams, TrainingResult, train
from rakuten_assets.ml.tracking import REFERENCE_ARTIFACT, ensure_experiment, log_training_run
from rakuten_assets.monitoring.reference import load_reference
from rakuten_assets.monitoring.traffic import shifted_requests
from rakuten_assets_tests.support.dagster_runs import (
    materialization_metadata,
    materialize_drift,
    step_failures,
)
from rakuten_assets_tests.support.listings import HASHES, load_partitions
from rakuten_assets_tests.support.listings import listings as small_listings
from serving.inference_log import InferenceLogWriter, LoggedPrediction


def log_traffic(
    engine: Engine, trained: TrainingResult, requests: list[dict[str, str | None]]
) -> None:
    """What the server would log: the model's own predictions of the requests."""
    classifier = compile_pipeline(trained.pipeline)
    listings = [(r["designation"] or "", r["description"]) for r in requests]
    probabilities = classifier.predict_proba(listings)
    now = datetime.now(UTC)
    writer = InferenceLogWriter(lambda: engine).start()
    writer.put_many(
        [
            LoggedPrediction(
                at=now,
                designation=designation,
                description=description,
                predicted_class=classifier.classes[int(row.argmax())],
                confidence=float(row.max()),
                model_version="1",
                latency_ms=1.0,
            )
            for (designation, description), row in zip(listings, probabilities, strict=True)
        ]
    )
    writer.close(timeout=60)


def check_passed(result: dg.ExecuteInProcessResult) -> bool:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == DRIFT_CHECK
    return evaluation.passed


def test_drift_metrics_end_to_end_and_the_retrain_sensor(
    production: dict[str, str],
    trained: TrainingResult,
    synth_frame: pd.DataFrame,
    pushgateway: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS", "6")
    engine = connect(production["database_url"])
    load_partitions(engine, "040", "043")
    database = {"database": DatabaseResource(url=production["database_url"])}
    listings = synth_frame[["designation", "description"]]
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="040"))
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="043"))

        log_traffic(engine, trained, shifted_requests(listings, 600, "none", seed=1))
        calm = materialize_drift(instance, production, pushgateway, last_n=600)
        metadata = materialization_metadata(calm)
        assert metadata["verdict"] == "no_drift", metadata["reasons"]
        assert check_passed(calm)
        assert metadata["window_predictions"] == 600

        context = dg.build_sensor_context(instance=instance, resources=database)
        quiet = automation.retrain_on_drift(context)
        assert not quiet.run_requests

        log_traffic(engine, trained, shifted_requests(listings, 600, "category", seed=2))
        drifted = materialize_drift(instance, production, pushgateway, last_n=600)
        metadata = materialization_metadata(drifted)
        assert metadata["verdict"] == "drift"
        assert "class" in str(metadata["reasons"]).lower()
        assert not check_passed(drifted)  # the check fails (as a warning) ...
        assert drifted.success  # ... without failing the run

        reports = drift_reports_frame(engine)
        assert reports["verdict"].tolist() == ["no_drift", "drift"]
        assert reports["model_name"].unique().tolist() == [production["model_name"]]
        assert reports.iloc[-1]["window_predictions"] == 600
        assert reports.iloc[-1]["psi_predicted_class"] > 0.2 or (
            reports.iloc[-1]["js_predicted_class"] > 0.1
        )
        assert json.loads(json.dumps(reports.iloc[-1]["report"]))["verdict"] == "drift"

        gateway = http("GET", f"{pushgateway}/metrics")[1]
        assert re.search(
            r"^rakuten_drift_detected\{[^}]*job=\"rakuten_drift\"[^}]*\} 1$", gateway, re.M
        )
        assert "rakuten_drift_psi_predicted_class" in gateway

        # Drift -> one retraining of the latest loaded partition ...
        context = dg.build_sensor_context(
            instance=instance, cursor=context.cursor, resources=database
        )
        result = automation.retrain_on_drift(context)
        (request,) = result.run_requests
        assert request.partition_key == "043"
        assert request.tags[automation.AUTOMATION_TAG] == "drift"

        # ... then the cooldown holds against a new drift report.
        materialize_drift(instance, production, pushgateway, last_n=600)
        context = dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources=database
        )
        held = automation.retrain_on_drift(context)
        assert not held.run_requests
        assert "cooldown" in str(held.skip_reason)

        # Without a cooldown, the same report would retrain again.
        monkeypatch.setenv("RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS", "0")
        context = dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources=database
        )
        assert len(automation.retrain_on_drift(context).run_requests) == 1


def test_a_new_partition_triggers_its_evaluation_then_its_training_once(
    engine: Engine, database_url: str
) -> None:
    load_partitions(engine, "040", "043", "046", "049")
    database = {"database": DatabaseResource(url=database_url)}

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=database)
        return automation.train_on_new_partition(context)

    with dg.instance_for_test() as instance:
        assert not tick(None).run_requests

        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="040"))
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="043"))
        # First the production model is graded on the new rows ...
        result = tick(None)
        assert [(r.job_name, r.partition_key) for r in result.run_requests] == [
            ("evaluate", "040"),
            ("evaluate", "043"),
        ]
        assert len({r.run_key for r in result.run_requests}) == 2
        waiting = tick(result.cursor)
        assert not waiting.run_requests
        assert "2 evaluation(s)" in str(waiting.skip_reason)

        # ... then, once an evaluation is recorded, that partition (only) is trained, once.
        instance.report_runless_asset_event(
            dg.AssetMaterialization("production_model_evaluation", partition="043")
        )
        result = tick(waiting.cursor)
        assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("train", "043")]
        assert result.run_requests[0].run_key.startswith("train-043-after-load-")
        instance.report_runless_asset_event(
            dg.AssetMaterialization("production_model_evaluation", partition="040")
        )
        result = tick(result.cursor)
        assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("train", "040")]
        assert not tick(result.cursor).run_requests

        # A load whose partition was trained by hand afterwards needs no automatic training.
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="046"))
        instance.report_runless_asset_event(
            dg.AssetMaterialization("registered_model_version", partition="046")
        )
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="049"))
        later = tick(result.cursor)
        assert [r.partition_key for r in later.run_requests] == ["049"]


def test_the_weekly_load_asks_for_the_next_partition_and_is_off_by_default(
    engine: Engine, database_url: str
) -> None:
    assert automation.weekly_load.default_status == dg.DefaultScheduleStatus.STOPPED
    load_partitions(engine, "040", "043")
    with dg.instance_for_test() as instance:
        for key in ("040", "043"):
            instance.report_runless_asset_event(dg.AssetMaterialization("products", partition=key))
        # Closed here: the schedule context opens an instance of its own from the ref.
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 30, 6, tzinfo=UTC),
            resources={"database": DatabaseResource(url=database_url)},
        ) as context:
            request = automation.weekly_load(context)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "046"
        assert request.run_key == "weekly-load-046-20261130"


def test_sensors_are_on_by_default() -> None:
    for sensor in (
        automation.train_on_new_partition,
        automation.retrain_on_drift,
        automation.retrain_on_quality_drop,
        automation.alert_on_run_failure,
    ):
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.drift_metrics_hourly.default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_reference_is_rebuilt_from_the_audit_trail_without_its_artifact(
    engine: Engine, synth_frame: pd.DataFrame, mlflow_store: dict[str, str]
) -> None:
    columns = ["productid", "imageid", "designation", "description", "prdtypecode"]
    data = synth_frame.head(4000)
    load = load_partition(engine, "040", data.iloc[partition_rows("040", len(data))][columns], {})
    dataset = build_balanced_dataset(
        snapshot(engine, load_id=load.load_id),
        "040",
        load.load_id,
        SplitParams(min_test_rows_per_class=0, seed=3),
    )
    result = train(dataset, TrainingParams(max_features=2000))
    mlflow.set_tracking_uri(mlflow_store["tracking_uri"])
    experiment = ensure_experiment(
        mlflow_store["tracking_uri"], "reference", mlflow_store["artifact_root"]
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        log_training_run(result, dataset, {})
    logged, source = load_reference(mlflow_store["tracking_uri"], run.info.run_id, engine)
    assert source == "artifact"

    artifact = Path(mlflow.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://"))
    (artifact / REFERENCE_ARTIFACT).unlink()
    rebuilt, source = load_reference(mlflow_store["tracking_uri"], run.info.run_id, engine)
    assert source == "rebuilt from the audit trail"
    assert rebuilt.to_dict() == logged.to_dict()
    assert rebuilt.rows == len(dataset.train)


def test_a_run_that_loads_and_trains_gets_no_second_training(tmp_path: Path) -> None:
    @dg.asset(name="products", partitions_def=products_partitions)
    def loaded() -> None:
        return None

    @dg.asset(name="registered_model_version", deps=[loaded], partitions_def=products_partitions)
    def still_training() -> None:
        raise RuntimeError("still running when the sensor looks (or failed: alerted elsewhere)")

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [loaded, still_training], partition_key="043", instance=instance, raise_on_error=False
        )
        assert not result.success
        assert instance.get_materialized_partitions(dg.AssetKey("products")) == {"043"}
        context = dg.build_sensor_context(
            instance=instance,
            resources={"database": DatabaseResource(url=f"sqlite:///{tmp_path / 'db.sqlite'}")},
        )
        assert not automation.train_on_new_partition(context).run_requests


# -- blocking checks block ----------------------------------------------------------------

PRODUCTS_CHECKS = [
    ingestion.row_count_matches_partition,
    ingestion.no_empty_designation,
    ingestion.labels_within_codes,
    ingestion.productid_unique,
]


def raw_products_from(frame: pd.DataFrame) -> dg.AssetsDefinition:
    """`raw_products` serving partitions of `frame`, so that `products` and its real checks
    see rows the CSV reader would refuse (the loader must not rely on its callers)."""

    @dg.asset(name="raw_products", partitions_def=products_partitions)
    def raw_products(context) -> PartitionDelta:  # type: ignore[no-untyped-def]
        key = context.partition_key
        rows = frame.iloc[partition_rows(key, len(frame))]
        return PartitionDelta(key=key, frame=rows, total_rows=len(frame), source_hashes=HASHES)

    return raw_products


def load_through_dagster(
    instance: dg.DagsterInstance, frame: pd.DataFrame, key: str, database_url: str, *extra
) -> dg.ExecuteInProcessResult:  # type: ignore[no-untyped-def]
    return dg.materialize(
        [raw_products_from(frame), ingestion.products, *PRODUCTS_CHECKS, *extra],
        partition_key=key,
        instance=instance,
        resources={"database": DatabaseResource(url=database_url)},
        raise_on_error=False,
    )


def with_empty_designation(frame: pd.DataFrame, key: str) -> tuple[pd.DataFrame, int]:
    spoiled = frame.copy()
    row = spoiled.index[partition_rows(key, len(spoiled))[3]]
    spoiled.loc[row, "designation"] = " "
    return spoiled, int(spoiled.loc[row, "productid"])


def loaded(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return loaded_partitions(connection)


def test_a_partition_the_loader_refuses_writes_nothing_and_is_not_trained(
    engine: Engine, database_url: str
) -> None:
    frame = small_listings()
    spoiled, productid = with_empty_designation(frame, "043")
    database = {"database": DatabaseResource(url=database_url)}
    with dg.instance_for_test() as instance:
        assert load_through_dagster(instance, frame, "040", database_url).success
        before, history = current_products(engine), load_history(engine)

        result = load_through_dagster(instance, spoiled, "043", database_url)

        assert not result.success
        message = step_failures(result)
        assert "no_empty_designation" in message and str(productid) in message
        assert "nothing was written" in message
        assert instance.get_materialized_partitions(automation.PRODUCTS) == {"040"}
        pd.testing.assert_frame_equal(current_products(engine), before)
        pd.testing.assert_frame_equal(load_history(engine), history)
        assert loaded(engine) == {"040"}
        sensor = automation.train_on_new_partition(
            dg.build_sensor_context(instance=instance, resources=database)
        )
        assert [r.partition_key for r in sensor.run_requests] == ["040"]


def test_a_failed_blocking_check_reverts_the_load_and_nothing_trains_on_it(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second line of defence: bad rows committed (here: the loader does not know the
    rule yet), the blocking check fails, the load is undone and ignored everywhere."""
    frame = small_listings()
    spoiled, productid = with_empty_designation(frame, "043")
    database = {"database": DatabaseResource(url=database_url)}
    with dg.instance_for_test() as instance:
        assert load_through_dagster(instance, frame, "040", database_url).success
        as_of_040 = snapshot(engine)
        monkeypatch.setattr(loader, "partition_breaches", lambda *args, **kwargs: [])

        result = load_through_dagster(instance, spoiled, "043", database_url)

        assert not result.success
        check = {e.check_name: e for e in result.get_asset_check_evaluations()}
        failed = check["no_empty_designation"]
        assert not failed.passed
        assert str(productid) in str(failed.metadata["example_productids"].value)
        assert "reverted" in (failed.description or "")
        # Dagster keeps the materialization of products [043] ...
        assert instance.get_materialized_partitions(automation.PRODUCTS) == {"040", "043"}
        # ... but the project database undid the load and says why.
        loads = load_history(engine)
        last = loads.iloc[-1]
        assert (last["partition_key"], last["status"]) == ("043", "reverted")
        assert "no_empty_designation" in last["status_reason"]
        assert str(productid) in last["status_reason"]
        assert last["dagster_run_id"] == result.run_id
        assert current_products(engine, "043").empty
        assert loaded(engine) == {"040"}
        assert latest_load_id(engine, "043") is None
        pd.testing.assert_frame_equal(snapshot(engine), as_of_040)
        pd.testing.assert_frame_equal(snapshot(engine, load_id=int(last["id"])), as_of_040)

        # Nothing trains on it: the sensor, the next weekly load, the dataset.
        sensor = automation.train_on_new_partition(
            dg.build_sensor_context(instance=instance, resources=database)
        )
        assert [r.partition_key for r in sensor.run_requests] == ["040"]
        # As a context manager: the schedule context opens its own instance from the ref,
        # which must be closed before the next materialization resolves its definitions.
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 12, 7, 6, tzinfo=UTC),
            resources=database,
        ) as schedule_context:
            weekly = automation.weekly_load(schedule_context)
        assert isinstance(weekly, dg.RunRequest) and weekly.partition_key == "043"
        dataset = dg.materialize(
            [training.balanced_dataset],
            partition_key="043",
            instance=instance,
            resources=database,
            raise_on_error=False,
        )
        assert not dataset.success
        assert "partition 043 of products is not loaded" in step_failures(dataset)

        # The same data, once fixed, loads and trains normally.
        monkeypatch.undo()
        assert load_through_dagster(instance, frame, "043", database_url).success
        assert loaded(engine) == {"040", "043"}
        context = dg.build_sensor_context(
            instance=instance, cursor=sensor.cursor, resources=database
        )
        assert [
            r.partition_key for r in automation.train_on_new_partition(context).run_requests
        ] == ["043"]


def test_the_sensor_waits_for_the_blocking_checks_of_a_running_load(
    engine: Engine, database_url: str
) -> None:
    """The materialization of products is recorded before its checks run: while the loading
    run is running, the sensor waits; once it has finished with its checks passed, it trains."""
    database = {"database": DatabaseResource(url=database_url)}
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=products_partitions, deps=[ingestion.products])
    def probe(context) -> None:  # type: ignore[no-untyped-def]
        """Runs in the loading run, after products: what would the sensor do now?"""
        sensor = automation.train_on_new_partition(
            dg.build_sensor_context(instance=context.instance, resources=database)
        )
        seen["requests"], seen["cursor"] = sensor.run_requests, sensor.cursor

    with dg.instance_for_test() as instance:
        result = load_through_dagster(instance, small_listings(), "040", database_url, probe)
        assert result.success
        assert seen["requests"] == []
        assert json.loads(str(seen["cursor"]))["waiting"]

        context = dg.build_sensor_context(
            instance=instance, cursor=str(seen["cursor"]), resources=database
        )
        after = automation.train_on_new_partition(context)
        assert [r.partition_key for r in after.run_requests] == ["040"]
        assert json.loads(str(after.cursor))["waiting"] == []
        again = dg.build_sensor_context(instance=instance, cursor=after.cursor, resources=database)
        assert not automation.train_on_new_partition(again).run_requests
