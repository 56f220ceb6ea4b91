"""Rebuild a training run from its MLflow record and the audit trail, and compare.

The run's tags name the data load; the snapshot as of that load is rebuilt from
`products_history` (rows changed or added since come back as they were), split and
oversampled with the run's parameters, and the model retrained. Reproduction holds when the
data hash matches and the test predictions are identical to those logged with the run and to
those of the logged model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from sqlalchemy import Engine

from rakuten_assets.db.queries import snapshot
from rakuten_assets.ml.dataset import BalancedDataset, SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingParams, listings, train
from rakuten_assets.ml.model_loader import load_model
from rakuten_assets.ml.tracking import MODEL_ARTIFACT, PREDICTIONS_ARTIFACT


@dataclass(frozen=True)
class Reproduction:
    run_id: str
    partition: str
    load_id: int
    data_hash_logged: str
    data_hash_rebuilt: str
    test_rows: int
    differing_from_logged_predictions: int
    differing_from_logged_model: int
    weighted_f1_logged: float
    weighted_f1_rebuilt: float

    @property
    def identical(self) -> bool:
        return (
            self.data_hash_logged == self.data_hash_rebuilt
            and self.differing_from_logged_predictions == 0
            and self.differing_from_logged_model == 0
        )


def split_params_from_mlflow(params: dict[str, str]) -> SplitParams:
    cap = params.get("oversample_cap", "None")
    return SplitParams(
        test_share=float(params["test_share"]),
        oversample_cap=None if cap in ("None", "") else int(cap),
        seed=int(params["split_seed"]),
        min_test_rows_per_class=int(params.get("min_test_rows_per_class", "0")),
    )


def _differences(expected: pd.DataFrame, actual: pd.DataFrame) -> int:
    merged = expected.merge(actual, on="productid", how="outer", suffixes=("_a", "_b"))
    return int((merged["predicted_a"] != merged["predicted_b"]).sum())


def rebuild_dataset(engine: Engine, run: Run) -> BalancedDataset:
    """The exact training data of a run, from the audit trail and the run's params."""
    tags, params = run.data.tags, run.data.params
    if "data_load_id" not in tags:
        raise ValueError(
            f"run {run.info.run_id} is not a training run of this project (no data_load_id)"
        )
    load_id = int(tags["data_load_id"])
    return build_balanced_dataset(
        snapshot(engine, load_id=load_id),
        tags["partition"],
        load_id,
        split_params_from_mlflow(params),
    )


def reproduce_run(engine: Engine, tracking_uri: str, run_id: str) -> Reproduction:
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    tags, params = run.data.tags, run.data.params
    dataset = rebuild_dataset(engine, run)
    load_id = dataset.load_id
    result = train(dataset, TrainingParams.from_mlflow_params(params))
    rebuilt = result.test_predictions[["productid", "predicted"]]

    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, folder)
        logged = pd.read_csv(Path(path))[["productid", "predicted"]]
    logged_model = load_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", tracking_uri)
    from_logged_model = pd.DataFrame(
        {
            "productid": dataset.test["productid"].to_numpy(),
            "predicted": logged_model.predict(listings(dataset.test)),
        }
    )
    return Reproduction(
        run_id=run_id,
        partition=tags["partition"],
        load_id=load_id,
        data_hash_logged=tags.get("data_hash", ""),
        data_hash_rebuilt=dataset.data_hash,
        test_rows=len(dataset.test),
        differing_from_logged_predictions=_differences(logged, rebuilt),
        differing_from_logged_model=_differences(from_logged_model, rebuilt),
        weighted_f1_logged=float(run.data.metrics.get("weighted_f1", float("nan"))),
        weighted_f1_rebuilt=result.evaluation.weighted_f1,
    )
