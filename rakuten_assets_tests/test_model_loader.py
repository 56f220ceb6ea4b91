"""Models load only as skops files of allow-listed types (ml.model_loader), everywhere.

The threat: `mlflow.sklearn.load_model` follows the `serialization_format` of the artifact's
MLmodel file, so whoever can write a model version or its artifacts runs code in every process
that loads it. Each test forges such an artifact and checks that loading refuses it before any
of its objects is built."""

from __future__ import annotations

import os
import pickle
import shutil
import uuid
from pathlib import Path

import mlflow
import pytest
import skops.io
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from rakuten_assets.db.engine import connect
from rakuten_assets.ml.model import TrainingResult, listings
from rakuten_assets.ml.model_loader import (
    TRUSTED_TYPES,
    UntrustedModelError,
    load_model,
    load_model_directory,
)
from rakuten_assets.ml.registry import ModelRegistry
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


@pytest.fixture
def saved(tmp_path: Path, trained: TrainingResult) -> Path:
    return save_skops_model(trained.pipeline, tmp_path / "model")


def test_a_skops_model_of_trusted_types_loads_and_predicts_the_same(
    saved: Path, trained: TrainingResult, synth_frame
) -> None:
    model = load_model_directory(saved)
    sample = listings(synth_frame.head(50))
    assert (model.predict(sample) == trained.pipeline.predict(sample)).all()


def test_a_cloudpickle_model_is_refused_without_running_its_code(
    saved: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "owned"
    forge_cloudpickle(saved, marker)
    with pytest.raises(UntrustedModelError, match="'cloudpickle' is refused"):
        load_model_directory(saved)
    assert not marker.exists()
    # what the loader replaces: MLflow's own loader runs the payload
    mlflow.sklearn.load_model(str(saved))
    assert marker.exists()


@pytest.mark.parametrize("serialization", ["pickle", None, "skops "])
def test_any_other_serialization_format_is_refused(saved: Path, serialization: str | None) -> None:
    mlmodel = saved / "MLmodel"
    config = yaml.safe_load(mlmodel.read_text())
    config["flavors"]["sklearn"]["serialization_format"] = serialization
    mlmodel.write_text(yaml.safe_dump(config))
    with pytest.raises(UntrustedModelError, match="only skops"):
        load_model_directory(saved)


def test_a_skops_model_with_a_type_outside_the_allow_list_is_refused(
    tmp_path: Path, trained: TrainingResult
) -> None:
    # os.system as the function of a FunctionTransformer: skops would call it on predict
    evil = Pipeline([("run", FunctionTransformer(func=os.system)), *trained.pipeline.steps[1:]])
    forged = skops.io.get_untrusted_types(data=skops.io.dumps(evil))
    folder = save_skops_model(evil, tmp_path / "evil", trusted=forged)
    with pytest.raises(UntrustedModelError, match="outside the project's allow-list"):
        load_model_directory(folder)
    with pytest.raises(UntrustedModelError, match="outside the allow-list"):
        trusted_types(evil)  # and such a model is never logged in the first place


def test_a_model_file_outside_the_artifact_or_missing_is_refused(saved: Path) -> None:
    shutil.copy(saved / "model.skops", saved.parent / "outside.skops")
    mlmodel = saved / "MLmodel"
    config = yaml.safe_load(mlmodel.read_text())
    for path in ("../outside.skops", "nothing.skops", ""):
        config["flavors"]["sklearn"]["pickled_model"] = path
        mlmodel.write_text(yaml.safe_dump(config))
        with pytest.raises(UntrustedModelError, match="missing"):
            load_model_directory(saved)


def test_a_corrupt_file_or_something_else_than_a_pipeline_is_refused(
    saved: Path, trained: TrainingResult
) -> None:
    (saved / "model.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UntrustedModelError, match="cannot be read"):
        load_model_directory(saved)
    skops.io.dump(trained.pipeline.named_steps["classifier"], saved / "model.skops")
    with pytest.raises(UntrustedModelError, match="Pipeline"):
        load_model_directory(saved)
    (saved / "MLmodel").write_text("flavors: [")
    with pytest.raises(UntrustedModelError, match="MLmodel"):
        load_model_directory(saved)


def test_the_allow_list_names_only_project_and_scikit_learn_types() -> None:
    assert all(name.startswith(("rakuten_assets.", "sklearn.")) for name in TRUSTED_TYPES)


def test_registry_evaluation_refuses_a_forged_version(
    tmp_path: Path, trained: TrainingResult, synth_frame, mlflow_store: dict[str, str]
) -> None:
    """The champion/challenger evaluation loads registered versions through the same loader."""
    uri = mlflow_store["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    name = f"forged-{uuid.uuid4().hex[:6]}"
    folder = save_skops_model(trained.pipeline, tmp_path / "model")
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
