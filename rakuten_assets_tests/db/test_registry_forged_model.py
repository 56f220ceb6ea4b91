"""The champion/challenger evaluation loads registered versions through the same skops-only
loader: a forged version in the registry is refused before any of its objects is built."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import pytest

from rakuten_assets.db.engine import connect
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.model_loader import (
    UntrustedModelError,
    load_model,
)
from rakuten_assets.ml.registry import ModelRegistry
from rakuten_assets_tests.support.forged_models import forge_cloudpickle, save_skops_model


def test_registry_evaluation_refuses_a_forged_version(
    tmp_path: Path, small_trained: TrainingResult, synth_frame, mlflow_store: dict[str, str]
) -> None:
    """The champion/challenger evaluation loads registered versions through the same loader."""
    uri = mlflow_store["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    name = f"forged-{uuid.uuid4().hex[:6]}"
    folder = save_skops_model(small_trained.pipeline, tmp_path / "model")
    marker = tmp_path / "owned"
    forge_cloudpickle(folder, marker)
    experiment = mlflow.create_experiment(
        f"forged-{uuid.uuid4().hex[:6]}", artifact_location=mlflow_store["artifact_root"]
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="model")
    registry = ModelRegistry(uri, name, connect(f"sqlite:///{tmp_path / 'rakuten.db'}"))
    version = registry.register(f"runs:/{run.info.run_id}/model", run.info.run_id, {})
    with pytest.raises(UntrustedModelError, match="cloudpickle"):
        registry.weighted_f1_on(str(version.version), synth_frame.head(20))
    with pytest.raises(UntrustedModelError, match="cloudpickle"):
        load_model(f"runs:/{run.info.run_id}/model", uri)
    assert not marker.exists()
    registry.engine.dispose()
