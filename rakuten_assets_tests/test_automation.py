"""Monitoring and automation on a real Dagster instance (`instance_for_test`):

- `drift_metrics` end to end: a production model in an MLflow store, an inference log filled
  with the model's own predictions of generated traffic, the real Pushgateway; no drift on
  unshifted traffic, drift on category-shifted traffic (stored in `drift_reports`, the
  non-blocking check fails, the gauges reach the gateway);
- the sensors: a new `products` partition triggers its training (once); drift triggers a
  retraining of the latest loaded partition; the cooldown holds;
- the weekly load schedule asks for the next partition;
- the drift reference falls back to the audit trail for a run without its artifact.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from sqlalchemy import Engine

from rakuten_assets.benchmarks.processes import Service, free_port, http
from rakuten_assets.data.partitions import partition_rows
from rakuten_assets.db.engine import connect
from rakuten_assets.db.loader import load_partition
from rakuten_assets.db.queries import drift_reports_frame, snapshot
from rakuten_assets.defs import automation
from rakuten_assets.defs.monitoring import DRIFT_CHECK, drift_metrics
from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, PushgatewayResource
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.inference import compile_pipeline
from rakuten_assets.ml.model import TrainingParams, TrainingResult, train
from rakuten_assets.ml.registry import ModelRegistry, decide_promotion
from rakuten_assets.ml.tracking import REFERENCE_ARTIFACT, ensure_experiment, log_training_run
from rakuten_assets.monitoring.reference import load_reference
from rakuten_assets.monitoring.traffic import shifted_requests
from rakuten_assets_tests.test_deploy_configs import binary
from rakuten_assets_tests.test_monitoring_stack import started
from serving.inference_log import InferenceLogWriter, LoggedPrediction


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    service = Service(
        [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"],
        dict(os.environ),
        folder / "pushgateway.log",
    )
    url = f"http://127.0.0.1:{port}"
    started(service, f"{url}/-/ready", "the Pushgateway", 60)
    yield url
    service.stop()


@pytest.fixture(scope="module")
def production(
    tmp_path_factory: pytest.TempPathFactory, trained: TrainingResult, synth_frame: pd.DataFrame
) -> dict[str, str]:
    """The `trained` model logged (with its drift reference), registered and in production."""
    folder = tmp_path_factory.mktemp("drift-store")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    database = f"sqlite:///{folder / 'rakuten.db'}"
    model_name = f"drift-{uuid.uuid4().hex[:6]}"
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(min_test_rows_per_class=0))
    mlflow.set_tracking_uri(tracking)
    experiment = ensure_experiment(tracking, "drift", (folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        uri = log_training_run(trained, dataset, {})
    registry = ModelRegistry(tracking, model_name, connect(database))
    version = registry.register(uri, run.info.run_id, {})
    registry.promote(str(version.version), decide_promotion(1.0, None, 0.0), "test")
    return {"tracking_uri": tracking, "database_url": database, "model_name": model_name}


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


def materialize_drift(
    instance: dg.DagsterInstance, production: dict[str, str], pushgateway: str, last_n: int
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [drift_metrics],
        instance=instance,
        resources={
            "database": DatabaseResource(url=production["database_url"]),
            "mlflow_registry": MlflowResource(
                tracking_uri=production["tracking_uri"], model_name=production["model_name"]
            ),
            "pushgateway": PushgatewayResource(url=pushgateway),
        },
        run_config={"ops": {"drift_metrics": {"config": {"last_n": last_n}}}},
    )


def drift_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    materialization = event.step_materialization_data.materialization
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


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
    listings = synth_frame[["designation", "description"]]
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="040"))
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="043"))

        log_traffic(engine, trained, shifted_requests(listings, 600, "none", seed=1))
        calm = materialize_drift(instance, production, pushgateway, last_n=600)
        metadata = drift_metadata(calm)
        assert metadata["verdict"] == "no_drift", metadata["reasons"]
        assert check_passed(calm)
        assert metadata["window_predictions"] == 600

        context = dg.build_sensor_context(instance=instance)
        quiet = automation.retrain_on_drift(context)
        assert not quiet.run_requests

        log_traffic(engine, trained, shifted_requests(listings, 600, "category", seed=2))
        drifted = materialize_drift(instance, production, pushgateway, last_n=600)
        metadata = drift_metadata(drifted)
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
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        result = automation.retrain_on_drift(context)
        (request,) = result.run_requests
        assert request.partition_key == "043"
        assert request.tags[automation.AUTOMATION_TAG] == "drift"

        # ... then the cooldown holds against a new drift report.
        materialize_drift(instance, production, pushgateway, last_n=600)
        context = dg.build_sensor_context(instance=instance, cursor=result.cursor)
        held = automation.retrain_on_drift(context)
        assert not held.run_requests
        assert "cooldown" in str(held.skip_reason)

        # Without a cooldown, the same report would retrain again.
        monkeypatch.setenv("RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS", "0")
        context = dg.build_sensor_context(instance=instance, cursor=result.cursor)
        assert len(automation.retrain_on_drift(context).run_requests) == 1


def test_a_new_partition_triggers_its_training_once() -> None:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert not automation.train_on_new_partition(context).run_requests

        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="040"))
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="043"))
        result = automation.train_on_new_partition(context)
        assert [r.partition_key for r in result.run_requests] == ["040", "043"]
        assert all(r.job_name in (None, "train") for r in result.run_requests)
        assert len({r.run_key for r in result.run_requests}) == 2

        again = dg.build_sensor_context(instance=instance, cursor=result.cursor)
        assert not automation.train_on_new_partition(again).run_requests

        # A load whose partition was trained by hand afterwards needs no automatic training.
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="046"))
        instance.report_runless_asset_event(
            dg.AssetMaterialization("registered_model_version", partition="046")
        )
        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="049"))
        later = dg.build_sensor_context(instance=instance, cursor=result.cursor)
        assert [r.partition_key for r in automation.train_on_new_partition(later).run_requests] == [
            "049"
        ]


def test_the_weekly_load_asks_for_the_next_partition_and_is_off_by_default() -> None:
    assert automation.weekly_load.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        for key in ("040", "043"):
            instance.report_runless_asset_event(dg.AssetMaterialization("products", partition=key))
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 30, 6, tzinfo=UTC)
        )
        request = automation.weekly_load(context)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "046"
        assert request.run_key == "weekly-load-046-20261130"


def test_sensors_are_on_by_default() -> None:
    for sensor in (
        automation.train_on_new_partition,
        automation.retrain_on_drift,
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


def test_a_run_that_loads_and_trains_gets_no_second_training() -> None:
    from rakuten_assets.defs.partitions import products_partitions

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
        context = dg.build_sensor_context(instance=instance)
        assert not automation.train_on_new_partition(context).run_requests
