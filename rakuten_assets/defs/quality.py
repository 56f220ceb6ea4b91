"""Model quality: `production_model_evaluation`, the production model graded on each
partition's new rows before any retraining on them (prequential evaluation).

Partitioned like `products` (a dependency, not a data input: the rows are read from the
project database). For partition P it grades the model in production at evaluation time, and
never one trained on P or later (rakuten_assets.monitoring.quality.refusal): such a run is
skipped, its metadata says why, and nothing is written. Automation (defs/automation.py)
evaluates a new partition before training on it. The asset check `f1_within_margin_of_test`
warns (non-blocking) when the weighted F1 on the partition falls more than a margin below
the model's own test F1; the check is skipped (not run) when nothing was graded or the
model's run logged no test F1 to compare with.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from rakuten_assets.data.categories import category_name
from rakuten_assets.db.evaluations import replace_model_evaluation
from rakuten_assets.db.queries import current_products, latest_load_id
from rakuten_assets.defs.ingestion import products
from rakuten_assets.defs.partitions import ONE_PARTITION_PER_RUN, products_partitions
from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, PushgatewayResource
from rakuten_assets.ml.model_loader import load_model
from rakuten_assets.monitoring.pushgateway import PushgatewayError
from rakuten_assets.monitoring.quality import (
    PartitionEvaluation,
    ProductionVersion,
    evaluate_partition,
    production_version,
    quality_gauges,
    refusal,
    within_margin,
)
from rakuten_assets.settings import get_settings

EVALUATION = "production_model_evaluation"
QUALITY_CHECK = "f1_within_margin_of_test"
EVALUATED, SKIPPED = "evaluated", "skipped"


class EvaluationConfig(dg.Config):
    """The margin of `f1_within_margin_of_test` (empty: RAKUTEN_QUALITY_F1_MARGIN, 0.03)."""

    f1_margin: float | None = Field(
        default=None,
        ge=0,
        description="How far below its test F1 the production model's weighted F1 on the "
        "partition may fall; empty: RAKUTEN_QUALITY_F1_MARGIN (0.03).",
    )

    def margin(self) -> float:
        return get_settings().quality_f1_margin if self.f1_margin is None else self.f1_margin


def per_class_table(evaluation: PartitionEvaluation) -> dg.TableMetadataValue:
    frame = evaluation.per_class.sort_values("f1")
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "prdtypecode": int(code),
                    "category": category_name(int(code)),
                    "f1": round(float(row["f1"]), 6),
                    "precision": round(float(row["precision"]), 6),
                    "recall": round(float(row["recall"]), 6),
                    "rows": int(row["support"]),
                }
            )
            for code, row in frame.iterrows()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("prdtypecode", "int"),
                dg.TableColumn("category", "string"),
                dg.TableColumn("f1", "float"),
                dg.TableColumn("precision", "float"),
                dg.TableColumn("recall", "float"),
                dg.TableColumn("rows", "int"),
            ]
        ),
    )


def _skipped(
    context: dg.AssetExecutionContext, reason: str, model: ProductionVersion | None
) -> dg.MaterializeResult:
    """Nothing graded: the materialization says why; no row, no gauge, no check result."""
    context.log.info(f"{EVALUATION} [{context.partition_key}] skipped: {reason}")
    metadata: dict[str, object] = {"status": SKIPPED, "reason": reason}
    if model is not None:
        metadata["model_version"] = model.version
        metadata["model_trained_on"] = model.trained_on or "unknown"
    return dg.MaterializeResult(asset_key=EVALUATION, metadata=metadata)


@dg.multi_asset(
    name=EVALUATION,
    specs=[
        dg.AssetSpec(
            EVALUATION,
            deps=[products],
            group_name="monitoring",
            kinds={"scikitlearn", "prometheus"},
            description="The production model of the time graded on the rows partition P "
            "added, before any training on them: accuracy, weighted and macro F1, per-class F1 "
            "(table model_evaluations). Skipped, with the reason, when no model is in "
            "production (040) or the production model was trained on P or later.",
            code_version="1",
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            QUALITY_CHECK,
            asset=EVALUATION,
            blocking=False,
            partitions_def=products_partitions,
            description="Warns when the weighted F1 on the new partition falls more than the "
            "margin (RAKUTEN_QUALITY_F1_MARGIN, 0.03) below the model's own test F1.",
        )
    ],
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    # Lets the check be left out of a run that graded nothing (the UI shows it as skipped).
    can_subset=True,
)
def production_model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    database: DatabaseResource,
    mlflow_registry: MlflowResource,
    pushgateway: PushgatewayResource,
) -> Iterator[dg.MaterializeResult]:
    # Yielded, not returned: a multi-asset reads a returned MaterializeResult as a tuple.
    key = context.partition_key
    engine = database.engine()
    load_id = latest_load_id(engine, key)
    if load_id is None:
        raise dg.Failure(description=f"partition {key} of products is not loaded")
    registry = mlflow_registry.registry(engine)
    model = production_version(registry)
    if model is None:
        yield _skipped(
            context,
            f"no version of {registry.model_name} is aliased production yet: there is no "
            f"model to grade partition {key} with (the first partition, 040, never has one)",
            None,
        )
        return
    reason = refusal(key, model, load_id)
    if reason is not None:
        yield _skipped(context, reason, model)
        return

    rows = current_products(engine, key)
    pipeline = load_model(f"models:/{model.model_name}/{model.version}", registry.tracking_uri)
    evaluation = evaluate_partition(pipeline, rows, key, model.version, model.test_f1)
    margin = config.margin()
    within = within_margin(evaluation, margin)
    row_id = replace_model_evaluation(
        engine,
        {
            "partition_key": key,
            "model_name": model.model_name,
            "model_version": model.version,
            "rows": evaluation.rows,
            "accuracy": evaluation.accuracy,
            "weighted_f1": evaluation.weighted_f1,
            "macro_f1": evaluation.macro_f1,
            "per_class_f1": evaluation.per_class_f1(),
            "model_test_f1": evaluation.test_f1,
            "evaluated_at": datetime.now(UTC),
            "dagster_run_id": context.run.run_id,
        },
    )
    try:
        pushed = pushgateway.push_model_evaluation(quality_gauges(evaluation))
    except (PushgatewayError, ValueError) as error:  # the row is stored; say so loudly
        context.log.warning(f"evaluation gauges not pushed: {error}")
        pushed = f"failed: {error}"
    summary = (
        f"v{model.version} (trained on {model.trained_on}) on {evaluation.rows} rows of "
        f"partition {key}: accuracy {evaluation.accuracy:.4f}, weighted F1 "
        f"{evaluation.weighted_f1:.4f}, macro F1 {evaluation.macro_f1:.4f}"
    )
    context.log.info(summary)

    metadata: dict[str, object] = {
        "status": EVALUATED,
        "model_version": model.version,
        "model_trained_on": str(model.trained_on),
        "rows": dg.MetadataValue.int(evaluation.rows),
        "accuracy": dg.MetadataValue.float(evaluation.accuracy),
        "weighted_f1": dg.MetadataValue.float(evaluation.weighted_f1),
        "macro_f1": dg.MetadataValue.float(evaluation.macro_f1),
        "per_class_f1": per_class_table(evaluation),
        "model_evaluation_id": row_id,
        "f1_margin": dg.MetadataValue.float(margin),
        "pushgateway": pushed or "not configured (RAKUTEN_PUSHGATEWAY_URL)",
    }
    if evaluation.test_f1 is not None and evaluation.f1_drop is not None:
        metadata["model_test_f1"] = dg.MetadataValue.float(evaluation.test_f1)
        metadata["f1_drop_vs_test"] = dg.MetadataValue.float(evaluation.f1_drop)
        metadata["f1_within_margin"] = bool(within)

    check_key = dg.AssetCheckKey(dg.AssetKey(EVALUATION), QUALITY_CHECK)
    check_results = []
    if within is not None and check_key in context.selected_asset_check_keys:
        assert evaluation.test_f1 is not None and evaluation.f1_drop is not None
        check_results.append(
            dg.AssetCheckResult(
                asset_key=EVALUATION,
                check_name=QUALITY_CHECK,
                passed=within,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"weighted F1 {evaluation.weighted_f1:.4f} on partition {key} vs "
                    f"{evaluation.test_f1:.4f} on the test set of v{model.version}: "
                    f"{evaluation.f1_drop:+.4f} below, margin {margin}"
                ),
                metadata={
                    "model_version": model.version,
                    "weighted_f1": evaluation.weighted_f1,
                    "model_test_f1": evaluation.test_f1,
                    "margin": margin,
                },
            )
        )
    yield dg.MaterializeResult(asset_key=EVALUATION, metadata=metadata, check_results=check_results)


evaluate_job = dg.define_asset_job(
    name="evaluate",
    selection=dg.AssetSelection.assets(EVALUATION),
    description="Grade the production model on one partition's new rows (before training on them).",
)

defs = dg.Definitions(assets=[production_model_evaluation], jobs=[evaluate_job])
