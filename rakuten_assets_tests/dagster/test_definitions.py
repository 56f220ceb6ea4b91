"""The Dagster code location: assets, partitions, checks, and materializations end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from rakuten_assets.data.challenge_files import X_TRAIN_FILE, read_training_set
from rakuten_assets.data.partitions import PARTITION_KEYS, partition_slice
from rakuten_assets.db.engine import connect
from rakuten_assets.db.queries import load_history
from rakuten_assets.db.schema import products
from rakuten_assets.definitions import defs
from rakuten_assets.defs import ingestion
from rakuten_assets.defs.resources import ChallengeFilesResource, DatabaseResource
from rakuten_assets_tests.support.dagster_runs import step_failures

INGESTION = [
    ingestion.raw_products,
    ingestion.products,
    ingestion.row_count_matches_partition,
    ingestion.no_empty_designation,
    ingestion.labels_within_codes,
    ingestion.productid_unique,
]


def resources(database_url: str, data_dir: Path) -> dict[str, object]:
    return {
        "database": DatabaseResource(url=database_url),
        "challenge_files": ChallengeFilesResource(data_dir=str(data_dir)),
    }


def ingest_040(database_url: str, data_dir: Path) -> dg.ExecuteInProcessResult:
    """Partition 040 through the ingestion assets and checks; failures are in the result."""
    with dg.instance_for_test() as instance:
        return dg.materialize(
            INGESTION,
            partition_key="040",
            instance=instance,
            resources=resources(database_url, data_dir),
            raise_on_error=False,
        )


def test_code_location_loads_with_the_fixed_names() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "raw_products",
        "products",
        "balanced_dataset",
        "trained_model",
        "registered_model_version",
        "inference_log",
        "drift_metrics",
        "production_model_evaluation",
    }
    assert graph.get(dg.AssetKey("inference_log")).is_external
    assert graph.get(dg.AssetKey("drift_metrics")).partitions_def is None
    partitions = graph.get(dg.AssetKey("products")).partitions_def
    assert partitions is not None
    assert partitions.get_partition_keys() == list(PARTITION_KEYS)
    evaluation = graph.get(dg.AssetKey("production_model_evaluation"))
    assert evaluation.partitions_def == partitions
    assert evaluation.group_name == "monitoring"
    # lineage: it reads products (a dependency, no data input) and feeds nothing
    assert evaluation.parent_keys == {dg.AssetKey("products")}
    assert not evaluation.child_keys
    check_names = {key.name for key in graph.asset_check_keys}
    assert check_names == {
        "row_count_matches_partition",
        "no_empty_designation",
        "labels_within_codes",
        "productid_unique",
        "enough_test_rows_per_class",
        "no_train_test_leak",
        "weighted_f1_above_floor",
        "no_drift_detected",
        "f1_within_margin_of_test",
    }
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest",
        "train",
        "dataset",
        "drift",
        "evaluate",
    }
    for key in graph.asset_check_keys:
        # Data and model checks gate what follows; drift and quality on new data only warn.
        warns = key.name in ("no_drift_detected", "f1_within_margin_of_test")
        assert graph.get_check_spec(key).blocking == (not warns)


@pytest.mark.slow
def test_materialize_two_partitions_end_to_end(database_url: str, synth_dir: Path) -> None:
    training = read_training_set(synth_dir)
    with dg.instance_for_test() as instance:
        for key in ("040", "043"):
            result = dg.materialize(
                INGESTION,
                partition_key=key,
                instance=instance,
                resources=resources(database_url, synth_dir),
            )
            assert result.success
            checks = result.get_asset_check_evaluations()
            assert len(checks) == 4 and all(c.passed for c in checks)
            assert {c.partition for c in checks} == {key}

        materialization = instance.get_latest_materialization_event(dg.AssetKey("products"))
        assert materialization is not None
        metadata = materialization.asset_materialization.metadata  # type: ignore[union-attr]
        assert metadata["total_rows"].value == partition_slice("043", len(training)).end
        assert metadata["batch_name"].value == "week_2"
        assert instance.get_materialized_partitions(dg.AssetKey("products")) == {"040", "043"}

    engine = connect(database_url)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(products)).scalar_one()
    assert stored == partition_slice("043", len(training)).end
    loads = load_history(engine)
    assert loads["dagster_run_id"].notna().all()
    engine.dispose()


@pytest.mark.slow
def test_an_empty_designation_stops_the_load_before_anything_is_written(
    database_url: str, synth_dir: Path, tmp_path: Path
) -> None:
    """The blocking rule `no_empty_designation` is enforced before the commit: the reader
    refuses the file (file, line, column), so the row never reaches the table (issue 11)."""
    data_dir = tmp_path / "data"
    shutil.copytree(synth_dir, data_dir)
    training = read_training_set(data_dir)
    from rakuten_assets.data.partitions import partition_rows

    victim = int(partition_rows("040", len(training))[5])
    x_path = data_dir / X_TRAIN_FILE
    lines = x_path.read_text(encoding="utf-8").split("\n")
    fields = lines[victim + 1].split(",", 2)  # generated rows hold no newline
    lines[victim + 1] = f"{fields[0]},,{fields[2]}"
    x_path.write_text("\n".join(lines), encoding="utf-8")

    result = ingest_040(database_url, data_dir)
    assert not result.success
    message = step_failures(result)
    assert f"{X_TRAIN_FILE}, line {victim + 2}, column 'designation'" in message
    engine = connect(database_url)
    assert load_history(engine).empty  # nothing written
    engine.dispose()


@pytest.mark.slow
def test_invalid_files_fail_raw_products_with_the_reader_message(
    database_url: str, challenge_fixture_dir: Path
) -> None:
    y_path = challenge_fixture_dir / "Y_train_CVw08PX.csv"
    y_path.write_text(y_path.read_text().replace("0,10", "0,11"))
    result = ingest_040(database_url, challenge_fixture_dir)
    assert not result.success
    message = step_failures(result)
    assert "Y_train_CVw08PX.csv, line 2, column 'prdtypecode'" in message
    engine = connect(database_url)
    assert load_history(engine).empty  # nothing written
    engine.dispose()
