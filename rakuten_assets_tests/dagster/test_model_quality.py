"""Model quality over partitions in Dagster: `production_model_evaluation`, its check, its
gauges, the retraining it triggers, and the order "evaluate P, then train P".

- the asset on a real Dagster instance, a real MLflow store and the real Pushgateway: 040
  without a production model says so; 043 is graded by the model of 040; materialized again,
  still one row; once a model trained on 043 is in production, 043 is refused;
- the check warns (the run succeeds) when F1 falls under the margin, and that breach triggers a
  retraining, with the drift trigger's cooldown;
- the ordering: the sensor asks for the evaluation of a new partition, and for its training
  only after the evaluation; in-process on both backends, and under the Dagster daemon.
(The plain functions: unit/test_quality_rules.py; the table: db/test_model_evaluations.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from rakuten_assets.benchmarks.processes import http
from rakuten_assets.data.challenge_files import read_training_set
from rakuten_assets.data.partitions import partition_delta, partition_rows
from rakuten_assets.db.engine import connect
from rakuten_assets.db.evaluations import model_evaluations_frame
from rakuten_assets.db.loader import load_partition
from rakuten_assets.db.queries import current_products, latest_load_id, snapshot
from rakuten_assets.defs import automation, training
from rakuten_assets.defs.quality import EVALUATION, QUALITY_CHECK, production_model_evaluation
from rakuten_assets.defs.resources import (
    DatabaseResource,
)
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingParams, train
from rakuten_assets.ml.registry import ModelRegistry, decide_promotion
from rakuten_assets.ml.tracking import ensure_experiment, log_training_run
from rakuten_assets.monitoring.quality import (
    QUALITY_LAST_RUN,
)
from rakuten_assets_tests.support import ROOT
from rakuten_assets_tests.support.dagster_runs import materialization_metadata, project_resources

REPO = ROOT


COLUMNS = ["productid", "imageid", "designation", "description", "prdtypecode"]


ROWS = 4000  # of the generated listings: 040 has 1,600 rows, each later partition 120


FAST = TrainingParams(max_features=2000, char_max_features=0)  # words only: seconds


SMALL_DATA = {"ops": {"balanced_dataset": {"config": {"min_test_rows_per_class": 0}}}}


# -- the asset ------------------------------------------------------------------------------
def load(engine: Engine, frame: pd.DataFrame, key: str, scramble: bool = False) -> None:
    """Load partition `key` of `frame`; `scramble`: with labels shifted to wrong classes."""
    rows = frame.iloc[partition_rows(key, len(frame))][COLUMNS].copy()
    if scramble:
        rows["prdtypecode"] = np.roll(rows["prdtypecode"].to_numpy(), 7)
    load_partition(engine, key, rows, {})


def promote_model_of(
    engine: Engine, key: str, store: dict[str, str], model_name: str
) -> tuple[str, float]:
    """Train on partition `key`'s data (as the training assets would), log the run, register
    the model and make it production; its version and test weighted F1."""
    load_id = latest_load_id(engine, key)
    assert load_id is not None
    dataset = build_balanced_dataset(
        snapshot(engine, load_id=load_id), key, load_id, SplitParams(min_test_rows_per_class=0)
    )
    result = train(dataset, FAST)
    mlflow.set_tracking_uri(store["tracking_uri"])
    experiment = ensure_experiment(store["tracking_uri"], model_name, store["artifact_root"])
    with mlflow.start_run(experiment_id=experiment) as run:
        uri = log_training_run(result, dataset, {})
    registry = ModelRegistry(store["tracking_uri"], model_name, engine)
    registered = registry.register(uri, run.info.run_id, {"partition": key})
    registry.promote(str(registered.version), decide_promotion(1.0, None, 0.0), "test")
    return str(registered.version), result.evaluation.weighted_f1


def evaluate(
    instance: dg.DagsterInstance,
    key: str,
    stack: dict[str, object],
    margin: float | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    config = {} if margin is None else {"f1_margin": margin}
    return dg.materialize(
        [production_model_evaluation],
        partition_key=key,
        instance=instance,
        resources=stack,
        run_config={"ops": {EVALUATION: {"config": config}}},
        tags=tags,
    )


@pytest.fixture
def model_name() -> str:
    return f"quality-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def listings(synth_frame: pd.DataFrame) -> pd.DataFrame:
    return synth_frame.head(ROWS)


@pytest.mark.slow
def test_a_partition_is_graded_by_the_model_in_production_before_its_training(
    engine: Engine,
    database_url: str,
    listings: pd.DataFrame,
    mlflow_store: dict[str, str],
    model_name: str,
    pushgateway: str,
) -> None:
    for key in ("040", "043"):
        load(engine, listings, key)
    stack = project_resources(database_url, mlflow_store, model_name, gateway=pushgateway)
    with dg.instance_for_test() as instance:
        # 040: no model can be in production before the first partition; said, not failed.
        first = evaluate(instance, "040", stack)
        assert first.success
        metadata = materialization_metadata(first)
        assert metadata["status"] == "skipped"
        assert "no version of" in str(metadata["reason"]) and "040" in str(metadata["reason"])
        assert not first.get_asset_check_evaluations()  # nothing graded: the check is skipped
        assert model_evaluations_frame(engine).empty

        # The model of 040 is in production when 043 arrives: it grades 043's new rows.
        v1, test_f1 = promote_model_of(engine, "040", mlflow_store, model_name)
        graded = evaluate(instance, "043", stack, margin=1.0)
        metadata = materialization_metadata(graded)
        rows = current_products(engine, "043")
        assert metadata["status"] == "evaluated"
        assert (metadata["model_version"], metadata["model_trained_on"]) == (v1, "040")
        assert metadata["rows"] == len(rows) == 120
        for name in ("accuracy", "weighted_f1", "macro_f1", "model_test_f1", "f1_drop_vs_test"):
            assert isinstance(metadata[name], float), name  # plotted by the Dagster UI
        assert metadata["model_test_f1"] == pytest.approx(test_f1)
        assert 0.3 < metadata["weighted_f1"] <= 1.0
        per_class = metadata["per_class_f1"].records  # type: ignore[attr-defined]
        assert {r.data["prdtypecode"] for r in per_class} >= set(rows["prdtypecode"])
        (check,) = graded.get_asset_check_evaluations()
        assert (check.check_name, check.passed, check.partition) == (QUALITY_CHECK, True, "043")

        stored = model_evaluations_frame(engine, model_name)
        assert stored[["partition_key", "model_version", "rows"]].values.tolist() == [
            ["043", v1, 120]
        ]
        first_row = stored.iloc[0]
        assert first_row["weighted_f1"] == pytest.approx(metadata["weighted_f1"])
        assert first_row["model_test_f1"] == pytest.approx(test_f1)
        assert first_row["dagster_run_id"] == graded.run_id
        assert set(first_row["per_class_f1"]) == {str(r.data["prdtypecode"]) for r in per_class}

        # The gauges reached the Pushgateway in a group of their own.
        text = http("GET", f"{pushgateway}/metrics")[1]
        gauge = next(
            line for line in text.splitlines() if line.startswith("rakuten_model_eval_f1{")
        )
        assert 'job="rakuten_model_eval"' in gauge and 'partition="043"' in gauge
        assert f'version="{v1}"' in gauge
        assert float(gauge.split()[-1]) == pytest.approx(metadata["weighted_f1"])
        assert QUALITY_LAST_RUN in text

        # Materialized again: the same grade, still one row.
        again = evaluate(instance, "043", stack, margin=1.0)
        stored = model_evaluations_frame(engine, model_name)
        assert len(stored) == 1 and stored.iloc[0]["dagster_run_id"] == again.run_id
        assert stored.iloc[0]["weighted_f1"] == pytest.approx(first_row["weighted_f1"])

        # Once a model trained on 043 is production, it may not grade 043: refused, not
        # written (the row of the model before it stays).
        v2, _ = promote_model_of(engine, "043", mlflow_store, model_name)
        refused = evaluate(instance, "043", stack)
        assert refused.success
        metadata = materialization_metadata(refused)
        assert metadata["status"] == "skipped" and metadata["model_version"] == v2
        assert "trained on partition 043" in str(metadata["reason"])
        assert not refused.get_asset_check_evaluations()
        stored = model_evaluations_frame(engine, model_name)
        assert stored[["partition_key", "model_version"]].values.tolist() == [["043", v1]]
        assert stored.iloc[0]["dagster_run_id"] == again.run_id


@pytest.mark.slow
def test_the_check_warns_under_the_margin_and_the_breach_triggers_a_retraining(
    engine: Engine,
    database_url: str,
    listings: pd.DataFrame,
    mlflow_store: dict[str, str],
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS", "6")
    load(engine, listings, "040")
    load(engine, listings, "043", scramble=True)  # labels the model of 040 cannot match
    promote_model_of(engine, "040", mlflow_store, model_name)
    stack = project_resources(database_url, mlflow_store, model_name)
    database = {"database": DatabaseResource(url=database_url)}

    def quality_sensor(cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=database)
        return automation.retrain_on_quality_drop(context)

    with dg.instance_for_test() as instance:
        assert "no quality drop reported" in str(quality_sensor().skip_reason)
        dropped = evaluate(instance, "043", stack)  # the default margin, 0.03
        assert dropped.success  # a warning, not a failure
        (check,) = dropped.get_asset_check_evaluations()
        assert check.check_name == QUALITY_CHECK and not check.passed
        assert check.severity == dg.AssetCheckSeverity.WARN
        metadata = materialization_metadata(dropped)
        assert metadata["f1_within_margin"] is False
        assert metadata["f1_margin"] == pytest.approx(0.03)
        assert metadata["f1_drop_vs_test"] > 0.03
        assert str(check.description).endswith("margin 0.03")

        # The breach retrains the latest loaded partition ...
        result = quality_sensor()
        (request,) = result.run_requests
        assert (request.job_name, request.partition_key) == ("train", "043")
        assert request.tags[automation.AUTOMATION_TAG] == "quality"
        assert request.run_key == f"retrain-043-quality-{request.tags['rakuten/quality_event']}"
        # ... once; another breach within the cooldown waits
        evaluate(instance, "043", stack)
        held = quality_sensor(result.cursor)
        assert not held.run_requests and "cooldown holds" in str(held.skip_reason)

        # A breach found by the evaluation of a new load: the training that follows it is
        # the retraining (train_on_new_partition asks for it), no second one.
        evaluate(instance, "043", stack, tags={automation.AUTOMATION_TAG: "new-partition"})
        assert not quality_sensor(held.cursor).run_requests
        assert "no quality drop reported" in str(quality_sensor(held.cursor).skip_reason)

        # The cooldown is shared with the drift trigger: a drift retraining launched an hour
        # ago holds a quality retraining too (fresh cursor: only the run counts).
        @dg.asset(name="drift_retraining")
        def drift_retraining() -> None:
            return None

        dg.materialize(
            [drift_retraining], instance=instance, tags={automation.AUTOMATION_TAG: "drift"}
        )
        evaluate(instance, "043", stack)
        assert "cooldown holds" in str(quality_sensor().skip_reason)
        monkeypatch.setenv("RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS", "0")
        assert len(quality_sensor().run_requests) == 1


# -- the ordering ---------------------------------------------------------------------------
TRAINING = [
    training.balanced_dataset,
    training.trained_model,
    training.registered_model_version,
    training.enough_test_rows_per_class,
    training.no_train_test_leak,
    training.weighted_f1_above_floor,
]


@pytest.mark.slow
def test_the_sensor_evaluates_a_new_partition_before_training_it(
    engine: Engine,
    database_url: str,
    listings: pd.DataFrame,
    mlflow_store: dict[str, str],
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each request of the sensor run as the daemon would (same job's assets, same tags),
    in-process: the evaluation of 043 is graded by the model of 040, and the training of 043
    is asked for only once that evaluation has finished."""
    monkeypatch.setenv("RAKUTEN_MIN_WEIGHTED_F1", "0.3")  # small data: the floor is not tested
    load(engine, listings, "040")
    v1, _ = promote_model_of(engine, "040", mlflow_store, model_name)
    load(engine, listings, "043")
    stack = project_resources(database_url, mlflow_store, model_name)
    database = {"database": DatabaseResource(url=database_url)}
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=database)
            return automation.train_on_new_partition(context)

        instance.report_runless_asset_event(dg.AssetMaterialization("products", partition="043"))
        first = tick(None)
        (request,) = first.run_requests
        assert (request.job_name, request.partition_key) == ("evaluate", "043")
        assert not tick(first.cursor).run_requests  # no training before the evaluation
        evaluated = evaluate(instance, "043", stack, tags=dict(request.tags))

        second = tick(first.cursor)
        (request,) = second.run_requests
        assert (request.job_name, request.partition_key) == ("train", "043")
        trained = dg.materialize(
            TRAINING,
            partition_key="043",
            instance=instance,
            resources=stack,
            run_config=SMALL_DATA,
            tags=dict(request.tags),
        )
        assert trained.success
        assert not tick(second.cursor).run_requests
        runs = [instance.get_run_record_by_id(r.run_id) for r in (evaluated, trained)]
        assert runs[0] is not None and runs[1] is not None
        assert runs[0].end_time is not None and runs[1].start_time is not None
        assert runs[0].end_time <= runs[1].start_time

    stored = model_evaluations_frame(engine, model_name)
    assert stored[["partition_key", "model_version"]].values.tolist() == [["043", v1]]
    registry = ModelRegistry(mlflow_store["tracking_uri"], model_name, engine)
    assert [row["partition"] for row in registry.versions()] == ["043", "040"]


@pytest.mark.slow
@pytest.mark.postgres
def test_under_the_daemon_a_new_partition_is_evaluated_then_trained(
    tmp_path: Path, postgres_url: str, synth_dir_large: Path, mlflow_store: dict[str, str]
) -> None:
    """The real thing: `dagster-daemon` with the project's dagster.yaml and its sensors on, a
    PostgreSQL project database, the model of 040 in production. Loading 043 (a backfill of
    the ingestion assets, as from the UI) makes train_on_new_partition launch the evaluation of
    043, then, once it has finished, the training of 043."""
    from dagster._core.execution.backfill import PartitionBackfill

    from rakuten_assets.definitions import defs

    model_name = f"daemon-{uuid.uuid4().hex[:8]}"
    engine = connect(postgres_url)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(REPO),
        "RAKUTEN_HOME": str(tmp_path / "home"),
        "RAKUTEN_DATABASE_URL": postgres_url,
        "RAKUTEN_DATA_DIR": str(synth_dir_large),
        "MLFLOW_TRACKING_URI": mlflow_store["tracking_uri"],
        "RAKUTEN_MLFLOW_ARTIFACT_ROOT": mlflow_store["artifact_root"],
        "RAKUTEN_MODEL_NAME": model_name,
        "RAKUTEN_MLFLOW_EXPERIMENT": model_name,
        "RAKUTEN_MIN_WEIGHTED_F1": "0.3",  # generated data; the floor is not what is tested
    }
    env.pop("RAKUTEN_DAGSTER_DATABASE_URL", None)
    env.pop("RAKUTEN_PUSHGATEWAY_URL", None)
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        # While the daemon starts: 040 loaded and its model in production, as of long ago.
        delta = partition_delta(read_training_set(synth_dir_large), "040")
        load_partition(engine, "040", delta.frame, delta.source_hashes)
        v1, _ = promote_model_of(engine, "040", mlflow_store, model_name)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
            with dg.DagsterInstance.from_config(str(REPO)) as instance:
                instance.add_backfill(
                    PartitionBackfill.from_asset_partitions(
                        backfill_id=uuid.uuid4().hex[:8],
                        asset_graph=defs.resolve_asset_graph(),
                        partition_names=["043"],
                        asset_selection=[dg.AssetKey("raw_products"), dg.AssetKey("products")],
                        backfill_timestamp=time.time(),
                        tags={},
                        dynamic_partitions_store=instance,
                        all_partitions=False,
                        title="load 043",
                        description=None,
                        run_config=None,
                    )
                )
                deadline = time.monotonic() + 600
                trained: set[str] = set()
                while time.monotonic() < deadline and trained != {"043"}:
                    time.sleep(5)
                    trained = instance.get_materialized_partitions(
                        dg.AssetKey("registered_model_version")
                    )
                    failed = [r for r in instance.get_runs() if r.status.value == "FAILURE"]
                    assert not failed, log.read_text()[-3000:]
                records = [instance.get_run_record_by_id(r.run_id) for r in instance.get_runs()]
        assert trained == {"043"}, log.read_text()[-3000:]
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    by_job = {record.dagster_run.job_name: record for record in records if record is not None}
    assert len(by_job) == len(records) == 3, sorted(by_job)
    evaluation, training_run = by_job["evaluate"], by_job["train"]
    for record in (evaluation, training_run):
        assert record.dagster_run.tags[automation.AUTOMATION_TAG] == "new-partition"
        assert record.dagster_run.tags["dagster/partition"] == "043"
    loading = next(r for name, r in by_job.items() if name not in ("evaluate", "train"))
    assert loading.end_time <= evaluation.start_time
    assert evaluation.end_time <= training_run.start_time  # evaluate P, then train P

    stored = model_evaluations_frame(engine, model_name)
    assert stored[["partition_key", "model_version"]].values.tolist() == [["043", v1]]
    assert stored.iloc[0]["dagster_run_id"] == evaluation.dagster_run.run_id
    assert stored.iloc[0]["rows"] == len(current_products(engine, "043"))
    registry = ModelRegistry(mlflow_store["tracking_uri"], model_name, engine)
    assert [row["partition"] for row in registry.versions()] == ["043", "040"]
    engine.dispose()
