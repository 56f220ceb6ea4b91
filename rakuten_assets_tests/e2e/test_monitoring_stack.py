"""The monitoring stack, live: the REAL Prometheus and Pushgateway (Debian's packages, installed
by .ci/run) and the real serving process (`rakuten serve`), each on a free port of 127.0.0.1.

Prometheus runs on a copy of deploy/prometheus/prometheus.yml whose targets are rewritten to
the test's ports, with 1 s scrape and evaluation intervals, and a copy of alerts.yml beside it.
The test sends traffic (single and batch predictions, corrections on /feedback, 4xx answers),
pushes realistic drift gauges with `push_drift_gauges` and the gauges of a production model
evaluation (a partition graded 0.07 below the model's test F1), waits until Prometheus has
scraped them, then asks Prometheus' HTTP API (/api/v1/query, all at one evaluation time):

- every PromQL expression of the three Grafana dashboards (`targets[].expr` of every panel,
  rows' nested panels included), Grafana's interval variables replaced as in
  test_deploy_configs.GRAFANA_VARIABLES ($__rate_interval -> 1m, $__interval -> 15s,
  $__range -> 5m): each must parse (status "success"), return a non-empty result, and every
  value must be a finite number. Each query must also go to the provisioned datasource uid.
- every alert rule. An alert expression is a comparison (`<lhs> <op> <threshold>`), empty
  whenever the condition is false, so an empty result would prove nothing. The choice: split
  it at its only top-level comparison (test_deploy_configs.split_comparison, which fails on
  any other shape), require the LEFT-HAND SIDE to be non-empty and finite (the metrics behind
  the alert exist and the computation works), require the FULL expression to parse, and
  require its result to be exactly the left-hand side's samples that satisfy the comparison
  (so the threshold does what it says). /api/v1/rules must list every rule with health "ok"
  after an evaluation that follows the drift push, the drift and quality alerts pending or
  firing (the test pushes rakuten_drift_detected=1 and an F1 drop above the margin) and the
  alerts on targets being down inactive.

Every process is stopped by a finalizer registered as soon as it starts, failure or not.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rakuten_assets.benchmarks.ingest import ensure_data
from rakuten_assets.benchmarks.processes import Service, free_port, http, wait_until
from rakuten_assets.benchmarks.serve import payloads, prepare_model
from rakuten_assets.data.categories import CODES
from rakuten_assets.monitoring.pushgateway import (
    LAST_RUN,
    PushgatewayError,
    build_registry,
    push_drift_gauges,
    push_gauges,
)
from rakuten_assets.monitoring.quality import (
    QUALITY_JOB,
    QUALITY_LAST_RUN,
    QUALITY_LAST_RUN_HELP,
    QUALITY_METRICS,
    PartitionEvaluation,
    quality_gauges,
)
from rakuten_assets_tests.support.deploy_configs import (
    ALERTS,
    DATASOURCES,
    PROMETHEUS_CONFIG,
    Query,
    alert_rules,
    compare,
    dashboard_queries,
    split_comparison,
    substitute_grafana_variables,
)
from rakuten_assets_tests.support.processes import BIN, binary, started

TRAIN_ROWS = 2_000  # a small model, as `make bench-serve --smoke`
SINGLES = 30
BATCHES = 2
BATCH = 16
LISTINGS_PER_ROUND = SINGLES + BATCHES * BATCH
FEEDBACK_PER_ROUND = 6
FEATURES = ("designation_chars", "designation_words", "description_chars", "description_words")


@dataclass
class Stack:
    serving_url: str
    prometheus_url: str
    pushgateway_url: str
    folder: Path
    services: dict[str, Service]
    evaluated_at: float  # the evaluation time of every query of the tests

    def query(self, expr: str, at: float | None = None) -> tuple[int, dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "time": at or self.evaluated_at})
        code, body = http("GET", f"{self.prometheus_url}/api/v1/query?{params}", timeout=30)
        assert isinstance(body, dict), f"{code}: {body}"
        return code, body

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{s.log(2000)}" for n, s in self.services.items())


def drift_gauges(seed: int = 5) -> list[tuple[str, dict[str, str], float]]:
    """A drift run's gauges with realistic values: a window that drifted (class mix shifted,
    longer descriptions, more unknown words)."""
    rng = random.Random(seed)
    reference = [rng.uniform(0.5, 2.0) for _ in CODES]
    current = [w * rng.uniform(0.4, 1.8) for w in reference]
    gauges: list[tuple[str, dict[str, str], float]] = [
        ("rakuten_drift_detected", {}, 1.0),
        ("rakuten_drift_psi_predicted_class", {}, 0.31),
        ("rakuten_drift_js_predicted_class", {}, 0.17),
        ("rakuten_drift_confidence_mean", {}, 0.71),
        ("rakuten_drift_low_confidence_share", {}, 0.22),
        ("rakuten_drift_window_predictions", {}, 1834.0),
        ("rakuten_feedback_corrected", {}, 96.0),
        ("rakuten_feedback_accuracy", {}, 0.81),
    ]
    means = {
        "designation_chars": (71.0, 78.5),
        "designation_words": (11.2, 12.0),
        "description_chars": (540.0, 702.0),
        "description_words": (84.0, 109.0),
    }
    for index, feature in enumerate(FEATURES):
        labels = {"feature": feature}
        gauges += [
            ("rakuten_drift_ks_statistic", labels, 0.04 + 0.05 * index),
            ("rakuten_drift_ks_pvalue", dict(labels), [0.31, 0.08, 0.0004, 0.002][index]),
            ("rakuten_drift_wasserstein", dict(labels), 0.01 + 0.03 * index),
        ]
        for window, mean in zip(("reference", "current"), means[feature], strict=True):
            gauges.append(("rakuten_drift_text_length_mean", {**labels, "window": window}, mean))
    for window, empty, oov, weights in (
        ("reference", 0.35, 0.08, reference),
        ("current", 0.41, 0.15, current),
    ):
        gauges += [
            ("rakuten_drift_empty_description_share", {"window": window}, empty),
            ("rakuten_drift_oov_rate", {"window": window}, oov),
        ]
        total = sum(weights)
        gauges += [
            (
                "rakuten_drift_class_share",
                {"predicted_class": str(code), "window": window},
                weight / total,
            )
            for code, weight in zip(CODES, weights, strict=True)
        ]
    return gauges


def push_quality_gauges(url: str) -> None:
    """What production_model_evaluation pushes for a partition on which production v3 fell
    0.07 weighted F1 below its test set (the quality alert's case)."""
    per_class = pd.DataFrame({"f1": [0.8]}, index=pd.Index([10], name="prdtypecode"))
    graded = PartitionEvaluation("049", "3", 2547, 0.80, 0.79, 0.71, per_class, 0.86)
    push_gauges(
        url,
        quality_gauges(graded),
        QUALITY_JOB,
        last_run=QUALITY_LAST_RUN,
        helps=QUALITY_METRICS,
        last_run_help=QUALITY_LAST_RUN_HELP,
    )


def prometheus_config(folder: Path, ports: dict[str, int]) -> Path:
    """deploy/prometheus/prometheus.yml with the test's ports and 1 s intervals, alerts.yml
    copied beside it; returns the config path."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(ports), f"jobs of prometheus.yml: {sorted(jobs)}"
    for name, job in jobs.items():
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
    assert config["rule_files"] == [ALERTS.name]
    shutil.copy(ALERTS, folder / ALERTS.name)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def call(what: str, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    started_at = time.monotonic()
    try:
        return http(method, url, timeout=30, **kwargs)
    except OSError as error:
        raise AssertionError(
            f"{what}: {method} {url} failed after {time.monotonic() - started_at:.1f} s: {error!r}"
        ) from None


def send_traffic(url: str, singles: list[str], batches: list[str]) -> None:
    answers = []
    for number, body in enumerate(singles[:SINGLES]):
        code, answer = call(f"prediction {number}", "POST", f"{url}/predict", raw=body.encode())
        assert code == 200, answer
        answers.append(answer)
    for number, body in enumerate(batches[:BATCHES]):
        code, answer = call(f"batch {number}", "POST", f"{url}/predict", raw=body.encode())
        assert code == 200 and len(answer) == BATCH, answer
    assert call("missing designation", "POST", f"{url}/predict", body={})[0] == 422
    assert call("broken JSON", "POST", f"{url}/predict", raw=b'{"designation": "br')[0] == 422
    assert call("unknown page", "GET", f"{url}/no-such-page")[0] == 404
    assert call("info", "GET", f"{url}/info")[0] == 200
    send_feedback(url, answers[:FEEDBACK_PER_ROUND])


def send_feedback(url: str, answers: list[dict[str, Any]]) -> None:
    """Corrections of served predictions, every other one saying the model was wrong (so both
    series of rakuten_feedback_total exist), once the inference log holds them."""
    items = [
        {
            "prediction_id": answer["prediction_id"],
            "prdtypecode": answer["prdtypecode"]
            if number % 2
            else next(code for code in CODES if code != answer["prdtypecode"]),
        }
        for number, answer in enumerate(answers)
    ]
    # the log is written asynchronously: 404 until the worker's writer has flushed
    wait_until(
        lambda: call("feedback", "POST", f"{url}/feedback", body=items)[0] == 200,
        30,
        "the inference log to hold the predictions to correct",
    )
    code, answer = call(
        "feedback, bad code", "POST", f"{url}/feedback", body={**items[0], "prdtypecode": 7}
    )
    assert code == 422, answer


def scalar(stack: Stack, expr: str) -> float:
    """The single value of `expr` now, or NaN when the result is empty."""
    code, body = stack.query(expr, time.time())
    result = body["data"]["result"] if code == 200 else []
    return float(result[0]["value"][1]) if result else math.nan


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Stack:
    prometheus_bin = binary("prometheus")
    pushgateway_bin = binary("prometheus-pushgateway")
    folder = tmp_path_factory.mktemp("monitoring")
    services: dict[str, Service] = {}

    def stop_all() -> None:
        for service in reversed(services.values()):
            service.stop()

    request.addfinalizer(stop_all)

    # the serving process with a small production model (as `make bench-serve --smoke`)
    data_dir = folder / "data"
    ensure_data(data_dir, 3_000, 42, test_rows=500)
    env = prepare_model(data_dir, TRAIN_ROWS, folder)
    ports = {"rakuten-serving": free_port(), "pushgateway": free_port(), "prometheus": free_port()}
    serving_url = f"http://127.0.0.1:{ports['rakuten-serving']}"
    services["serving"] = Service(
        [str(BIN / "rakuten"), "serve", "--port", str(ports["rakuten-serving"]), "--workers", "1"],
        env,
        folder / "serve.log",
    )
    started(services["serving"], f"{serving_url}/health", "the serving process", 240)

    pushgateway_url = f"http://127.0.0.1:{ports['pushgateway']}"
    services["pushgateway"] = Service(
        [pushgateway_bin, f"--web.listen-address=127.0.0.1:{ports['pushgateway']}"],
        dict(env),
        folder / "pushgateway.log",
    )
    started(services["pushgateway"], f"{pushgateway_url}/-/ready", "the Pushgateway", 60)

    prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
    services["prometheus"] = Service(
        [
            prometheus_bin,
            f"--config.file={prometheus_config(folder, ports)}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--storage.tsdb.retention.time=1h",
        ],
        dict(env),
        folder / "prometheus.log",
        cwd=folder,
    )
    started(services["prometheus"], f"{prometheus_url}/-/ready", "Prometheus", 60)
    built = Stack(serving_url, prometheus_url, pushgateway_url, folder, services, 0.0)

    try:
        # every job scraped, then two rounds of traffic with a scrape between them (so that
        # every counter, including the per-class ones, has a rate), then the drift push
        wait_until(lambda: scalar(built, "count(up == 1)") == 3, 60, "three targets up")
        singles, batches = payloads(data_dir, SINGLES + BATCHES * BATCH, BATCH)
        for round_ in (1, 2):
            send_traffic(serving_url, singles, batches)
            wait_until(
                lambda r=round_: (
                    scalar(built, "sum(rakuten_predictions_total)") >= r * LISTINGS_PER_ROUND
                    and scalar(built, "sum(rakuten_feedback_total)") >= r * FEEDBACK_PER_ROUND
                ),
                60,
                f"Prometheus to scrape round {round_} of the traffic",
            )
        pushed_at = time.time()
        push_drift_gauges(pushgateway_url, drift_gauges())
        push_quality_gauges(pushgateway_url)
        wait_until(
            lambda: (
                scalar(built, LAST_RUN) >= math.floor(pushed_at)
                and scalar(built, QUALITY_LAST_RUN) >= math.floor(pushed_at)
            ),
            30,
            "Prometheus to scrape the drift and evaluation gauges",
        )
        scraped_at = time.time()
        wait_until(
            lambda: rules_evaluated_after(built, scraped_at), 30, "an evaluation of the rules"
        )
    except (TimeoutError, AssertionError) as error:
        raise AssertionError(f"{error}\n{built.logs()}") from None
    built.evaluated_at = time.time()
    return built


def rules(stack: Stack) -> list[dict[str, Any]]:
    code, body = http("GET", f"{stack.prometheus_url}/api/v1/rules", timeout=10)
    assert code == 200 and body["status"] == "success", body
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def timestamp(rfc3339: str) -> float:
    """Unix time of an RFC 3339 time of Prometheus' API (nanosecond fractions included)."""
    match = re.fullmatch(r"(.{19})(\.\d+)?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(match[1] + zone).timestamp() + float(match[2] or 0)


def rules_evaluated_after(stack: Stack, moment: float) -> bool:
    """Every rule evaluated (at least) once after `moment`."""
    found = rules(stack)
    return bool(found) and all(timestamp(rule["lastEvaluation"]) > moment for rule in found)


def samples(body: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    """(labels without __name__, value) of an instant query's answer."""
    data = body["data"]
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    assert data["resultType"] == "vector", data["resultType"]
    return [
        ({k: v for k, v in s["metric"].items() if k != "__name__"}, float(s["value"][1]))
        for s in data["result"]
    ]


def check_non_empty_finite(stack: Stack, expr: str) -> str | None:
    """None when `expr` parses and returns a non-empty, finite result; else why not."""
    code, body = stack.query(expr)
    if code != 200 or body.get("status") != "success":
        return f"HTTP {code}: {body.get('errorType')}: {body.get('error')}"
    found = samples(body)
    if not found:
        return "empty result"
    bad = [(labels, value) for labels, value in found if not math.isfinite(value)]
    return f"non-finite values {bad}" if bad else None


# ============================================================================================
@pytest.mark.slow
def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    queries: list[Query] = dashboard_queries()
    assert len(queries) >= 30
    failures = []
    for query in queries:
        if query.datasource_uid != uid:
            failures.append(f"{query}\n    datasource uid {query.datasource_uid!r} != {uid!r}")
            continue
        problem = check_non_empty_finite(stack, substitute_grafana_variables(query.expr))
        if problem:
            failures.append(f"{query}\n    {problem}")
    assert not failures, f"{len(failures)} of {len(queries)} queries:\n" + "\n".join(failures)


@pytest.mark.slow
def test_every_alert_rule_evaluates(stack: Stack) -> None:
    failures = []
    definitions = alert_rules()
    for rule in definitions:
        left, operator, threshold = split_comparison(rule["expr"])
        problem = check_non_empty_finite(stack, left)
        if problem:
            failures.append(f"{rule['alert']}: left-hand side `{left}`: {problem}")
            continue
        code, full = stack.query(rule["expr"])
        if code != 200 or full["status"] != "success":
            failures.append(f"{rule['alert']}: `{rule['expr']}`: {full.get('error')}")
            continue
        expected = sorted(
            (json.dumps(labels, sort_keys=True), value)
            for labels, value in samples(stack.query(left)[1])
            if compare(value, operator, threshold)
        )
        got = sorted((json.dumps(labels, sort_keys=True), value) for labels, value in samples(full))
        if got != expected:
            failures.append(f"{rule['alert']}: {got} != left-hand side filtered {expected}")
    assert not failures, "\n".join(failures)

    loaded = {rule["name"]: rule for rule in rules(stack)}
    assert set(loaded) == {rule["alert"] for rule in definitions}
    unhealthy = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    assert not unhealthy, unhealthy
    assert all(rule["type"] == "alerting" for rule in loaded.values())
    # the test pushed rakuten_drift_detected=1; every target is up; the drift job just ran
    assert loaded["RakutenDataDriftDetected"]["state"] in ("pending", "firing")
    # ... and an evaluation 0.07 below the model's test F1 (margin 0.03)
    assert loaded["RakutenModelQualityDrop"]["state"] in ("pending", "firing")
    for name in (
        "RakutenServingDown",
        "RakutenPushgatewayDown",
        "RakutenDriftJobSilent",
        "RakutenDriftNotEnoughData",
    ):
        assert loaded[name]["state"] == "inactive", (name, loaded[name])


@pytest.mark.slow
def test_pushed_drift_gauges_reach_prometheus_with_their_job(stack: Stack) -> None:
    code, body = stack.query('rakuten_drift_class_share{job="rakuten_drift",window="current"}')
    assert code == 200, body
    shares = samples(body)
    assert len(shares) == len(CODES)
    assert math.isclose(sum(value for _, value in shares), 1.0, rel_tol=1e-9)
    code, body = stack.query('rakuten_drift_ks_pvalue{job="rakuten_drift"}')
    assert code == 200, body
    assert {labels["feature"] for labels, _ in samples(body)} == set(FEATURES)


@pytest.mark.slow
def test_a_push_replaces_the_previous_group(stack: Stack) -> None:
    job = "replace_test"
    push_drift_gauges(
        stack.pushgateway_url,
        [
            ("rakuten_drift_class_share", {"predicted_class": "10", "window": "current"}, 0.5),
            ("rakuten_drift_class_share", {"predicted_class": "40", "window": "current"}, 0.5),
        ],
        job=job,
    )
    push_drift_gauges(
        stack.pushgateway_url,
        [("rakuten_drift_class_share", {"predicted_class": "40", "window": "current"}, 1.0)],
        job=job,
    )
    text = http("GET", f"{stack.pushgateway_url}/metrics")[1]
    lines = [line for line in text.splitlines() if f'job="{job}"' in line]
    assert any('predicted_class="40"' in line and line.endswith(" 1") for line in lines), lines
    assert not any('predicted_class="10"' in line for line in lines), lines
    assert any(line.startswith(LAST_RUN) for line in lines), lines
    http("DELETE", f"{stack.pushgateway_url}/metrics/job/{job}")


@pytest.mark.slow
def test_push_failures_raise_a_clear_error(stack: Stack) -> None:
    with pytest.raises(PushgatewayError, match="could not push"):
        push_drift_gauges(f"http://127.0.0.1:{free_port()}", drift_gauges(), timeout=2)
    # Prometheus is no Pushgateway: it answers the PUT with an HTTP error
    with pytest.raises(PushgatewayError, match="refused the push: HTTP 4"):
        push_drift_gauges(stack.prometheus_url, drift_gauges(), timeout=5)


def test_build_registry_rejects_malformed_gauges() -> None:
    registry, series = build_registry(drift_gauges(), now=1_700_000_000.0)
    assert series == len(drift_gauges()) + 1
    assert registry.get_sample_value(LAST_RUN) == 1_700_000_000.0
    assert registry.get_sample_value(
        "rakuten_drift_ks_statistic", {"feature": "description_chars"}
    ) == pytest.approx(0.14)
    with pytest.raises(ValueError, match="label names"):
        build_registry([("m", {"a": "1"}, 1.0), ("m", {"b": "1"}, 1.0)])
    with pytest.raises(ValueError, match="twice"):
        build_registry([("m", {"a": "1"}, 1.0), ("m", {"a": "1"}, 2.0)])
    with pytest.raises(ValueError, match="added by"):
        build_registry([(LAST_RUN, {}, 1.0)])
    with pytest.raises(ValueError, match="not a number"):
        build_registry([("m", {}, "high")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="invalid metric name"):
        build_registry([("bad-name", {}, 1.0)])
    with pytest.raises(ValueError, match="reserved label"):
        build_registry([("m", {"job": "x"}, 1.0)])


@pytest.mark.slow
def test_evaluation_gauges_have_their_own_job_and_last_run(stack: Stack) -> None:
    code, body = stack.query("rakuten_model_eval_f1")
    assert code == 200, body
    ((labels, value),) = samples(body)
    assert labels["job"] == QUALITY_JOB and (labels["partition"], labels["version"]) == ("049", "3")
    assert value == pytest.approx(0.79)
    # the drift job's age stays the drift job's own (RakutenDriftJobSilent reads it)
    code, body = stack.query(LAST_RUN)
    assert [labels["job"] for labels, _ in samples(body)] == ["rakuten_drift"]
