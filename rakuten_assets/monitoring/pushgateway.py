"""Push gauges to a Prometheus Pushgateway (no Dagster here): the drift job's, and (through
`push_gauges`) those of the production model's evaluation (rakuten_assets.monitoring.quality).

One push replaces the whole group of the job (HTTP PUT, `push_to_gateway`): a label set pushed
by an earlier run (a class no longer predicted, say) does not linger beside the new values.
Each job pushes its own last-run timestamp, under its own name, so the age of one job's
values never hides behind another's push. Prometheus scrapes the Pushgateway with
`honor_labels: true`, so the series keep job="rakuten_drift" (see
deploy/prometheus/prometheus.yml).
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

DEFAULT_JOB = "rakuten_drift"
LAST_RUN = "rakuten_drift_last_run_timestamp_seconds"

# The gauges the drift job computes (name -> help). Their labels:
#   feature: designation_chars | designation_words | description_chars | description_words
#   window: reference | current
#   predicted_class: a product-type code
DRIFT_METRICS: dict[str, str] = {
    "rakuten_drift_detected": "1 drift detected, 0 no drift, -1 not enough data in the window.",
    "rakuten_drift_psi_predicted_class": "Population stability index of the predicted classes.",
    "rakuten_drift_js_predicted_class": "Jensen-Shannon distance of the predicted classes.",
    "rakuten_drift_ks_statistic": "Kolmogorov-Smirnov statistic of a text feature.",
    "rakuten_drift_ks_pvalue": "Kolmogorov-Smirnov p-value of a text feature.",
    "rakuten_drift_wasserstein": "Wasserstein distance of a text feature.",
    "rakuten_drift_text_length_mean": "Mean of a text feature in a window.",
    "rakuten_drift_empty_description_share": "Share of listings without description in a window.",
    "rakuten_drift_oov_rate": "Share of tokens outside the model's vocabulary in a window.",
    "rakuten_drift_class_share": "Share of each predicted class in a window.",
    "rakuten_drift_confidence_mean": "Mean confidence of the predictions of the current window.",
    "rakuten_drift_low_confidence_share": "Share of low-confidence predictions (current window).",
    "rakuten_drift_window_predictions": "Predictions in the current window.",
    "rakuten_feedback_corrected": "Predictions of the current window corrected by users.",
    "rakuten_feedback_accuracy": "Share of the corrected predictions of the current window "
    "the model had right (live accuracy; absent without corrections).",
}
LAST_RUN_HELP = "Unix time of the drift job's last push."

DriftGauge = tuple[str, dict[str, str], float]
# Classic Prometheus names (prometheus-client would also accept UTF-8 ones, which Prometheus 2
# and the Pushgateway 1.x do not)
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class PushgatewayError(RuntimeError):
    """The Pushgateway could not be reached or refused the push."""


def build_registry(
    gauges: Iterable[DriftGauge],
    now: float | None = None,
    last_run: str = LAST_RUN,
    helps: Mapping[str, str] = DRIFT_METRICS,
    last_run_help: str = LAST_RUN_HELP,
) -> tuple[CollectorRegistry, int]:
    """A fresh registry holding `gauges` plus the last-run timestamp (gauge `last_run`); the
    number of series. `helps`: the help text of each gauge name.

    Raises ValueError for a gauge whose label names differ from the other gauges of its name,
    for the same (name, labels) given twice, for a non-number value, for an invalid metric or
    label name, and for the labels `job` and `instance` (the Pushgateway's grouping key).
    """
    label_names: dict[str, tuple[str, ...]] = {}
    values: dict[str, dict[tuple[str, ...], float]] = {}
    for name, labels, value in gauges:
        if name == last_run:
            raise ValueError(f"{last_run} is added by the push itself")
        if not METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        bad = [k for k in labels if not LABEL_NAME.fullmatch(k) or k.startswith("__")]
        if bad or "job" in labels or "instance" in labels:
            raise ValueError(f"{name}: invalid or reserved label names {sorted(labels)}")
        names = tuple(sorted(labels))
        known = label_names.setdefault(name, names)
        if known != names:
            raise ValueError(
                f"{name}: label names {list(names)} differ from {list(known)} given before"
            )
        key = tuple(str(labels[label]) for label in names)
        series = values.setdefault(name, {})
        if key in series:
            raise ValueError(f"{name}{dict(zip(names, key, strict=True))} given twice")
        try:
            series[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: value {value!r} is not a number") from None

    registry = CollectorRegistry()
    for name, series in values.items():
        gauge = Gauge(
            name,
            helps.get(name, "Pushed gauge."),
            label_names[name],
            registry=registry,
        )
        for key, value in series.items():
            (gauge.labels(*key) if key else gauge).set(value)
    last_run_gauge = Gauge(last_run, last_run_help, registry=registry)
    last_run_gauge.set(time.time() if now is None else now)
    return registry, sum(len(series) for series in values.values()) + 1


def push_drift_gauges(
    url: str,
    gauges: list[DriftGauge],
    job: str = DEFAULT_JOB,
    timeout: float = 5.0,
) -> None:
    """Replace the group `job` on the Pushgateway at `url` with `gauges` and the last-run time.

    `url`: e.g. "http://pushgateway:9091" (the scheme defaults to http). Raises ValueError for
    malformed gauges (nothing is pushed) and PushgatewayError when the push fails; the caller
    decides whether that fails its run.
    """
    push_gauges(url, gauges, job, timeout=timeout)


def push_gauges(
    url: str,
    gauges: list[DriftGauge],
    job: str,
    last_run: str = LAST_RUN,
    helps: Mapping[str, str] = DRIFT_METRICS,
    last_run_help: str = LAST_RUN_HELP,
    timeout: float = 5.0,
) -> None:
    """`push_drift_gauges` for any job: its own last-run gauge name and help texts."""
    if not job:
        raise ValueError("job must not be empty")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    registry, series = build_registry(gauges, None, last_run, helps, last_run_help)
    where = f"Pushgateway {url} (job {job!r}, {series} series)"
    try:
        push_to_gateway(url, job=job, registry=registry, timeout=timeout)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()[:500]
        raise PushgatewayError(
            f"{where} refused the push: HTTP {error.code} {error.reason}"
            + (f": {detail}" if detail else "")
        ) from error
    except (OSError, ValueError) as error:  # URLError, refused connection, timeout, bad URL
        raise PushgatewayError(f"could not push to {where}: {error}") from error
