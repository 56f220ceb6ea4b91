"""Dagster runs in process for the tests, and reading what they produced."""

from __future__ import annotations

import dagster as dg

from rakuten_assets.defs.monitoring import drift_metrics
from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, PushgatewayResource


def drift_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    materialization = event.step_materialization_data.materialization
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


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
