"""The one way this project loads a model from MLflow: skops only, trusted types allow-listed.

`mlflow.sklearn.load_model` follows the `serialization_format` written in the artifact's
`MLmodel` file: a version whose `MLmodel` says `cloudpickle` runs whatever its `model.pkl`
carries, in the process that loads it. Anyone able to register a version or write to the
artifact store would own every serving worker. So the artifact is downloaded as files, its
`MLmodel` is read as data (`yaml.safe_load`), only the skops format is accepted, and skops
loads the file trusting exactly the types of `TRUSTED_TYPES` beyond its own safe defaults.
Everything else raises `UntrustedModelError` before any object of the file is built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import skops.io
import yaml
from sklearn.pipeline import Pipeline

# Types this project's pipelines contain beyond skops' default trust (scikit-learn estimators,
# numpy and scipy containers). Logging refuses a model with any other (ml.tracking), loading
# refuses it too. Adding a type here is a security decision: its __setstate__ will run on data
# that whoever writes to the registry controls.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "rakuten_assets.ml.text.ListingTextCleaner",
        "rakuten_assets.ml.vectorizer.CompactTfidfVectorizer",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    }
)
SKOPS = "skops"


class UntrustedModelError(ValueError):
    """A model artifact that is not a skops file of trusted types: refused, never loaded."""


def untrusted_types(types: list[str]) -> list[str]:
    """The types of `types` that are outside the project's allow-list."""
    return sorted(set(types) - TRUSTED_TYPES)


def load_model_directory(directory: Path) -> Pipeline:
    """Load a downloaded MLflow model folder (MLmodel + skops file) or raise."""
    directory = Path(directory).resolve()
    try:
        config = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UntrustedModelError(
            f"no readable MLmodel file in the model artifact: {error}"
        ) from None
    flavor = (config.get("flavors") or {}).get("sklearn") if isinstance(config, dict) else None
    if not isinstance(flavor, dict):
        raise UntrustedModelError("the model artifact has no sklearn flavor; refused")
    serialization = flavor.get("serialization_format")
    if serialization != SKOPS:
        raise UntrustedModelError(
            f"serialization format {serialization!r} is refused: only skops models are "
            "loaded (pickle and cloudpickle can run code on load)"
        )
    file = (directory / str(flavor.get("pickled_model", ""))).resolve()
    if directory not in file.parents or not file.is_file():
        raise UntrustedModelError(f"the model file {flavor.get('pickled_model')!r} is missing")
    try:
        found = skops.io.get_untrusted_types(file=file)
    except Exception as error:  # a corrupt or forged archive
        raise UntrustedModelError(f"the skops file cannot be read: {error}") from error
    refused = untrusted_types(found)
    if refused:
        raise UntrustedModelError(
            f"the model contains types outside the project's allow-list: {', '.join(refused)}"
        )
    model = skops.io.load(file, trusted=sorted(found))
    if not isinstance(model, Pipeline):
        raise UntrustedModelError(f"expected a scikit-learn Pipeline, found {type(model)!r}")
    return model


def load_model(model_uri: str, tracking_uri: str) -> Pipeline:
    """Load `models:/name/version`, `runs:/id/model` (or any MLflow model URI) safely."""
    with tempfile.TemporaryDirectory(prefix="rakuten-model-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=folder,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        return load_model_directory(Path(local))
