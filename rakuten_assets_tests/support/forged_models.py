"""Model artifacts saved as MLflow saves them, and forged as an attacker with write access to
the artifacts would forge them (a cloudpickle whose unpickling runs a command)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mlflow
import yaml
from sklearn.pipeline import Pipeline

from rakuten_assets.ml.tracking import trusted_types


class RunsCommand:
    """Unpickling this runs a shell command: the payload of a forged cloudpickle model."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def save_skops_model(pipeline: Pipeline, folder: Path, trusted: list[str] | None = None) -> Path:
    """Save as MLflow does; `trusted`: the types to write as trusted (default: checked
    against the allow-list, as training does)."""
    mlflow.sklearn.save_model(
        pipeline,
        str(folder),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted if trusted is not None else trusted_types(pipeline),
        pip_requirements=["scikit-learn", "skops"],  # not inferred: that loads it in a subprocess
    )
    return folder


def forge_cloudpickle(folder: Path, marker: Path) -> None:
    """Rewrite a saved model as an attacker with write access to the artifacts would."""
    mlmodel = folder / "MLmodel"
    config = yaml.safe_load(mlmodel.read_text())
    config["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    config["flavors"]["sklearn"]["pickled_model"] = "model.pkl"
    mlmodel.write_text(yaml.safe_dump(config))
    (folder / "model.pkl").write_bytes(pickle.dumps(RunsCommand(marker)))
