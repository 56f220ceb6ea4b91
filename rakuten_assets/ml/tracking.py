"""MLflow experiment set-up and the logging of one training run (params, metrics, artifacts,
tags, the model in skops format)."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import skops.io
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from rakuten_assets.ml.dataset import BalancedDataset
from rakuten_assets.ml.model import TrainingResult, listings, model_card
from rakuten_assets.ml.model_loader import UntrustedModelError, untrusted_types
from rakuten_assets.ml.plots import confusion_matrix_png
from rakuten_assets.monitoring.drift_statistics import (
    ReferenceProfile,
    model_vocabulary,
    reference_profile,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
PREDICTIONS_ARTIFACT = "test_predictions.csv"
REFERENCE_ARTIFACT = "reference_profile.json"


def training_reference(dataset: BalancedDataset, pipeline: object) -> ReferenceProfile:
    """The drift reference of a model: its training rows (before oversampling) and its
    vocabulary."""
    return reference_profile(dataset.train, model_vocabulary(pipeline), seed=dataset.params.seed)


SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("string", "designation"), ColSpec("string", "description", required=False)]
    ),
    outputs=Schema([ColSpec("long")]),
)


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str | None) -> str:
    """The experiment's id, creating it (with its artifact location) when missing."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def trusted_types(pipeline: object) -> list[str]:
    """The non-default types skops must trust to load the model; refuses a model that the
    loader (ml.model_loader) would refuse, so nothing unloadable is ever logged."""
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    refused = untrusted_types(untrusted)
    if refused:
        raise UntrustedModelError(f"the model contains types outside the allow-list: {refused}")
    return untrusted


def log_training_run(
    result: TrainingResult,
    dataset: BalancedDataset,
    tags: dict[str, str],
) -> str:
    """Log a training result to the active MLflow run; returns the model's URI."""
    split = dataset.params
    mlflow.log_params(
        {
            **result.params.as_mlflow_params(),
            "test_share": str(split.test_share),
            "oversample_cap": str(split.oversample_cap),
            "split_seed": str(split.seed),
            "min_test_rows_per_class": str(split.min_test_rows_per_class),
        }
    )
    mlflow.log_metrics(
        {
            **result.evaluation.mlflow_metrics(),
            "train_rows": float(len(dataset.train)),
            "train_rows_oversampled": float(len(dataset.sample_positions)),
            "test_rows": float(len(dataset.test)),
            **{key: float(value) for key, value in result.timings.items()},
        }
    )
    mlflow.set_tags(
        {
            **tags,
            "partition": dataset.partition_key,
            "data_load_id": str(dataset.load_id),
            "data_hash": dataset.data_hash,
            "git_commit": git_commit(),
        }
    )
    data_version = {
        "partition": dataset.partition_key,
        "data_load_id": dataset.load_id,
        "batch_name": tags.get("batch_name", ""),
        "data_hash": dataset.data_hash,
    }
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        (directory / "confusion_matrix.png").write_bytes(confusion_matrix_png(result.evaluation))
        (directory / "classification_report.txt").write_text(result.evaluation.report)
        (directory / "model_card.md").write_text(model_card(result, dataset, data_version))
        result.test_predictions.to_csv(directory / PREDICTIONS_ARTIFACT, index=False)
        dataset.class_counts().to_csv(directory / "class_counts.csv")
        # What drift monitoring compares live traffic with (rakuten_assets.monitoring).
        (directory / REFERENCE_ARTIFACT).write_text(
            json.dumps(training_reference(dataset, result.pipeline).to_dict())
        )
        mlflow.log_artifacts(str(directory))

    example = listings(dataset.test.head(3)).astype(object)
    example = example.where(example.notna(), "")
    info = mlflow.sklearn.log_model(
        result.pipeline,
        name=MODEL_ARTIFACT,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted_types(result.pipeline),
        signature=SIGNATURE,
        input_example=pd.DataFrame(example),
        # Pinned here rather than inferred (inference loads the model in a subprocess); the
        # cleaning step also needs this project's package, installed wherever models are served.
        pip_requirements=[f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "ftfy")],
    )
    return info.model_uri
