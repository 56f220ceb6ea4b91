"""Fixtures of the database tier."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.tracking import ensure_experiment, log_training_run


@pytest.fixture(scope="session")
def logged_small_model(
    small_trained: TrainingResult, synth_frame: pd.DataFrame, mlflow_store: dict[str, str]
) -> tuple[str, str]:
    """`small_trained` logged once to the temporary MLflow store: (model URI, run id)."""
    mlflow.set_tracking_uri(mlflow_store["tracking_uri"])
    experiment = ensure_experiment(
        mlflow_store["tracking_uri"], "registry-tests", mlflow_store["artifact_root"]
    )
    dataset = build_balanced_dataset(synth_frame.head(500), "040", 1, SplitParams())
    with mlflow.start_run(experiment_id=experiment) as run:
        uri = log_training_run(small_trained, dataset, {"batch_name": "initial"})
    return uri, run.info.run_id
