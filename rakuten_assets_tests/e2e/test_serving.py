"""The real serving process (`rakuten serve`, two workers) against a real MLflow server, with
its inference log on the real PostgreSQL: health before and after promotion, predictions,
batch, hot reload after promote and rollback, registry outage (staleness within seconds, no
credential in any answer, state file or log), a forged model version refused while the old
model keeps serving, metrics across workers, inference log, bad input (NUL, lone surrogates,
oversized bodies), API key, schemathesis, and no orphan process after SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from rakuten_assets.benchmarks.processes import Service, free_port, http, wait_until
from rakuten_assets.db.engine import connect
from rakuten_assets.db.queries import export_inference_log, inference_log_frame
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.registry import ModelRegistry
from rakuten_assets.ml.tracking import ensure_experiment, log_training_run
from rakuten_assets.monitoring.simulate import send_traffic
from rakuten_assets.monitoring.traffic import shifted_requests
from rakuten_assets.stack.services import descendants
from rakuten_assets_tests.support.processes import BIN, alive, start_mlflow_server

API_KEY = "s3cret"
# The server reaches MLflow through a URL holding credentials; they must never surface.
REGISTRY_PASSWORD = "registry-pa55word"
RELOAD = 1.0
KEY = {"X-API-Key": API_KEY}
POOL = {"designation": "Piscine tubulaire ronde Intex 3,66 m avec pompe", "description": None}


@dataclass
class Stack:
    url: str
    tracking_uri: str
    registry: ModelRegistry
    database_url: str
    env: dict[str, str]
    folder: Path
    mlflow_port: int
    mlflow: Service
    server: Service

    def restart_mlflow(self) -> None:
        self.mlflow = start_mlflow_server(
            f"sqlite:///{self.folder / 'mlflow.db'}",
            self.folder / "artifacts",
            self.mlflow_port,
            self.folder / "mlflow-2.log",
        )


def health(stack: Stack) -> tuple[int, dict]:
    return http("GET", f"{stack.url}/health", timeout=10)


def predict(stack: Stack, body: object, headers: dict | None = None) -> tuple[int, object]:
    return http("POST", f"{stack.url}/predict", body, headers=KEY if headers is None else headers)


def serving_version(stack: Stack) -> str | None:
    code, body = health(stack)
    return body.get("model_version") if code == 200 else None


def start_server(env: dict[str, str], folder: Path, port: int, workers: int = 2) -> Service:
    service = Service(
        [str(BIN / "rakuten"), "serve", "--port", str(port), "--workers", str(workers)],
        env,
        folder / f"serve-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http("GET", f"{url}/health", timeout=2)[0] in (200, 503),
            240,
            "the serving process",
        )
        wait_until(
            lambda: len(http("GET", f"{url}/health", timeout=2)[1]["workers"]) == workers,
            120,
            "every worker to report",
        )
    except TimeoutError as error:
        service.stop()
        raise TimeoutError(f"{error}\n{service.log()}") from None
    return service


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    trained: TrainingResult,
    synth_frame: pd.DataFrame,
    postgres_schemas: Callable[[], str],
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("serving")
    mlflow_port = free_port()
    tracking = start_mlflow_server(
        f"sqlite:///{folder / 'mlflow.db'}",
        folder / "artifacts",
        mlflow_port,
        folder / "mlflow.log",
    )
    uri = f"http://127.0.0.1:{mlflow_port}"
    model_name = f"serving-{uuid.uuid4().hex[:6]}"
    database_url = postgres_schemas()
    registry = ModelRegistry(uri, model_name, connect(database_url))
    mlflow.set_tracking_uri(uri)
    dataset = build_balanced_dataset(synth_frame.head(500), "040", 1, SplitParams())
    with mlflow.start_run(experiment_id=ensure_experiment(uri, "serving", None)) as run:
        model_uri = log_training_run(trained, dataset, {"batch_name": "initial"})
    for _ in range(2):  # versions 1 and 2 (same weights, distinct versions)
        registry.register(model_uri, run.info.run_id, {"partition": "040"})
    env = {
        **os.environ,
        "RAKUTEN_HOME": str(folder / "home"),
        "RAKUTEN_DATABASE_URL": database_url,
        # MLflow's own HTTP timeouts and retries (minutes) stay at their defaults: the
        # server must bound its registry polls itself.
        "MLFLOW_TRACKING_URI": f"http://rakuten:{REGISTRY_PASSWORD}@127.0.0.1:{mlflow_port}",
        "RAKUTEN_MODEL_NAME": model_name,
        "RAKUTEN_RELOAD_SECONDS": str(RELOAD),
        "RAKUTEN_API_KEY": API_KEY,
    }
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        env.pop(name, None)
    port = free_port()
    server = start_server(env, folder, port)
    built = Stack(
        f"http://127.0.0.1:{port}",
        uri,
        registry,
        database_url,
        env,
        folder,
        mlflow_port,
        tracking,
        server,
    )
    yield built
    built.server.stop()
    built.mlflow.stop()
    registry.engine.dispose()


def ensure_production(stack: Stack) -> str:
    if stack.registry.production() is None:
        stack.registry.force_promote("1", actor="test", reason="serve")
    wait_until(lambda: serving_version(stack), 60, "a production model in /health")
    return str(serving_version(stack))


@pytest.mark.slow
def test_lifecycle_promote_reload_rollback_outage(stack: Stack) -> None:
    # 1. no production model: the server is up and says why it cannot answer
    code, body = health(stack)
    assert code == 503
    assert "aliased 'production'" in body["reason"]
    code, answer = predict(stack, POOL)
    assert code == 503 and "production" in answer["detail"]

    # 2. a promotion is picked up without restart
    stack.registry.force_promote("1", actor="test", reason="first")
    wait_until(lambda: serving_version(stack) == "1", 4 * RELOAD + 30, "version 1")
    code, answer = predict(stack, POOL)
    assert code == 200
    assert answer["prdtypecode"] == 2583 and answer["category"] == "Piscine et spa"
    assert answer["model_version"] == "1"
    assert 0 < answer["confidence"] <= 1 and len(answer["top_k"]) == 3
    assert answer["top_k"][0]["prdtypecode"] == 2583
    code, info = http("GET", f"{stack.url}/info")
    assert code == 200 and {w["partition"] for w in info["workers"]} == {"040"}
    assert all(w["run_id"] and w["loaded_at"] for w in info["workers"])

    # 3. the batch form
    batch = [POOL, {"designation": "Console Nintendo Switch Neon"}, {"designation": "Stylo"}]
    code, answers = predict(stack, batch)
    assert code == 200 and len(answers) == 3
    assert answers[0]["prdtypecode"] == 2583

    # 4. hot reload after a promotion, then after a rollback: every worker within 2 intervals
    started = time.monotonic()
    stack.registry.force_promote("2", actor="test", reason="second")
    wait_until(lambda: serving_version(stack) == "2", 2 * RELOAD + 30, "version 2")
    assert predict(stack, POOL)[1]["model_version"] == "2"
    stack.registry.rollback(actor="test")
    wait_until(lambda: serving_version(stack) == "1", 2 * RELOAD + 30, "rollback to 1")
    assert all(w["version"] == "1" for w in health(stack)[1]["workers"])
    assert time.monotonic() - started < 120

    # 5. the registry goes down: keep serving, report staleness within a few intervals (the
    # polls are bounded: MLflow's default retries would hide the outage for minutes); count
    # the failed polls; never show the registry's credentials; it comes back: fresh again
    errors_before = _metric(
        http("GET", f"{stack.url}/metrics")[1], "rakuten_model_reloads_total", '{outcome="error"}'
    )
    stack.mlflow.stop()
    down = time.monotonic()
    wait_until(lambda: health(stack)[1].get("stale"), 2 * RELOAD + 30, "staleness")
    code, body = health(stack)
    assert code == 200 and body["status"] == "stale" and "registry" in body["reason"]
    assert predict(stack, POOL)[0] == 200

    def staleness() -> float:
        metrics = http("GET", f"{stack.url}/metrics")[1]
        return float(re.search(r"^rakuten_model_staleness_seconds (\S+)", metrics, re.M)[1])

    wait_until(lambda: staleness() > RELOAD, 30, "the staleness gauge to grow")
    assert time.monotonic() - down < 60
    metrics = http("GET", f"{stack.url}/metrics")[1]
    assert _metric(metrics, "rakuten_model_reloads_total", '{outcome="error"}') > errors_before
    assert any(w["error"] and "unreachable" in w["error"] for w in health(stack)[1]["workers"])
    port = stack.url.rsplit(":", 1)[1]
    surfaces = {
        "/health": json.dumps(health(stack)[1]),
        "/info": json.dumps(http("GET", f"{stack.url}/info")[1]),
        "state files": "".join(
            path.read_text()
            for path in (stack.folder / "home" / "serving" / port / "state").glob("*.json")
        ),
        "the server log": stack.server.log(tail=10**7),
    }
    for where, content in surfaces.items():
        assert REGISTRY_PASSWORD not in content, f"the registry password shows in {where}"
    assert "***@127.0.0.1" in surfaces["/health"]  # the error is there, masked
    stack.restart_mlflow()
    wait_until(lambda: health(stack)[1].get("stale") is False, 60, "fresh again")
    assert health(stack)[1]["model_version"] == "1"


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    return sum(float(m) for m in re.findall(pattern, text, re.M))


@pytest.mark.slow
def test_metrics_add_up_across_two_workers(stack: Stack) -> None:
    version = ensure_production(stack)
    before = http("GET", f"{stack.url}/metrics")[1]
    for _ in range(10):
        assert predict(stack, POOL)[0] == 200
    assert predict(stack, [POOL] * 5)[0] == 200
    after = http("GET", f"{stack.url}/metrics")[1]

    label = '{predicted_class="2583"}'
    assert (
        _metric(after, "rakuten_predictions_total", label)
        - _metric(before, "rakuten_predictions_total", label)
        == 15
    )
    ok = '{endpoint="/predict",status="200"}'
    assert (
        _metric(after, "rakuten_http_requests_total", ok)
        - _metric(before, "rakuten_http_requests_total", ok)
        == 11
    )
    assert (
        _metric(after, "rakuten_prediction_latency_seconds_count")
        - _metric(before, "rakuten_prediction_latency_seconds_count")
        >= 11
    )
    assert _metric(after, "rakuten_text_len_chars_count") >= 15
    assert _metric(after, "rakuten_model_version", f'{{version="{version}"}}') == 1
    assert "rakuten_inference_log_dropped_total" in after
    # two worker processes wrote metrics: prometheus-client's files, one set per process
    port = stack.url.rsplit(":", 1)[1]
    files = list((stack.folder / "home" / "serving" / port / "metrics").glob("counter_*.db"))
    assert len(files) >= 2


@pytest.mark.slow
def test_inference_log_rows_and_export(stack: Stack, tmp_path: Path) -> None:
    version = ensure_production(stack)
    marker = f"Marqueur {uuid.uuid4().hex[:8]}"
    body = {"designation": marker, "description": "<p>avec description</p>"}
    for _ in range(3):
        assert predict(stack, body)[0] == 200
    engine = connect(stack.database_url)

    def logged() -> pd.DataFrame:
        frame = inference_log_frame(engine)
        return frame[frame["designation"] == marker]

    wait_until(lambda: len(logged()) == 3, 30, "three inference-log rows")
    rows = logged()
    assert set(rows["model_version"]) == {version}
    assert (rows["description"] == "<p>avec description</p>").all()
    assert rows["latency_ms"].gt(0).all() and rows["confidence"].between(0, 1).all()

    out = tmp_path / "inference_log.csv"
    count = export_inference_log(engine, out)
    engine.dispose()
    with open(out, newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == [
            "timestamp",
            "designation",
            "description",
            "predicted_class",
            "confidence",
            "model_version",
        ]
        exported = list(reader)
    assert len(exported) == count >= 3
    assert sum(row[1] == marker for row in exported) == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", exported[-1][0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "raw", "status"),
    [
        ({}, None, 422),  # missing designation
        ({"designation": "   "}, None, 422),  # empty
        ({"designation": 42}, None, 422),  # wrong type
        ({"designation": "ok", "description": ["a"]}, None, 422),
        ({"designation": "ok", "price": 3}, None, 422),  # unknown field
        (None, b'{"designation": "broken', 422),  # invalid JSON
        ({"designation": "Stylo\u0000 bleu"}, None, 422),  # NUL: PostgreSQL cannot store it
        ({"designation": "ok", "description": "a\u0000"}, None, 422),
        (None, b'{"designation": "\\ud800"}', 422),  # a lone surrogate: no UTF-8 for it
        (None, b'[{"designation": "ok"}, {"designation": "x\\udfff"}]', 422),
        ({"designation": "x" * 10_001}, None, 422),  # over the length limit
        ([{"designation": "x"}] * 257, None, 422),  # over the batch limit
        ([], None, 422),
    ],
)
def test_bad_input_is_a_clear_4xx(stack: Stack, body: object, raw: bytes | None, status: int):
    ensure_production(stack)
    code, answer = http("POST", f"{stack.url}/predict", body, headers=KEY, raw=raw)
    assert code == status
    assert answer["detail"]
    assert health(stack)[0] == 200  # and the server keeps serving
    assert predict(stack, POOL)[0] == 200


@pytest.mark.slow
def test_validation_errors_never_echo_the_input(stack: Stack) -> None:
    ensure_production(stack)
    secret = "token-" + uuid.uuid4().hex
    code, answer = predict(stack, {"designation": secret, "price": secret})
    assert code == 422 and secret not in json.dumps(answer)
    assert answer["detail"][0]["loc"][-1] == "price"


@pytest.mark.slow
def test_an_oversized_body_is_refused_with_413_before_it_is_read(stack: Stack) -> None:
    ensure_production(stack)
    limit = 256 * (2 * 10_000 * 4 + 256) + 1024  # default field and batch limits
    host = stack.url.removeprefix("http://")
    # announced by Content-Length: refused on the headers, before a byte of the body is sent
    connection = HTTPConnection(host, timeout=30)
    connection.putrequest("POST", "/predict")
    for name, value in {**KEY, "Content-Type": "application/json"}.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(50_000_000))
    connection.endheaders()
    answer = connection.getresponse()
    body = answer.read()
    assert answer.status == 413 and b"over" in body and len(body) < 200
    connection.close()
    # without Content-Length (chunked): refused once the limit is passed (a body just over
    # it, so the server drains its end and the client reads the answer, not a reset)
    connection = HTTPConnection(host, timeout=30)
    chunk = b" " * (1 << 16)
    connection.request(
        "POST",
        "/predict",
        body=iter([b"[", *[chunk] * (limit // len(chunk) + 2), b"]"]),
        headers={**KEY, "Content-Type": "application/json"},
        encode_chunked=True,
    )
    assert connection.getresponse().status == 413
    connection.close()
    # a valid batch at the limits still goes through
    largest = [{"designation": "é" * 10_000, "description": "ü" * 10_000}] * 4
    assert predict(stack, largest)[0] == 200
    assert health(stack)[0] == 200


@pytest.mark.slow
def test_a_forged_model_version_is_refused_and_the_old_model_keeps_serving(
    stack: Stack, tmp_path: Path
) -> None:
    """An attacker with write access to the registry and artifacts points `production` at a
    version whose MLmodel says cloudpickle and whose pickle runs a command on load."""
    version = ensure_production(stack)
    marker = tmp_path / "owned"
    client = stack.registry.client
    source = client.get_model_version(stack.registry.model_name, version).source
    folder = Path(mlflow.artifacts.download_artifacts(source, dst_path=str(tmp_path / "dl")))
    config = yaml.safe_load((folder / "MLmodel").read_text())
    config["flavors"]["sklearn"].update(serialization_format="cloudpickle", pickled_model="m.pkl")
    (folder / "MLmodel").write_text(yaml.safe_dump(config))
    (folder / "m.pkl").write_bytes(pickle.dumps(_RunsCommand(str(marker))))
    mlflow.set_tracking_uri(stack.tracking_uri)
    with mlflow.start_run(experiment_id=ensure_experiment(stack.tracking_uri, "forged", None)):
        mlflow.log_artifacts(str(folder), artifact_path="model")
        run_id = mlflow.active_run().info.run_id
    forged = client.create_model_version(
        stack.registry.model_name, f"runs:/{run_id}/model", run_id=run_id
    )
    refused_before = _metric(
        http("GET", f"{stack.url}/metrics")[1], "rakuten_model_reloads_total", '{outcome="refused"}'
    )
    # straight to the alias, as an attacker would (no audited promotion)
    client.set_registered_model_alias(stack.registry.model_name, "production", forged.version)
    try:
        wait_until(
            lambda: health(stack)[1].get("status") == "degraded", 4 * RELOAD + 60, "degraded"
        )
        code, body = health(stack)
        assert code == 200 and body["model_version"] == version
        assert f"v{forged.version}" in body["reason"] and "cloudpickle" in body["reason"]
        code, answer = predict(stack, POOL)
        assert code == 200 and answer["model_version"] == version
        metrics = http("GET", f"{stack.url}/metrics")[1]
        refused = _metric(metrics, "rakuten_model_reloads_total", '{outcome="refused"}')
        assert refused - refused_before == 2  # once per worker, not once per poll
        time.sleep(3 * RELOAD)
        assert (
            _metric(
                http("GET", f"{stack.url}/metrics")[1],
                "rakuten_model_reloads_total",
                '{outcome="refused"}',
            )
            == refused
        )
        assert not marker.exists(), "the forged model ran its command"
    finally:
        client.set_registered_model_alias(stack.registry.model_name, "production", version)
    wait_until(lambda: health(stack)[1].get("status") == "ok", 4 * RELOAD + 60, "ok again")


class _RunsCommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_api_key_protects_predict_only(stack: Stack) -> None:
    ensure_production(stack)
    assert predict(stack, POOL, headers={})[0] == 401
    assert predict(stack, POOL, headers={"X-API-Key": "wrong"})[0] == 401
    assert http("GET", f"{stack.url}/health")[0] == 200
    assert http("GET", f"{stack.url}/metrics")[0] == 200


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(stack: Stack) -> None:
    ensure_production(stack)
    completed = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{stack.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--header",
            f"X-API-Key: {API_KEY}",
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert health(stack)[0] == 200


@pytest.mark.slow
def test_simulated_traffic_reaches_the_server(stack: Stack, synth_frame: pd.DataFrame) -> None:
    requests = shifted_requests(synth_frame[["designation", "description"]], 40, "category", 3)
    summary = send_traffic(stack.url, requests, rate=200, api_key=API_KEY)
    assert (summary.sent, summary.ok) == (40, 40), summary.errors
    assert sum(summary.predicted.values()) == 40
    assert 0 < summary.mean_confidence <= 1
    refused = send_traffic("http://127.0.0.1:1", requests[:2], rate=0)
    assert (refused.ok, refused.statuses[0]) == (0, 2)


UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.mark.slow
def test_predictions_carry_an_id_the_log_and_feedback_use(stack: Stack) -> None:
    ensure_production(stack)
    marker = f"Identifiant {uuid.uuid4().hex[:8]}"
    code, single = predict(stack, {"designation": marker})
    assert code == 200
    code, batch = predict(stack, [{"designation": marker}, POOL])
    assert code == 200
    ids = [single["prediction_id"], *(answer["prediction_id"] for answer in batch)]
    assert all(UUID4.fullmatch(pid) for pid in ids) and len(set(ids)) == 3
    engine = connect(stack.database_url)

    def logged() -> pd.DataFrame:
        frame = inference_log_frame(engine, last_n=500)
        return frame[frame["prediction_id"].isin(ids)]

    wait_until(lambda: len(logged()) == 3, 30, "the three predictions in the log")
    assert set(logged()["designation"]) == {marker, POOL["designation"]}
    engine.dispose()

    metrics = http("GET", f"{stack.url}/metrics")[1]
    right = _metric(metrics, "rakuten_feedback_total", '{correct="true"}')
    wrong = _metric(metrics, "rakuten_feedback_total", '{correct="false"}')
    corrections = [
        {"prediction_id": ids[0], "prdtypecode": single["prdtypecode"]},
        {"prediction_id": ids[2], "prdtypecode": 10 if batch[1]["prdtypecode"] != 10 else 40},
    ]
    feedback = f"{stack.url}/feedback"
    assert http("POST", feedback, corrections[0])[0] == 401  # the key of /predict
    code, answer = http("POST", feedback, corrections, headers=KEY)
    assert code == 200 and [a["correct"] for a in answer] == [True, False]
    code, answer = http("POST", feedback, {**corrections[0], "prdtypecode": 3}, headers=KEY)
    assert code == 422
    metrics = http("GET", f"{stack.url}/metrics")[1]
    assert _metric(metrics, "rakuten_feedback_total", '{correct="true"}') - right == 1
    assert _metric(metrics, "rakuten_feedback_total", '{correct="false"}') - wrong == 1
    assert _metric(metrics, "rakuten_http_requests_total", '{endpoint="/feedback",status="200"}')


@pytest.mark.slow
def test_simulate_traffic_sends_corrections_for_the_share_asked(
    stack: Stack, synth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rakuten_assets.cli import app
    from rakuten_assets.db.feedback import window_feedback

    ensure_production(stack)
    engine = connect(stack.database_url)
    before = len(window_feedback(engine))
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(synth_dir))
    monkeypatch.setenv("RAKUTEN_API_KEY", API_KEY)
    result = CliRunner().invoke(
        app,
        [
            "simulate-traffic",
            "--url",
            stack.url,
            "--n",
            "40",
            "--feedback",
            "0.25",
            "--rate",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "sent 40 request(s)" in result.output
    assert "sent 10 correction(s) to /feedback: 10 stored" in result.output, result.output
    stored = window_feedback(engine)
    engine.dispose()
    assert len(stored) - before == 10
    # the corrections are the true labels of partition 100's listings: the model, trained on
    # the same generator, gets most of them right
    assert (stored["predicted_class"] == stored["prdtypecode"]).tail(10).mean() >= 0.5


def test_sigterm_leaves_no_orphan(stack: Stack) -> None:
    ensure_production(stack)
    server = start_server(stack.env, stack.folder, free_port(), workers=2)
    children = descendants(server.process.pid)
    assert len(children) >= 4  # 2 inference workers, HTTP processes, queue managers
    server.process.send_signal(signal.SIGTERM)  # the main process only, as Kubernetes does
    server.process.wait(60)
    wait_until(lambda: not any(alive(pid) for pid in children), 60, "every child to exit")
    server.stop()
