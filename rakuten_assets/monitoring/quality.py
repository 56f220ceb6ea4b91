"""Prequential evaluation: the production model graded on the rows a partition adds, before
any retraining on them (no Dagster here).

Every +3% partition arrives labelled. Before the platform trains on it, its rows are fresh
ground truth the production model has never seen: its accuracy and F1 on them measure how it
does on new data, which drift monitoring (inputs only) cannot.

The rule that keeps the grade honest (`refusal`): a model may grade partition P only if it
was trained on an EARLIER partition. A model trained on P, or on any later partition (whose
snapshot includes P's rows), has seen P's rows and would be graded on its own training data,
so the evaluation is refused. A model whose training partition cannot be told (no
`partition` tag on its MLflow run) is refused as well: the rule must be checkable. As a
second guard, the run's `data_load_id` (the load its training snapshot was taken at) must be
older than the load that wrote P's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rakuten_assets.data.partitions import PARTITION_KEYS, percentage_of
from rakuten_assets.ml.model import Evaluation, evaluate, listings
from rakuten_assets.ml.registry import ModelRegistry

QUALITY_JOB = "rakuten_model_eval"
QUALITY_LAST_RUN = "rakuten_model_eval_last_run_timestamp_seconds"
QUALITY_LAST_RUN_HELP = "Unix time of the last push of the production model's evaluation."
# The gauges of the latest evaluation (labels: partition, version). One push replaces the
# group, so the Pushgateway holds the latest evaluation; Prometheus keeps the history.
QUALITY_METRICS: dict[str, str] = {
    "rakuten_model_eval_f1": "Weighted F1 of the production model on the rows a partition "
    "added, before any training on them.",
    "rakuten_model_eval_accuracy": "Accuracy of the production model on the rows a partition "
    "added, before any training on them.",
    "rakuten_model_eval_test_f1": "Weighted F1 the same model reached on its own test set.",
}

QualityGauge = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class ProductionVersion:
    """The version aliased `production` and what its training run recorded."""

    model_name: str
    version: str
    run_id: str
    trained_on: str | None  # the partition its run was trained on (run tag `partition`)
    data_load_id: int | None  # the load its training snapshot was taken at
    test_f1: float | None  # weighted F1 on its own test set (run metric `weighted_f1`)


def production_version(registry: ModelRegistry) -> ProductionVersion | None:
    """The production version of `registry`'s model, or None when there is none yet."""
    version = registry.production()
    if version is None:
        return None
    # one read of the run: its tags and the test F1 it logged
    run = registry.client.get_run(version.run_id).data if version.run_id else None
    tags = run.tags if run else {}
    test_f1 = run.metrics.get("weighted_f1") if run else None
    load = tags.get("data_load_id", "")
    return ProductionVersion(
        model_name=registry.model_name,
        version=str(version.version),
        run_id=version.run_id,
        trained_on=tags.get("partition"),
        data_load_id=int(load) if load.isdigit() else None,
        test_f1=float(test_f1) if test_f1 is not None else None,
    )


def refusal(partition: str, model: ProductionVersion, partition_load_id: int | None) -> str | None:
    """Why `model` may not grade `partition` (None: it may). See the module docstring."""
    percentage_of(partition)  # an unknown partition is an error, not a refusal
    trained_on = model.trained_on
    if trained_on not in PARTITION_KEYS:
        return (
            f"production v{model.version} (run {model.run_id}) records no training partition "
            f"(run tag partition={trained_on!r}): whether it saw partition {partition}'s rows "
            "cannot be told, so it does not grade them"
        )
    if percentage_of(trained_on) >= percentage_of(partition):
        return (
            f"production v{model.version} was trained on partition {trained_on}, whose data "
            f"include partition {partition}'s rows: graded on them it would be graded on its "
            "own training data (evaluate a partition before training on it)"
        )
    if (
        model.data_load_id is not None
        and partition_load_id is not None
        and model.data_load_id >= partition_load_id
    ):
        return (
            f"production v{model.version} was trained on the data as of load "
            f"{model.data_load_id}, which includes load {partition_load_id} of partition "
            f"{partition}"
        )
    return None


@dataclass(frozen=True)
class PartitionEvaluation:
    """A model graded on the labelled rows of one partition."""

    partition_key: str
    model_version: str
    rows: int
    accuracy: float
    weighted_f1: float
    macro_f1: float
    per_class: pd.DataFrame  # index prdtypecode: category, f1, precision, recall, support
    test_f1: float | None

    @property
    def f1_drop(self) -> float | None:
        """How far the weighted F1 fell below the model's own test F1 (negative: above)."""
        return None if self.test_f1 is None else self.test_f1 - self.weighted_f1

    def per_class_f1(self) -> dict[str, float]:
        """F1 of every class present in the rows or in the predictions, by prdtypecode."""
        return {str(code): float(f1) for code, f1 in self.per_class["f1"].items()}


def grade(truth: pd.Series, predicted: np.ndarray) -> Evaluation:
    """Accuracy, weighted and macro F1 and per-class scores of predictions against labels:
    the same computation as the test-set evaluation of training (`ml.model.evaluate`), so the
    two F1s compare."""
    if len(truth) == 0:
        raise ValueError("no labelled rows to grade")
    return evaluate(truth.reset_index(drop=True), np.asarray(predicted))


def evaluate_partition(
    model: object, rows: pd.DataFrame, partition_key: str, version: str, test_f1: float | None
) -> PartitionEvaluation:
    """Grade `model` (a fitted pipeline with `predict`) on `rows` (labelled listings)."""
    if rows.empty:
        raise ValueError(f"partition {partition_key} has no rows to grade")
    predicted = model.predict(listings(rows))  # type: ignore[attr-defined]
    evaluation = grade(rows["prdtypecode"], predicted)
    return PartitionEvaluation(
        partition_key=partition_key,
        model_version=version,
        rows=len(rows),
        accuracy=evaluation.accuracy,
        weighted_f1=evaluation.weighted_f1,
        macro_f1=evaluation.macro_f1,
        per_class=evaluation.per_class,
        test_f1=test_f1,
    )


def within_margin(evaluation: PartitionEvaluation, margin: float) -> bool | None:
    """Whether the weighted F1 on the partition is at most `margin` below the model's test F1
    (None: the test F1 is unknown, nothing to compare with)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    drop = evaluation.f1_drop
    # rounded: a drop of exactly the margin is within it, whatever float noise says
    return None if drop is None else round(drop, 12) <= margin


def quality_gauges(evaluation: PartitionEvaluation) -> list[QualityGauge]:
    """The Pushgateway gauges of one evaluation (see QUALITY_METRICS)."""
    labels = {"partition": evaluation.partition_key, "version": evaluation.model_version}
    gauges: list[QualityGauge] = [
        ("rakuten_model_eval_f1", dict(labels), evaluation.weighted_f1),
        ("rakuten_model_eval_accuracy", dict(labels), evaluation.accuracy),
    ]
    if evaluation.test_f1 is not None:
        gauges.append(("rakuten_model_eval_test_f1", dict(labels), evaluation.test_f1))
    return gauges
