"""`rakuten reproduce`: the exact data of a run comes back from the audit trail after more
partitions were loaded and rows were updated, and the retrained model predicts identically."""

from __future__ import annotations

import mlflow
import pandas as pd
from sqlalchemy import Engine

from rakuten_assets.data.partitions import partition_rows
from rakuten_assets.db.loader import load_partition
from rakuten_assets.db.queries import snapshot
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingParams, train
from rakuten_assets.ml.reproduce import reproduce_run
from rakuten_assets.ml.tracking import PREDICTIONS_ARTIFACT, ensure_experiment, log_training_run

PARAMS = TrainingParams(max_features=3000)
SPLIT = SplitParams(min_test_rows_per_class=0, seed=5)


def _delta(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    columns = ["productid", "imageid", "designation", "description", "prdtypecode"]
    return frame.iloc[partition_rows(key, len(frame))][columns]


def _train_and_log(engine: Engine, load_id: int, store: dict[str, str]) -> str:
    dataset = build_balanced_dataset(snapshot(engine, load_id=load_id), "040", load_id, SPLIT)
    result = train(dataset, PARAMS)
    mlflow.set_tracking_uri(store["tracking_uri"])
    experiment = ensure_experiment(store["tracking_uri"], "reproduce", store["artifact_root"])
    with mlflow.start_run(experiment_id=experiment) as run:
        log_training_run(result, dataset, {"batch_name": "initial"})
    return run.info.run_id


def test_reproduce_after_more_loads_and_updates(
    engine: Engine, synth_frame: pd.DataFrame, mlflow_store: dict[str, str]
) -> None:
    data = synth_frame.head(5000)
    first = load_partition(engine, "040", _delta(data, "040"), {"X": "1"})
    run_id = _train_and_log(engine, first.load_id, mlflow_store)

    load_partition(engine, "043", _delta(data, "043"), {"X": "1"})
    load_partition(engine, "046", _delta(data, "046"), {"X": "1"})
    changed = _delta(data, "040").copy()
    changed.iloc[:25, changed.columns.get_loc("designation")] = "Titre corrigé plus tard"
    relabelled = int((changed.iloc[25:40]["prdtypecode"] != 2583).sum())
    changed.iloc[25:40, changed.columns.get_loc("prdtypecode")] = 2583
    update = load_partition(engine, "040", changed.iloc[:-10], {"X": "2"})
    assert (update.rows_updated, update.rows_deleted) == (25 + relabelled, 10)

    report = reproduce_run(engine, mlflow_store["tracking_uri"], run_id)
    assert report.identical, report
    assert report.data_hash_logged == report.data_hash_rebuilt
    assert report.test_rows > 100
    assert report.weighted_f1_rebuilt == report.weighted_f1_logged


def test_reproduce_reports_a_mismatch(
    engine: Engine, synth_frame: pd.DataFrame, mlflow_store: dict[str, str], tmp_path
) -> None:
    data = synth_frame.head(3000)
    first = load_partition(engine, "040", _delta(data, "040"), {"X": "1"})
    run_id = _train_and_log(engine, first.load_id, mlflow_store)
    # Tamper with the run's record: its logged predictions no longer match its model.
    client = mlflow.MlflowClient(mlflow_store["tracking_uri"])
    path = client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, str(tmp_path))
    predictions = pd.read_csv(path)
    predictions.loc[:4, "predicted"] = 10 if predictions.loc[0, "predicted"] != 10 else 40
    predictions.to_csv(path, index=False)
    client.log_artifact(run_id, path)

    report = reproduce_run(engine, mlflow_store["tracking_uri"], run_id)
    assert not report.identical
    assert report.differing_from_logged_predictions >= 1
    assert report.differing_from_logged_model == 0
