"""Fixtures of the Dagster tier: a real Pushgateway, and a model in production in an MLflow
store (SQLite) with its drift reference."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest

from rakuten_assets.benchmarks.processes import Service, free_port
from rakuten_assets.db.engine import connect
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.registry import ModelRegistry, decide_promotion
from rakuten_assets.ml.tracking import ensure_experiment, log_training_run
from rakuten_assets_tests.support.processes import binary, started


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    service = Service(
        [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"],
        dict(os.environ),
        folder / "pushgateway.log",
    )
    url = f"http://127.0.0.1:{port}"
    started(service, f"{url}/-/ready", "the Pushgateway", 60)
    yield url
    service.stop()


@pytest.fixture(scope="module")
def production(
    tmp_path_factory: pytest.TempPathFactory, trained: TrainingResult, synth_frame: pd.DataFrame
) -> dict[str, str]:
    """The `trained` model logged (with its drift reference), registered and in production."""
    folder = tmp_path_factory.mktemp("drift-store")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    database = f"sqlite:///{folder / 'rakuten.db'}"
    model_name = f"drift-{uuid.uuid4().hex[:6]}"
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(min_test_rows_per_class=0))
    mlflow.set_tracking_uri(tracking)
    experiment = ensure_experiment(tracking, "drift", (folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        uri = log_training_run(trained, dataset, {})
    registry = ModelRegistry(tracking, model_name, connect(database))
    version = registry.register(uri, run.info.run_id, {})
    registry.promote(str(version.version), decide_promotion(1.0, None, 0.0), "test")
    return {"tracking_uri": tracking, "database_url": database, "model_name": model_name}
