"""Model quality over partitions as plain functions: the metrics, the rule (never a model
trained on P or later grades P) and the margin, with their gauges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rakuten_assets.monitoring.pushgateway import build_registry
from rakuten_assets.monitoring.quality import (
    QUALITY_LAST_RUN,
    QUALITY_METRICS,
    PartitionEvaluation,
    ProductionVersion,
    grade,
    quality_gauges,
    refusal,
    within_margin,
)


# -- plain functions ----------------------------------------------------------------------
def test_grade_computes_accuracy_weighted_and_macro_f1_and_per_class() -> None:
    truth = pd.Series([10, 10, 10, 10, 40, 40, 50, 50])
    predicted = np.array([10, 10, 10, 40, 40, 40, 50, 10])
    result = grade(truth, predicted)
    # class 10: precision 3/4, recall 3/4 -> F1 0.75; class 40: P 2/3, R 1 -> 0.8;
    # class 50: P 1, R 1/2 -> 2/3
    f1 = {10: 0.75, 40: 0.8, 50: 2 / 3}
    assert result.accuracy == pytest.approx(6 / 8)
    assert result.per_class["f1"].to_dict() == pytest.approx(f1)
    assert result.macro_f1 == pytest.approx(sum(f1.values()) / 3)
    assert result.weighted_f1 == pytest.approx((4 * 0.75 + 2 * 0.8 + 2 * 2 / 3) / 8)
    assert result.per_class["support"].to_dict() == {10: 4, 40: 2, 50: 2}
    with pytest.raises(ValueError, match="no labelled rows"):
        grade(pd.Series([], dtype="int64"), np.array([]))


def version(trained_on: str | None, data_load_id: int | None = 1) -> ProductionVersion:
    return ProductionVersion("clf", "3", "run-1", trained_on, data_load_id, 0.9)


def test_the_rule_never_lets_a_model_grade_data_it_was_trained_on() -> None:
    assert refusal("043", version("040"), partition_load_id=2) is None
    assert refusal("100", version("097", data_load_id=20), partition_load_id=21) is None
    same = refusal("043", version("043"), partition_load_id=2)
    assert same and "trained on partition 043" in same and "own training data" in same
    later = refusal("043", version("046"), partition_load_id=2)
    assert later and "trained on partition 046" in later
    for unknown in (None, "", "abc"):
        reason = refusal("043", version(unknown), partition_load_id=2)
        assert reason and "records no training partition" in reason
    # the second guard: trained on an earlier partition, but on data loaded after P's load
    reloaded = refusal("046", version("043", data_load_id=7), partition_load_id=5)
    assert reloaded and "as of load 7" in reloaded and "load 5 of partition 046" in reloaded
    with pytest.raises(ValueError, match="unknown partition"):
        refusal("044", version("040"), partition_load_id=2)


def evaluation(weighted_f1: float, test_f1: float | None) -> PartitionEvaluation:
    per_class = pd.DataFrame({"f1": [weighted_f1]}, index=pd.Index([10], name="prdtypecode"))
    return PartitionEvaluation("043", "2", 120, 0.8, weighted_f1, 0.7, per_class, test_f1)


def test_the_margin_and_the_gauges() -> None:
    assert within_margin(evaluation(0.82, 0.85), 0.03) is True  # exactly the margin
    assert within_margin(evaluation(0.8199, 0.85), 0.03) is False
    assert within_margin(evaluation(0.95, 0.85), 0.0) is True  # better than on its test set
    assert within_margin(evaluation(0.5, None), 0.03) is None  # nothing to compare with
    with pytest.raises(ValueError, match="margin"):
        within_margin(evaluation(0.8, 0.85), -0.01)

    gauges = quality_gauges(evaluation(0.81, 0.85))
    labels = {"partition": "043", "version": "2"}
    assert gauges == [
        ("rakuten_model_eval_f1", labels, 0.81),
        ("rakuten_model_eval_accuracy", labels, 0.8),
        ("rakuten_model_eval_test_f1", labels, 0.85),
    ]
    assert {name for name, _, _ in gauges} == set(QUALITY_METRICS)
    assert len(quality_gauges(evaluation(0.81, None))) == 2
    registry, series = build_registry(
        gauges, now=1.0, last_run=QUALITY_LAST_RUN, helps=QUALITY_METRICS
    )
    assert series == 4
    assert registry.get_sample_value(QUALITY_LAST_RUN) == 1.0
    assert registry.get_sample_value("rakuten_model_eval_f1", labels) == 0.81
    assert registry.get_sample_value("rakuten_drift_last_run_timestamp_seconds") is None
