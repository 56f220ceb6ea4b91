"""Monitoring: the inference log (written by the serving process) and `drift_metrics`.

`drift_metrics` is unpartitioned on purpose: it answers "is the traffic of the last window
still like the training data of the model in production?", a question about a sliding
window and about whichever model serves now. Daily partitions would freeze each day against
the model of that day and need a backfill to mean anything; here every materialization is
one report, kept in the `drift_reports` table (its history), in the asset's metadata (plotted
across materializations by the Dagster UI) and on the Pushgateway.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from rakuten_assets.db.feedback import window_feedback
from rakuten_assets.db.queries import inference_log_frame, insert_drift_report
from rakuten_assets.defs.launchpad_config import ParametersConfig, config_from_parameters
from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, PushgatewayResource
from rakuten_assets.defs.training import registered_model_version
from rakuten_assets.ml.plots import markdown_image
from rakuten_assets.monitoring.drift_plots import class_mix_png, length_histograms_png
from rakuten_assets.monitoring.drift_report import DriftReport, DriftThresholds, compute_drift
from rakuten_assets.monitoring.pushgateway import PushgatewayError
from rakuten_assets.monitoring.reference import load_reference, production_model
from rakuten_assets.settings import get_settings

DRIFT_CHECK = "no_drift_detected"

inference_log = dg.AssetSpec(
    "inference_log",
    group_name="monitoring",
    kinds={"postgres", "sqlite"},
    description="Every prediction served, written by the serving process (`rakuten serve`) "
    "to the inference_log table.",
)


class _DriftWindow(ParametersConfig):
    """The window of `drift_metrics`; the thresholds are the fields of `DriftThresholds`."""

    window_hours: float | None = Field(
        default=None,
        gt=0,
        description="Predictions of the last N hours; empty: RAKUTEN_DRIFT_WINDOW_HOURS (24).",
    )
    last_n: int | None = Field(
        default=None, ge=1, description="Only the last N predictions (with or without hours)."
    )

    def to_params(self) -> DriftThresholds:
        return DriftThresholds(**self.model_dump(exclude={"window_hours", "last_n"}))


DriftConfig = config_from_parameters(
    DriftThresholds,
    name="DriftConfig",
    module=__name__,
    doc="Window and thresholds of `drift_metrics` (window default: RAKUTEN_DRIFT_WINDOW_HOURS; "
    "thresholds: every field of `DriftThresholds`, with its default).",
    base=_DriftWindow,
)


def _table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    def cell(value: object) -> object:
        if isinstance(value, float):
            return round(value, 6)
        return value if isinstance(value, int | bool | str) or value is None else str(value)

    columns = [
        dg.TableColumn(str(name), "float" if frame[name].dtype.kind == "f" else "string")
        for name in frame.columns
    ]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({str(k): cell(v) for k, v in row.items()})
            for row in frame.to_dict("records")
        ],
        schema=dg.TableSchema(columns=columns),
    )


def _metadata(report: DriftReport, window: pd.DataFrame, reference) -> dict:  # type: ignore[no-untyped-def]
    metadata: dict[str, object] = {
        "verdict": report.verdict,
        "reasons": dg.MetadataValue.md(
            "\n".join(f"- {reason}" for reason in report.reasons) or "- none"
        ),
        "window_predictions": report.window_predictions,
        "psi_predicted_class": dg.MetadataValue.float(float(report.psi_predicted_class)),
        "js_predicted_class": dg.MetadataValue.float(float(report.js_predicted_class)),
        "oov_rate": dg.MetadataValue.float(float(report.current_oov_rate)),
        "confidence_mean": dg.MetadataValue.float(float(report.confidence_mean)),
        "low_confidence_share": dg.MetadataValue.float(float(report.low_confidence_share)),
        "empty_description_share": dg.MetadataValue.float(
            float(report.current_empty_description_share)
        ),
        # live accuracy on the predictions of the window that users corrected (/feedback)
        "feedback_corrected": report.feedback_corrected or 0,
        "feedback_accuracy": dg.MetadataValue.float(float(report.feedback_accuracy)),
        "summary": _table(report.summary_table()),
    }
    if len(window):
        metadata["text_lengths"] = dg.MetadataValue.md(
            markdown_image(length_histograms_png(reference, window), "text lengths")
        )
        metadata["class_mix"] = dg.MetadataValue.md(
            markdown_image(class_mix_png(report), "predicted class mix")
        )
    return metadata


@dg.asset(
    group_name="monitoring",
    kinds={"scipy", "prometheus"},
    deps=[
        inference_log,
        dg.AssetDep(registered_model_version, partition_mapping=dg.LastPartitionMapping()),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="drift_metrics",
            blocking=False,
            description="Fails (warning) when the window drifted from the training data.",
        )
    ],
    code_version="1",
)
def drift_metrics(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    database: DatabaseResource,
    mlflow_registry: MlflowResource,
    pushgateway: PushgatewayResource,
) -> dg.MaterializeResult:
    """Live traffic (the inference log over a window) against the training data of the
    production model: text lengths (KS, Wasserstein), empty descriptions, out-of-vocabulary
    rate, predicted-class mix (PSI, Jensen-Shannon), confidence, volume; and the live accuracy
    on the window's predictions that users corrected (POST /feedback)."""
    settings = mlflow_registry.settings()
    tracking_uri, model_name = str(settings["tracking_uri"]), str(settings["model_name"])
    model = production_model(tracking_uri, model_name)
    if model is None:
        raise dg.Failure(f"no version of {model_name} is aliased 'production': nothing to compare")
    engine = database.engine()
    reference, source = load_reference(tracking_uri, model.run_id, engine)

    hours = config.window_hours or get_settings().drift_window_hours
    since = (
        None
        if config.last_n and config.window_hours is None
        else (datetime.now(UTC) - timedelta(hours=hours))
    )
    window = inference_log_frame(engine, since=since, last_n=config.last_n)
    feedback = window_feedback(
        engine, since, min_id=int(window["id"].min()) if len(window) else None
    )
    report = compute_drift(reference, window, config.to_params(), feedback=feedback)
    computed_at = datetime.now(UTC)

    report_id = insert_drift_report(
        engine,
        {
            "computed_at": computed_at,
            "window_start": window["at"].min() if len(window) else None,
            "window_end": window["at"].max() if len(window) else None,
            "window_predictions": report.window_predictions,
            "model_name": model_name,
            "model_version": model.version,
            "verdict": report.verdict,
            "psi_predicted_class": _finite(report.psi_predicted_class),
            "js_predicted_class": _finite(report.js_predicted_class),
            "reasons": list(report.reasons),
            "report": report.as_dict(),
            "dagster_run_id": context.run.run_id,
        },
    )
    try:
        pushed = pushgateway.push(report.gauges())
    except (PushgatewayError, ValueError) as error:  # the report is stored; say so loudly
        context.log.warning(f"drift gauges not pushed: {error}")
        pushed = f"failed: {error}"
    context.log.info(f"drift report {report_id}: {report.verdict}; {'; '.join(report.reasons)}")

    metadata = _metadata(report, window, reference)
    metadata.update(
        {
            "drift_report_id": report_id,
            "model_version": model.version,
            "reference": f"run {model.run_id} ({source}), {reference.rows:,} training rows",
            "window": f"last {config.last_n} predictions"
            if since is None
            else (
                f"since {since.isoformat(timespec='seconds')}"
                + (f", last {config.last_n}" if config.last_n else "")
            ),
            "pushgateway": pushed or "not configured (RAKUTEN_PUSHGATEWAY_URL)",
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=report.verdict != "drift",
                severity=dg.AssetCheckSeverity.WARN,
                description="; ".join(report.reasons) or report.verdict,
                metadata={"verdict": report.verdict},
            )
        ],
    )


def _finite(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (empty window) -> NULL


drift_job = dg.define_asset_job(
    name="drift",
    selection=dg.AssetSelection.assets(drift_metrics),
    description="Compare the inference log with the production model's training data.",
)

defs = dg.Definitions(assets=[inference_log, drift_metrics], jobs=[drift_job])
