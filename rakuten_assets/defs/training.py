"""Training assets: `balanced_dataset` -> `trained_model` -> `registered_model_version`.

Partitioned like `products`: the model at "049" is trained on the data as of the last load of
partition 049 (a point-in-time snapshot from the audit trail). Blocking checks gate each step:
too few test rows or a leak stop training; an F1 under the floor stops registration. The
blocking check only guards a run that materializes both: `registered_model_version` also
refuses a model under the floor itself (materialized alone, it reads an earlier
`trained_model` output whose check may have failed).
"""

from dataclasses import dataclass

import dagster as dg
import mlflow
from pydantic import Field

from rakuten_assets.data.categories import CODES
from rakuten_assets.db.queries import latest_load_id, load_history, snapshot
from rakuten_assets.defs.ingestion import class_count_table, products
from rakuten_assets.defs.launchpad_config import (
    ParametersConfig,
    config_from_parameters,
    from_config_value,
    parameter_fields,
)
from rakuten_assets.defs.partitions import ONE_PARTITION_PER_RUN, products_partitions
from rakuten_assets.defs.resources import DatabaseResource, LazyMlflowRun, MlflowResource
from rakuten_assets.ml.dataset import (
    BalancedDataset,
    SplitParams,
    build_balanced_dataset,
    find_leaks,
    rows_per_class_in_test,
)
from rakuten_assets.ml.model import TrainingParams, train
from rakuten_assets.ml.plots import class_counts_png, markdown_image
from rakuten_assets.ml.registry import RegistryError, decide_promotion
from rakuten_assets.ml.replay import DEFAULT_REPLAY_ROWS
from rakuten_assets.ml.tracking import log_training_run
from rakuten_assets.settings import get_settings

SplitConfig = config_from_parameters(
    SplitParams,
    name="SplitConfig",
    module=__name__,
    doc="How `balanced_dataset` splits and oversamples (fields: `SplitParams`).",
)


class _TrainingOverrides(ParametersConfig):
    """A preset of `TrainingParams` with the values that are set changed."""

    def to_params(self) -> TrainingParams:
        overrides = {
            name: from_config_value(value)
            for name, value in self.model_dump().items()
            if name != "preset" and value is not None
        }
        if "class_weight" in overrides:
            weight = str(overrides["class_weight"]).lower()
            if weight not in ("balanced", "none", ""):
                raise ValueError("class_weight is 'balanced' or 'none'")
            overrides["class_weight"] = "balanced" if weight == "balanced" else None
        return TrainingParams.from_preset(self.preset, **overrides)  # type: ignore[attr-defined]


_PRESET_FIELD = parameter_fields(TrainingParams)["preset"]
TrainingConfig = config_from_parameters(
    TrainingParams,
    name="TrainingConfig",
    module=__name__,
    doc="Hyperparameters of `trained_model`: a named preset of `rakuten_assets.ml.model` "
    '("default": word and character n-grams, calibrated linear SVM; "seed": the seed '
    "project's 5,000-word TF-IDF and logistic regression), and any of its values to change "
    "(empty: the preset's). The fields, their checks and defaults live once, in "
    "`TrainingParams`.",
    base=_TrainingOverrides,
    optional=True,
    extra={"preset": (str, Field(default=_PRESET_FIELD[1], description=_PRESET_FIELD[2]))},
)


class PromotionConfig(dg.Config):
    """Champion/challenger rule of `registered_model_version`."""

    auto_promote: bool = Field(
        default=True, description="Decide promotion; false: register as challenger only."
    )
    min_weighted_f1: float | None = Field(
        default=None, description="Floor; empty: RAKUTEN_MIN_WEIGHTED_F1 (0.70)."
    )
    tolerance: float = Field(
        default=0.0, ge=0, description="How much worse than production a candidate may be."
    )
    replay_rows: int = Field(
        default=DEFAULT_REPLAY_ROWS,
        ge=0,
        description="Last logged production requests the challenger is replayed on (0: none).",
    )
    min_replay_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Refuse a challenger agreeing with production on fewer of the replayed "
        "requests than this share; empty: the replay is recorded, never blocks.",
    )


@dataclass(frozen=True)
class TrainedModel:
    """What `trained_model` hands on: where the model is and how good it is."""

    run_id: str
    experiment_id: str
    model_uri: str
    partition_key: str
    load_id: int
    data_hash: str
    metrics: dict[str, float]
    params: dict[str, str]


@dg.asset(
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    deps=[products],
    group_name="training",
    kinds={"pandas"},
    code_version="1",
)
def balanced_dataset(
    context: dg.AssetExecutionContext, config: SplitConfig, database: DatabaseResource
) -> dg.Output[BalancedDataset]:
    """Train/test split (stable, leak-free) of the partition's snapshot, then oversampling."""
    engine = database.engine()
    key = context.partition_key
    load_id = latest_load_id(engine, key)
    if load_id is None:
        raise dg.Failure(description=f"partition {key} of products is not loaded")
    loads = load_history(engine).set_index("id")
    dataset = build_balanced_dataset(
        snapshot(engine, load_id=load_id), key, load_id, config.to_params()
    )
    dataset.extra["batch_name"] = str(loads.loc[load_id, "batch_name"])
    counts = dataset.class_counts()
    return dg.Output(
        dataset,
        metadata={
            "data_load_id": load_id,
            "batch_name": dataset.extra["batch_name"],
            "data_hash": dataset.data_hash,
            "train_rows": len(dataset.train),
            "train_rows_oversampled": len(dataset.sample_positions),
            "test_rows": len(dataset.test),
            "class_counts": class_count_table(counts),
            "class_counts_chart": dg.MetadataValue.md(
                markdown_image(class_counts_png(counts), "rows per class")
            ),
        },
    )


@dg.asset_check(asset=balanced_dataset, blocking=True, partitions_def=products_partitions)
def enough_test_rows_per_class(balanced_dataset: BalancedDataset) -> dg.AssetCheckResult:
    """Every class has at least `min_test_rows_per_class` test rows, so its F1 means something."""
    counts = rows_per_class_in_test(balanced_dataset, CODES)
    minimum = balanced_dataset.params.min_test_rows_per_class
    short = counts[counts < minimum]
    return dg.AssetCheckResult(
        passed=short.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"every class has >= {minimum} test rows (smallest: {int(counts.min())})"
            if short.empty
            else f"{len(short)} class(es) under {minimum} test rows"
        ),
        metadata={
            "short_classes": dg.MetadataValue.json({str(k): int(v) for k, v in short.items()})
        },
    )


@dg.asset_check(asset=balanced_dataset, blocking=True, partitions_def=products_partitions)
def no_train_test_leak(balanced_dataset: BalancedDataset) -> dg.AssetCheckResult:
    """No productid and no normalized title is on both sides of the split."""
    leaks = find_leaks(balanced_dataset.train, balanced_dataset.test)
    return dg.AssetCheckResult(
        passed=not leaks.leaked,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(leaks.productids)} productid(s), {len(leaks.titles)} title(s) leaked",
        metadata={
            "productids": dg.MetadataValue.json(leaks.productids[:20]),
            "titles": dg.MetadataValue.json(leaks.titles[:20]),
        },
    )


@dg.asset(
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    group_name="training",
    kinds={"scikitlearn", "mlflow"},
    code_version="1",
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    balanced_dataset: BalancedDataset,
    mlflow_registry: MlflowResource,
    mlflow_tracking: dg.ResourceParam[LazyMlflowRun],
) -> dg.Output[TrainedModel]:
    """Text cleaning + TF-IDF + classifier, tracked in MLflow (params, metrics, artifacts)."""
    params = config.to_params()
    tracking = mlflow_tracking.start()
    run = mlflow.active_run()
    assert run is not None
    mlflow.set_tag("mlflow.runName", f"train-{context.partition_key}-{context.run.run_id[:8]}")
    try:
        result = train(balanced_dataset, params)
        model_uri = log_training_run(
            result,
            balanced_dataset,
            tags={
                "batch_name": str(balanced_dataset.extra.get("batch_name", "")),
                "dagster_run_id": context.run.run_id,
            },
        )
    except BaseException:
        tracking.end_run(status="FAILED")
        raise
    tracking.end_run()
    headline = result.evaluation.headline()
    experiment_id = run.info.experiment_id
    trained = TrainedModel(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=model_uri,
        partition_key=context.partition_key,
        load_id=balanced_dataset.load_id,
        data_hash=balanced_dataset.data_hash,
        metrics=headline,
        params=params.as_mlflow_params(),
    )
    weakest = result.evaluation.weakest()
    return dg.Output(
        trained,
        metadata={
            "mlflow_run_id": run.info.run_id,
            "mlflow_run": dg.MetadataValue.url(
                mlflow_registry.run_url(experiment_id, run.info.run_id)
            ),
            "model_uri": model_uri,
            "preset": params.preset,
            **{name: dg.MetadataValue.float(value) for name, value in headline.items()},
            "weakest_classes": dg.MetadataValue.md(
                "\n".join(
                    f"- {code} {row.category}: F1 {row.f1:.3f}" for code, row in weakest.iterrows()
                )
            ),
            "fit_seconds": dg.MetadataValue.float(result.timings["fit_s"]),
        },
    )


@dg.asset_check(asset=trained_model, blocking=True, partitions_def=products_partitions)
def weighted_f1_above_floor(trained_model: TrainedModel) -> dg.AssetCheckResult:
    """The model reaches the weighted-F1 floor (RAKUTEN_MIN_WEIGHTED_F1) before registration."""
    floor = get_settings().min_weighted_f1
    value = trained_model.metrics["weighted_f1"]
    return dg.AssetCheckResult(
        passed=value >= floor,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"weighted F1 {value:.4f} vs floor {floor:.2f}",
        metadata={"weighted_f1": value, "floor": floor},
    )


@dg.asset(
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    group_name="training",
    kinds={"mlflow"},
    code_version="1",
)
def registered_model_version(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    trained_model: TrainedModel,
    balanced_dataset: BalancedDataset,
    mlflow_registry: MlflowResource,
    database: DatabaseResource,
) -> dg.MaterializeResult:
    """The model registered (alias `challenger`) and, when it wins, aliased `production`.

    A model under the weighted-F1 floor is never registered, whatever ran before.
    """
    floor = get_settings().min_weighted_f1
    value = trained_model.metrics["weighted_f1"]
    if value < floor:
        raise dg.Failure(
            description=f"refusing to register the model of MLflow run {trained_model.run_id} "
            f"(partition {trained_model.partition_key}): weighted F1 {value:.4f} is under the "
            f"floor {floor:.2f} (RAKUTEN_MIN_WEIGHTED_F1); nothing was registered",
            metadata={"weighted_f1": value, "floor": floor},
        )
    registry = mlflow_registry.registry(database.engine())
    try:
        # The registry checks the metric the run logged as well (the source of truth).
        registered = registry.register(
            trained_model.model_uri,
            trained_model.run_id,
            tags={
                "partition": trained_model.partition_key,
                "data_load_id": str(trained_model.load_id),
                "data_hash": trained_model.data_hash,
                "dagster_run_id": context.run.run_id,
            },
            min_weighted_f1=floor,
        )
    except RegistryError as error:
        raise dg.Failure(description=str(error)) from error
    version = str(registered.version)  # an int from a local store, a str from a server
    candidate_f1 = trained_model.metrics["weighted_f1"]
    champion = registry.production()
    champion_version = str(champion.version) if champion else None
    metadata: dict[str, object] = {
        "model_name": registry.model_name,
        "version": version,
        "mlflow_run_id": trained_model.run_id,
        "weighted_f1": dg.MetadataValue.float(candidate_f1),
    }
    if not config.auto_promote:
        decision_text = "not evaluated (auto_promote is off): registered as challenger"
        production_version = champion_version
    else:
        champion_f1 = (
            registry.weighted_f1_on(champion_version, balanced_dataset.test)
            if champion_version
            else None
        )
        result = None
        if champion_version:  # replayed against production's logged answers, so only then
            result = registry.replay_challenger(
                version, trained_model.run_id, champion_version, config.replay_rows
            )
            context.log.info(result.summary())
            metadata["replay"] = dg.MetadataValue.json(result.as_dict())
            if result.agreement is not None:
                metadata["replay_agreement"] = dg.MetadataValue.float(result.agreement)
        decision = decide_promotion(
            candidate_f1,
            champion_f1,
            config.min_weighted_f1 or get_settings().min_weighted_f1,
            config.tolerance,
            champion_version,
            result,
            config.min_replay_agreement,
        )
        if decision.promote:
            registry.promote(version, decision, actor=f"dagster run {context.run.run_id}")
            decision_text = f"promoted v{version} to production"
            production_version = version
        else:
            decision_text = (
                f"kept production v{champion_version or 'none'}; v{version} stays challenger"
            )
            production_version = champion_version
        metadata["reasons"] = dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons))
        if champion_f1 is not None:
            metadata["champion_weighted_f1"] = dg.MetadataValue.float(champion_f1)
    metadata["production_version"] = production_version or "none"
    metadata["decision"] = decision_text
    context.log.info(decision_text)
    return dg.MaterializeResult(metadata=metadata)


train_job = dg.define_asset_job(
    name="train",
    selection=dg.AssetSelection.assets(balanced_dataset, trained_model, registered_model_version),
    description="Build the dataset of one partition, train, register and decide promotion.",
)

dataset_job = dg.define_asset_job(
    name="dataset",
    selection=dg.AssetSelection.assets(balanced_dataset),
    description="Build the balanced dataset of one partition (no training).",
)

defs = dg.Definitions(
    assets=[balanced_dataset, trained_model, registered_model_version],
    asset_checks=[enough_test_rows_per_class, no_train_test_leak, weighted_f1_above_floor],
    jobs=[train_job, dataset_job],
)
