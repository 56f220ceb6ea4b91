"""POST /feedback over HTTP on SQLite and PostgreSQL: the key, validation, all or nothing,
replacement, the counter, and a database that is down (503, the server keeps answering).

The endpoint runs in a real uvicorn server in a thread (the route `serving.server` adds to
the LitServe app, on a plain FastAPI app); the real serving process is exercised in
test_serving.py."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import REGISTRY

from rakuten_assets.benchmarks.processes import free_port, http
from rakuten_assets.db.engine import connect
from rakuten_assets.settings import Settings
from rakuten_assets_tests.support.predictions import log_predictions, stored
from serving.feedback import add_feedback_route
from serving.request_limits import validation_error

KEY = "feedback-key"


HEADERS = {"X-API-Key": KEY}


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
