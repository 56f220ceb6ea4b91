"""`drift_metrics` reports the live accuracy of a known log: in its metadata, its stored report
and the gauges it pushes to a real Pushgateway."""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd
import pytest

from rakuten_assets.benchmarks.processes import http
from rakuten_assets.db.engine import connect
from rakuten_assets.db.feedback import (
    Correction,
    record_feedback,
)
from rakuten_assets.db.queries import drift_reports_frame
from rakuten_assets_tests.support.dagster_runs import materialization_metadata, materialize_drift
from rakuten_assets_tests.support.predictions import log_predictions, other


@pytest.mark.slow
def test_drift_metrics_reports_live_accuracy(
    production: dict[str, str], pushgateway: str, synth_frame: pd.DataFrame
) -> None:
    engine = connect(production["database_url"])
    old = log_predictions(engine, [10] * 20, text="before the window")
    rows = synth_frame.sample(300, random_state=1)
    predicted = [int(code) for code in rows["prdtypecode"]]
    ids = log_predictions(engine, predicted, text="in the window")
    # 40 corrections in the window, 30 of them confirming the answer; 20 outside it
    corrections = [
        Correction(pid, code if i < 30 else other(code))
        for i, (pid, code) in enumerate(zip(ids[:40], predicted[:40], strict=True))
    ]
    record_feedback(engine, corrections + [Correction(pid, 40) for pid in old])

    with dg.instance_for_test() as instance:
        result = materialize_drift(instance, production, pushgateway, last_n=300)
    assert result.success
    metadata = materialization_metadata(result)
    assert metadata["feedback_corrected"] == 40
    assert metadata["feedback_accuracy"] == pytest.approx(0.75)
    report = drift_reports_frame(engine, last_n=1)["report"].iloc[0]
    assert (report["feedback_corrected"], report["feedback_correct"]) == (40, 30)
    text = http("GET", f"{pushgateway}/metrics")[1]

    def pushed(name: str) -> float:
        match = re.search(rf'^{name}{{[^}}]*job="rakuten_drift"[^}}]*}} (\S+)$', text, re.M)
        assert match, f"{name} not on the Pushgateway"
        return float(match[1])

    assert pushed("rakuten_feedback_accuracy") == pytest.approx(0.75)
    assert pushed("rakuten_feedback_corrected") == 40
    engine.dispose()
