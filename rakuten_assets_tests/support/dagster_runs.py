"""Dagster runs in process for the tests, the resources they run with, and reading what they
produced."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from rakuten_assets.defs.monitoring import drift_metrics
from rakuten_assets.defs.resources import (
    ChallengeFilesResource,
    DatabaseResource,
    MlflowResource,
    PushgatewayResource,
    mlflow_tracking,
)


def project_resources(
    database_url: str,
    store: dict[str, str],
    model_name: str,
    *,
    experiment: str | None = None,
    data_dir: Path | None = None,
    gateway: str | None = None,
) -> dict[str, object]:
    """The resources of the training and quality assets on a test database and MLflow store
    (`store`: the `mlflow_store` fixture); the challenge files only when `data_dir` is given."""
    experiment = experiment or model_name
    resources: dict[str, object] = {
        "database": DatabaseResource(url=database_url),
        "mlflow_registry": MlflowResource(
            tracking_uri=store["tracking_uri"],
            experiment_name=experiment,
            model_name=model_name,
            artifact_root=store["artifact_root"],
        ),
        "mlflow_tracking": mlflow_tracking.configured(
            {
                "experiment_name": experiment,
                "mlflow_tracking_uri": store["tracking_uri"],
                "artifact_root": store["artifact_root"],
            }
        ),
        "pushgateway": PushgatewayResource(url=gateway),
    }
    if data_dir is not None:
        resources["challenge_files"] = ChallengeFilesResource(data_dir=str(data_dir))
    return resources


def metadata_values(materialization: dg.AssetMaterialization) -> dict[str, object]:
    """The metadata of a materialization as plain values."""
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    """The metadata of the one asset `result` materialized."""
    (event,) = result.get_asset_materialization_events()
    return metadata_values(event.step_materialization_data.materialization)


def step_failures(result: dg.ExecuteInProcessResult) -> str:
    """The error messages of the failed steps of `result`, one a line."""
    return "\n".join(
        event.event_specific_data.error.message  # type: ignore[union-attr]
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )


def materialize_drift(
    instance: dg.DagsterInstance, production: dict[str, str], pushgateway: str, last_n: int
) -> dg.ExecuteInProcessResult:
    """`drift_metrics` over the last `last_n` predictions, for the model `production` names
    (the `production` fixture), pushing to `pushgateway`."""
    return dg.materialize(
        [drift_metrics],
        instance=instance,
        resources={
            "database": DatabaseResource(url=production["database_url"]),
            "mlflow_registry": MlflowResource(
                tracking_uri=production["tracking_uri"], model_name=production["model_name"]
            ),
            "pushgateway": PushgatewayResource(url=pushgateway),
        },
        run_config={"ops": {"drift_metrics": {"config": {"last_n": last_n}}}},
    )
