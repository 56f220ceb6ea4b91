"""Corrections from users (POST /feedback) on SQLite and PostgreSQL: validation against the
inference log (unknown id, code outside the 27, an id named twice), all or nothing for a
list, a correction sent again replaces the earlier one, the counter, a database that is down;
the live accuracy of `drift_metrics` on a known log (report, metadata, pushed gauges); the
traffic `simulate-traffic --feedback` builds.

The endpoint runs in a real uvicorn server in a thread (the route `serving.server` adds to
the LitServe app, on a plain FastAPI app); the real serving process is exercised in
test_serving.py."""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from rakuten_assets.benchmarks.processes import free_port, http
from rakuten_assets.data.categories import CODES
from rakuten_assets.db.engine import connect
from rakuten_assets.db.feedback import (
    Correction,
    InvalidCorrections,
    UnknownPredictions,
    record_feedback,
    window_feedback,
)
from rakuten_assets.db.queries import drift_reports_frame
from rakuten_assets.db.schema import inference_log, prediction_feedback
from rakuten_assets.defs.monitoring import drift_metrics
from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, PushgatewayResource
from rakuten_assets.monitoring.drift import compute_drift, live_accuracy, reference_profile
from rakuten_assets.monitoring.traffic import requests_with_feedback, shifted_requests
from rakuten_assets.settings import Settings
from rakuten_assets_tests.test_automation import drift_metadata, production, pushgateway
from serving.feedback import add_feedback_route
from serving.inference_log import InferenceLogWriter, LoggedPrediction
from serving.request_limits import validation_error

__all__ = ["production", "pushgateway"]  # module fixtures of test_automation, reused here

KEY = "feedback-key"
HEADERS = {"X-API-Key": KEY}


def log_predictions(
    engine: Engine, predicted: list[int], at: datetime | None = None, text: str = "listing"
) -> list[str]:
    """Log one prediction per code of `predicted` (the serving writer's way); their ids."""
    ids = [str(uuid.uuid4()) for _ in predicted]
    writer = InferenceLogWriter(lambda: engine).start()
    writer.put_many(
        [
            LoggedPrediction(
                at=at or datetime.now(UTC),
                designation=f"{text} {i}",
                description=None,
                predicted_class=code,
                confidence=0.8,
                model_version="1",
                latency_ms=1.0,
                prediction_id=pid,
            )
            for i, (code, pid) in enumerate(zip(predicted, ids, strict=True))
        ]
    )
    writer.close(timeout=30)
    return ids


def stored(engine: Engine) -> dict[str, int]:
    """prediction_id -> stored code of every row of prediction_feedback."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(prediction_feedback.c.prediction_id, prediction_feedback.c.prdtypecode)
        ).all()
    return dict(rows)


def other(code: int) -> int:
    return next(c for c in CODES if c != code)


# -- the database functions ------------------------------------------------------------------
def test_the_log_stores_prediction_ids_and_a_duplicate_costs_only_itself(engine: Engine) -> None:
    """prediction_id is unique: a (never expected) repeated id is refused like any bad row,
    and the rest of its batch is still written (the writer's halves retry)."""
    ids = log_predictions(engine, [2583, 10])
    dropped: list[int] = []
    writer = InferenceLogWriter(lambda: engine, on_drop=dropped.append).start()
    fresh = [str(uuid.uuid4()) for _ in range(9)]
    batch = [
        LoggedPrediction(datetime.now(UTC), f"again {i}", None, 40, 0.5, "1", 1.0, pid)
        for i, pid in enumerate([*fresh[:4], ids[0], *fresh[4:]])
    ]
    writer.put_many(batch)
    writer.close(timeout=30)
    assert dropped == [1]
    with engine.connect() as connection:
        logged = dict(
            connection.execute(
                select(inference_log.c.prediction_id, inference_log.c.predicted_class)
            ).all()
        )
    assert logged == {ids[0]: 2583, ids[1]: 10, **dict.fromkeys(fresh, 40)}


def test_record_feedback_validates_all_or_nothing_and_replaces(engine: Engine) -> None:
    ids = log_predictions(engine, [2583, 10, 1560])
    first = record_feedback(engine, [Correction(ids[0], 2583), Correction(ids[1], 40)])
    assert [(s.correct, s.replaced, s.predicted_class) for s in first] == [
        (True, False, 2583),
        (False, False, 10),
    ]
    assert stored(engine) == {ids[0]: 2583, ids[1]: 40}

    # a list with one unknown id: refused, named, and nothing of the list is written
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownPredictions, match=rf"item 1 \({unknown}\).*retry shortly") as error:
        record_feedback(engine, [Correction(ids[0], 1560), Correction(unknown, 10)])
    assert error.value.items == [(1, unknown)]
    # a code outside the 27, and the same id twice: refused before the database
    with pytest.raises(InvalidCorrections, match="item 2: prdtypecode 11 is not one of the 27"):
        record_feedback(
            engine, [Correction(ids[2], 10), Correction(ids[0], 10), Correction(ids[1], 11)]
        )
    with pytest.raises(InvalidCorrections, match="item 1: names the same prediction_id as item 0"):
        record_feedback(engine, [Correction(ids[2], 10), Correction(ids[2], 40)])
    assert stored(engine) == {ids[0]: 2583, ids[1]: 40}

    # sent again: replaces (one row per prediction)
    again = record_feedback(engine, [Correction(ids[0], 1560), Correction(ids[2], 1560)])
    assert [(s.correct, s.replaced) for s in again] == [(False, True), (True, False)]
    assert stored(engine) == {ids[0]: 1560, ids[1]: 40, ids[2]: 1560}
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(prediction_feedback)).scalar() == 3
        )
    assert record_feedback(engine, []) == []


def test_window_feedback_reads_the_corrections_of_a_window(engine: Engine) -> None:
    old = log_predictions(engine, [10, 40], at=datetime.now(UTC) - timedelta(days=3), text="old")
    new = log_predictions(engine, [2583, 2583, 1560], text="new")
    record_feedback(
        engine, [Correction(old[0], 10), Correction(new[0], 2583), Correction(new[2], 40)]
    )

    frame = window_feedback(engine, since=datetime.now(UTC) - timedelta(hours=1))
    assert list(frame["prediction_id"]) == [new[0], new[2]]
    assert list(frame["predicted_class"]) == [2583, 1560]
    assert list(frame["prdtypecode"]) == [2583, 40]
    assert all(at.tzinfo is not None for at in frame["at"])
    assert len(window_feedback(engine)) == 3
    with engine.connect() as connection:
        new_first = connection.execute(
            select(func.min(inference_log.c.id)).where(inference_log.c.prediction_id.in_(new))
        ).scalar_one()
    assert list(window_feedback(engine, min_id=new_first)["prediction_id"]) == [new[0], new[2]]
    assert list(window_feedback(engine, max_id=new_first - 1)["prediction_id"]) == [old[0]]


# -- the endpoint ----------------------------------------------------------------------------
@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The base URL of `app` run by uvicorn in a thread, stopped on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def feedback_app(database_url: str) -> FastAPI:
    """/feedback as the serving process mounts it (same route, same 422 handler)."""
    app = FastAPI()
    app.add_exception_handler(RequestValidationError, validation_error)
    add_feedback_route(app, Settings(database_url=database_url, api_key=KEY))
    return app


@pytest.fixture
def api(database_url: str) -> Iterator[str]:
    with serve(feedback_app(database_url)) as url:
        yield url


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, object]:
    return http("POST", f"{url}/feedback", body, headers=HEADERS if headers is None else headers)


def counter(correct: str) -> float:
    return REGISTRY.get_sample_value("rakuten_feedback_total", {"correct": correct}) or 0.0


def test_feedback_endpoint(api: str, database_url: str) -> None:
    engine = connect(database_url)
    ids = log_predictions(engine, [2583, 10, 1560])
    right, wrong = counter("true"), counter("false")

    # the same API key rule as /predict
    assert post(api, {"prediction_id": ids[0], "prdtypecode": 2583}, headers={})[0] == 401
    assert post(api, {"prediction_id": ids[0], "prdtypecode": 2583}, {"X-API-Key": "no"})[0] == 401
    assert stored(engine) == {}

    code, answer = post(api, {"prediction_id": ids[0], "prdtypecode": 2583})
    assert code == 200
    assert answer == {
        "prediction_id": ids[0],
        "prdtypecode": 2583,
        "predicted_class": 2583,
        "correct": True,
        "replaced": False,
    }
    code, answer = post(api, [{"prediction_id": ids[1], "prdtypecode": 40}])
    assert code == 200 and [a["correct"] for a in answer] == [False]
    assert (counter("true") - right, counter("false") - wrong) == (1, 1)

    # one unknown id in a list: 404 naming it, saying to retry; nothing written
    unknown = str(uuid.uuid4())
    code, answer = post(
        api,
        [
            {"prediction_id": ids[2], "prdtypecode": 1560},
            {"prediction_id": unknown, "prdtypecode": 10},
        ],
    )
    assert code == 404
    assert f"item 1 ({unknown})" in answer["detail"] and "retry shortly" in answer["detail"]
    # one code outside the 27 in a list: 422 naming the item; nothing written
    code, answer = post(
        api,
        [
            {"prediction_id": ids[2], "prdtypecode": 1560},
            {"prediction_id": ids[0], "prdtypecode": 11},
        ],
    )
    assert code == 422
    bad = [problem for problem in answer["detail"] if problem["loc"][-1] == "prdtypecode"]
    assert bad and bad[0]["loc"][-2] == 1 and "27 product-type codes" in bad[0]["msg"]
    code, answer = post(
        api,
        [
            {"prediction_id": ids[2], "prdtypecode": 10},
            {"prediction_id": ids[2], "prdtypecode": 40},
        ],
    )
    assert code == 422 and "item 1: names the same prediction_id as item 0" in answer["detail"]
    for body in (
        {"prediction_id": "not-a-uuid", "prdtypecode": 10},
        {"prediction_id": ids[2]},
        {"prediction_id": ids[2], "prdtypecode": 10, "extra": 1},
        [],
        [{"prediction_id": ids[2], "prdtypecode": 10}] * 257,
    ):
        assert post(api, body)[0] == 422, body
    assert stored(engine) == {ids[0]: 2583, ids[1]: 40}
    assert (counter("true") - right, counter("false") - wrong) == (1, 1)

    # sent again: replaces the earlier correction
    code, answer = post(api, {"prediction_id": ids[0], "prdtypecode": 1560})
    assert code == 200 and answer["replaced"] is True and answer["correct"] is False
    assert stored(engine) == {ids[0]: 1560, ids[1]: 40}
    assert (counter("true") - right, counter("false") - wrong) == (1, 2)
    engine.dispose()


def test_feedback_with_the_database_down_is_a_503() -> None:
    down = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    with serve(feedback_app(down)) as url:
        body = {"prediction_id": str(uuid.uuid4()), "prdtypecode": 10}
        for _ in range(2):  # and the server keeps answering
            code, answer = post(url, body)
            assert code == 503
            assert (
                answer["detail"] == "the database is unavailable: nothing was stored; retry later"
            )


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
        result = dg.materialize(
            [drift_metrics],
            instance=instance,
            resources={
                "database": DatabaseResource(url=production["database_url"]),
                "mlflow_registry": MlflowResource(
                    tracking_uri=production["tracking_uri"], model_name=production["model_name"]
                ),
                "pushgateway": PushgatewayResource(url=pushgateway),
            },
            run_config={"ops": {"drift_metrics": {"config": {"last_n": 300}}}},
        )
    assert result.success
    metadata = drift_metadata(result)
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
