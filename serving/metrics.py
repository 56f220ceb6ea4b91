"""Prometheus metrics, correct across processes (prometheus-client multiprocess mode).

PROMETHEUS_MULTIPROC_DIR must be set before this module is imported; `serving.server`
does it (and wipes the folder) before any worker starts.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

PREDICTIONS = Counter(
    "rakuten_predictions_total", "Predictions served, by predicted class.", ["predicted_class"]
)
PREDICTION_LATENCY = Histogram(
    "rakuten_prediction_latency_seconds",
    "Time to answer a /predict request, from the HTTP server's view.",
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
    ),
)
TEXT_LENGTH = Histogram(
    "rakuten_text_len_chars",
    "Characters of designation + description of each listing classified.",
    buckets=(10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000),
)
MODEL_VERSION = Gauge(
    "rakuten_model_version",
    "1 for the model version a worker serves (the highest across workers), 0 otherwise.",
    ["version"],
    multiprocess_mode="livemax",
)
MODEL_STALENESS = Gauge(
    "rakuten_model_staleness_seconds",
    "Seconds since a worker last reached the model registry (the worst worker).",
    multiprocess_mode="livemax",
)
MODEL_RELOADS = Counter("rakuten_model_reloads_total", "Model (re)loads by outcome.", ["outcome"])
HTTP_REQUESTS = Counter(
    "rakuten_http_requests_total", "HTTP requests by endpoint and status.", ["endpoint", "status"]
)
INFERENCE_LOG_DROPPED = Counter(
    "rakuten_inference_log_dropped_total",
    "Predictions not written to the inference log (queue full or database down).",
)
INFERENCE_LOG_WRITTEN = Counter(
    "rakuten_inference_log_written_total", "Predictions written to the inference log."
)

FEEDBACK = Counter(
    "rakuten_feedback_total",
    "Corrections received on /feedback, by whether the model's answer was right (a "
    "correction sent again for the same prediction counts again).",
    ["correct"],
)


def render() -> tuple[bytes, str]:
    """The metrics of every process, in the Prometheus text format."""
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    prometheus_multiprocess.mark_process_dead(pid)
