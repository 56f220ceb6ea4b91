"""Models load only as skops files of allow-listed types (ml.model_loader), everywhere.

The threat: `mlflow.sklearn.load_model` follows the `serialization_format` of the artifact's
MLmodel file, so whoever can write a model version or its artifacts runs code in every process
that loads it. Each test forges such an artifact and checks that loading refuses it before any
of its objects is built."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import pytest
import skops.io
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from rakuten_assets.ml.model import TrainingResult, listings
from rakuten_assets.ml.model_loader import (
    TRUSTED_TYPES,
    UntrustedModelError,
    load_model_directory,
)
from rakuten_assets.ml.tracking import trusted_types
from rakuten_assets_tests.support.forged_models import forge_cloudpickle, save_skops_model


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, small_trained: TrainingResult) -> Path:
    """The small_trained model saved once (saving takes seconds); each test forges a copy."""
    return save_skops_model(small_trained.pipeline, tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def saved(tmp_path: Path, pristine: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "model"))


def test_a_skops_model_of_trusted_types_loads_and_predicts_the_same(
    saved: Path, small_trained: TrainingResult, synth_frame
) -> None:
    model = load_model_directory(saved)
    sample = listings(synth_frame.head(50))
    assert (model.predict(sample) == small_trained.pipeline.predict(sample)).all()


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
    tmp_path: Path, small_trained: TrainingResult
) -> None:
    # os.system as the function of a FunctionTransformer: skops would call it on predict
    evil = Pipeline(
        [("run", FunctionTransformer(func=os.system)), *small_trained.pipeline.steps[1:]]
    )
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
    saved: Path, small_trained: TrainingResult
) -> None:
    (saved / "model.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UntrustedModelError, match="cannot be read"):
        load_model_directory(saved)
    skops.io.dump(small_trained.pipeline.named_steps["classifier"], saved / "model.skops")
    with pytest.raises(UntrustedModelError, match="Pipeline"):
        load_model_directory(saved)
    (saved / "MLmodel").write_text("flavors: [")
    with pytest.raises(UntrustedModelError, match="MLmodel"):
        load_model_directory(saved)


def test_the_allow_list_names_only_project_and_scikit_learn_types() -> None:
    assert all(name.startswith(("rakuten_assets.", "sklearn.")) for name in TRUSTED_TYPES)
