"""Live accuracy on a known window (the report, its gauges and table), and the traffic
`simulate-traffic --feedback` builds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rakuten_assets.monitoring.drift_report import compute_drift
from rakuten_assets.monitoring.drift_statistics import live_accuracy, reference_profile
from rakuten_assets.monitoring.traffic import requests_with_feedback, shifted_requests


# -- live accuracy in drift_metrics ---------------------------------------------------------
def test_live_accuracy_on_a_known_window() -> None:
    window = pd.DataFrame(
        {
            "prediction_id": ["a", "b", "c", "d", None],
            "predicted_class": [10, 40, 2583, 2583, 10],
            "designation": ["livre", "jeu", "piscine", "piscine bois", "x"],
            "description": [None] * 5,
            "confidence": [0.9] * 5,
        }
    )
    feedback = pd.DataFrame(
        {"prediction_id": ["a", "b", "c", "z"], "prdtypecode": [10, 50, 2583, 10]}
    )
    assert live_accuracy(window, feedback) == (3, 2)  # z is outside the window
    assert live_accuracy(window, feedback.iloc[:0]) == (0, 0)
    assert live_accuracy(window.drop(columns="prediction_id"), feedback) == (0, 0)

    training = window.assign(prdtypecode=window["predicted_class"])
    reference = reference_profile(training, {"livre", "piscine"})
    report = compute_drift(reference, window, feedback=feedback)
    assert (report.feedback_corrected, report.feedback_correct) == (3, 2)
    assert report.feedback_accuracy == pytest.approx(2 / 3)
    gauges = {name: value for name, _, value in report.gauges()}
    assert gauges["rakuten_feedback_corrected"] == 3
    assert gauges["rakuten_feedback_accuracy"] == pytest.approx(2 / 3)
    table = report.summary_table().set_index("statistic")
    assert table.loc["feedback_accuracy", "value"] == pytest.approx(2 / 3)
    assert report.as_dict()["feedback_corrected"] == 3

    none = compute_drift(reference, window, feedback=feedback.iloc[:0])
    names = {name for name, _, _ in none.gauges()}
    assert "rakuten_feedback_corrected" in names and "rakuten_feedback_accuracy" not in names
    assert math.isnan(none.feedback_accuracy) and none.as_dict()["feedback_accuracy"] is None
    unmeasured = compute_drift(reference, window)
    assert not {n for n, _, _ in unmeasured.gauges()} & {"rakuten_feedback_corrected"}


# -- simulated traffic with feedback ---------------------------------------------------------
def test_requests_with_feedback_label_the_share_asked(synth_frame: pd.DataFrame) -> None:
    test = synth_frame[["designation", "description"]].iloc[:500]
    labelled = synth_frame.iloc[500:]
    requests, labels = requests_with_feedback(test, labelled, 200, 0.25, "none", seed=4)
    assert len(requests) == len(labels) == 200
    marked = [i for i, label in enumerate(labels) if label is not None]
    assert len(marked) == 50
    assert marked[0] < 50 and marked[-1] > 150  # spread over the run, not bunched at one end
    truth: dict[str, set[int]] = {}
    for designation, code in zip(labelled["designation"], labelled["prdtypecode"], strict=True):
        truth.setdefault(designation.strip(), set()).add(int(code))
    assert all(labels[i] in truth[str(requests[i]["designation"])] for i in marked)
    assert requests_with_feedback(test, labelled, 200, 0.25, "none", seed=4) == (requests, labels)
    # no feedback: exactly the requests simulate-traffic sent before --feedback existed
    plain, none = requests_with_feedback(test, None, 50, 0.0, "category", seed=2)
    assert plain == shifted_requests(test, 50, "category", 2) and none == [None] * 50
    with pytest.raises(ValueError, match="between 0 and 1"):
        requests_with_feedback(test, labelled, 10, 1.5)
