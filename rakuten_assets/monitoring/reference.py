"""The model in production and its drift reference (no Dagster imports).

Training logs `reference_profile.json` with every run (rakuten_assets.ml.tracking). For a
run without it (trained before the artifact existed), the reference is rebuilt exactly from
the audit trail: the run's data load and split params give back its training rows.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from rakuten_assets.ml.model_loader import load_model
from rakuten_assets.ml.registry import PRODUCTION
from rakuten_assets.ml.reproduce import rebuild_dataset
from rakuten_assets.ml.tracking import MODEL_ARTIFACT, REFERENCE_ARTIFACT, training_reference
from rakuten_assets.monitoring.drift_statistics import ReferenceProfile


@dataclass(frozen=True)
class ProductionModel:
    name: str
    version: str
    run_id: str
    partition: str | None


def production_model(tracking_uri: str, model_name: str) -> ProductionModel | None:
    """The version aliased `production`, or None when there is none yet."""
    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, PRODUCTION)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    partition = client.get_run(version.run_id).data.tags.get("partition")
    return ProductionModel(model_name, str(version.version), version.run_id, partition)


def load_reference(tracking_uri: str, run_id: str, engine: Engine) -> tuple[ReferenceProfile, str]:
    """The reference profile of a training run, and where it came from."""
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, folder)
            return ReferenceProfile.from_dict(json.loads(Path(path).read_text())), "artifact"
        except (MlflowException, OSError):
            pass
    dataset = rebuild_dataset(engine, client.get_run(run_id))
    pipeline = load_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", tracking_uri)
    return training_reference(dataset, pipeline), "rebuilt from the audit trail"
