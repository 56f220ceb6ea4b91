"""Static checks of the monitoring configuration in deploy/: promtool on the Prometheus config
and alert rules, the Grafana provisioning files and dashboards (JSON, layout, datasource uid),
and every metric name a dashboard or an alert uses exists (serving/metrics.py, the drift
gauges of rakuten_assets/monitoring/pushgateway.py, or Prometheus' own `up`).

The helpers here (dashboard queries, Grafana variables, alert left-hand sides) are also used by
test_monitoring_stack.py, which runs the same expressions against a live Prometheus.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rakuten_assets.monitoring.pushgateway import DRIFT_METRICS, LAST_RUN

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
DATASOURCES = PROVISIONING / "datasources" / "prometheus.yml"
PROVIDERS = PROVISIONING / "dashboards" / "dashboards.yml"
# Grafana's provisioning folder inside its container; deploy/grafana/provisioning is mounted there
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
DASHBOARD_TITLES = {"Model Performance", "Data Drift", "System Health"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "row"}
SEVERITIES = {"critical", "warning", "info"}

# Grafana's built-in variables, as the tests evaluate them (see substitute_grafana_variables)
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def binary(name: str) -> str:
    """Path of a binary of Debian's prometheus / prometheus-pushgateway packages, or a failure
    saying how to install it (.ci/run installs them)."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        package = "prometheus-pushgateway" if name == "prometheus-pushgateway" else "prometheus"
        pytest.fail(
            f"{name} is not installed: `apt-get install -y {package}` (Debian's package; "
            ".ci/run installs it)",
            pytrace=False,
        )
    return found


# -- dashboards ------------------------------------------------------------------------------
def dashboard_files() -> list[Path]:
    return sorted(provider_folder().glob("*.json"))


def provider_folder() -> Path:
    """The repository folder holding the dashboards the file provider loads."""
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert len(providers) == 1, "one dashboard provider expected"
    path = providers[0]["options"]["path"]
    assert path.startswith(GRAFANA_PROVISIONING + "/"), (
        f"the provider path {path} must lie in {GRAFANA_PROVISIONING}, where "
        "deploy/grafana/provisioning is mounted"
    )
    return PROVISIONING / path.removeprefix(GRAFANA_PROVISIONING + "/")


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in dashboard_files()}


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    datasource_uid: str | None

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def dashboard_queries() -> list[Query]:
    queries = []
    for board in load_dashboards().values():
        for panel in walk_panels(board["panels"]):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                queries.append(
                    Query(
                        board["title"],
                        panel["title"],
                        target["refId"],
                        target["expr"],
                        source.get("uid"),
                    )
                )
    return queries


def substitute_grafana_variables(expr: str) -> str:
    """Grafana's built-in interval variables as fixed durations (the dashboards define no
    template variables, so any other `$name` is an error)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


# -- PromQL ----------------------------------------------------------------------------------
def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def split_comparison(expr: str) -> tuple[str, str, float]:
    """(left-hand side, operator, threshold) of an alert expression `<lhs> <op> <number>`.

    The operator is the only comparison outside parentheses, braces, brackets and strings;
    the right-hand side must be a number and no `and`/`or`/`unless` may stand at the top level
    (they bind more loosely than a comparison).
    """
    depth = 0
    quote = ""
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            operator = next((op for op in COMPARISONS if expr.startswith(op, i)), None)
            if operator and not expr.startswith(("=~", "!~"), i):
                found.append((i, operator))
                i += len(operator)
                continue
        i += 1
    if len(found) != 1:
        raise ValueError(f"expected one top-level comparison in {expr!r}, found {found}")
    position, operator = found[0]
    left, right = expr[:position].strip(), expr[position + len(operator) :].strip()
    top_level = re.sub(r"\([^()]*\)", "", left)
    while re.search(r"\([^()]*\)", top_level):
        top_level = re.sub(r"\([^()]*\)", "", top_level)
    if re.search(r"\b(and|or|unless)\b", top_level) or right.startswith("bool"):
        raise ValueError(f"{expr!r}: a set operator or `bool` at the top level")
    return left, operator, float(right)


def compare(value: float, operator: str, threshold: float) -> bool:
    return {
        "==": value == threshold,
        "!=": value != threshold,
        ">=": value >= threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        "<": value < threshold,
    }[operator]


# -- alert rules -----------------------------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# -- the metric names that exist -------------------------------------------------------------
def serving_series_names() -> set[str]:
    """Series names /metrics exposes, from the metric definitions in serving/metrics.py."""
    tree = ast.parse((ROOT / "serving" / "metrics.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = node.func.id
        if kind not in {"Counter", "Gauge", "Histogram"} or not node.args:
            continue
        name = ast.literal_eval(node.args[0])
        if kind == "Histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "Counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        else:
            names.add(name)
    return names


def known_series_names() -> set[str]:
    return serving_series_names() | set(DRIFT_METRICS) | {LAST_RUN, "up"}


# ============================================================================================
def test_promtool_accepts_config_and_rules() -> None:
    promtool = binary("promtool")
    for args in (["check", "config", str(PROMETHEUS_CONFIG)], ["check", "rules", str(ALERTS)]):
        completed = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_prometheus_config_scrapes_the_stack() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"rakuten-serving", "pushgateway", "prometheus"}
    assert jobs["pushgateway"]["honor_labels"] is True  # keep job="rakuten_drift"
    assert not jobs["rakuten-serving"].get("honor_labels")
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    assert targets == {
        "rakuten-serving": ["127.0.0.1:8000"],
        "pushgateway": ["127.0.0.1:9091"],
        "prometheus": ["127.0.0.1:9090"],
    }


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    known = known_series_names()
    for rule in rules:
        where = rule["alert"]
        assert "for" in rule, where
        assert rule["labels"]["severity"] in SEVERITIES, where
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], where
        left, _, _ = split_comparison(rule["expr"])  # the shape the live test relies on
        assert metric_names(left) <= known, (where, metric_names(left) - known)
    expressions = " ".join(rule["expr"] for rule in rules)
    for needed in (
        "rakuten_prediction_latency_seconds_bucket",
        'status=~"5.."',
        "rakuten_drift_detected == 1",
        "rakuten_model_staleness_seconds",
        'up{job="rakuten-serving"} == 0',
        "rakuten_inference_log_dropped_total",
    ):
        assert needed in expressions, needed


def test_grafana_datasource_and_provider() -> None:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(sources) == 1
    source = sources[0]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert len(dashboard_files()) == 3, provider_folder()


def test_dashboards_are_valid_and_use_the_provisioned_datasource() -> None:
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    boards = load_dashboards()
    assert {board["title"].split("·")[-1].strip() for board in boards.values()} == (
        DASHBOARD_TITLES
    )
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["schemaVersion"] >= 36 and board["templating"]["list"] == [], name
        panels = list(walk_panels(board["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            where = f"{name} / {panel['title']}"
            assert panel["type"] in PANEL_TYPES, where
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24 and position["h"] > 0, where
            if panel["type"] == "row":
                assert not panel.get("targets"), where
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert ref_ids and len(ref_ids) == len(set(ref_ids)), where
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] == uid, where
                assert target["expr"].strip(), where
        _assert_no_overlap(name, board["panels"])


def _assert_no_overlap(name: str, panels: list[dict[str, Any]]) -> None:
    """Top-level panels, and each collapsed row's panels, must not overlap on the grid."""
    groups = [panels] + [p["panels"] for p in panels if p["type"] == "row" and p["collapsed"]]
    for group in groups:
        cells: dict[tuple[int, int], str] = {}
        for panel in group:
            box = panel["gridPos"]
            for x in range(box["x"], box["x"] + box["w"]):
                for y in range(box["y"], box["y"] + box["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[x, y]}"
                    cells[x, y] = panel["title"]


def test_dashboards_use_only_known_metrics() -> None:
    known = known_series_names()
    queries = dashboard_queries()
    used: set[str] = set()
    for query in queries:
        names = metric_names(substitute_grafana_variables(query.expr))
        assert names, f"selects no metric: {query}"
        assert names <= known, f"unknown metrics {sorted(names - known)} in {query}"
        used |= names

    # every serving metric and every drift gauge is on some dashboard (a histogram through
    # any of its series)
    def family(series: str) -> str:
        base = re.sub(r"_(bucket|sum|count)$", "", series)
        return base if f"{base}_bucket" in known else series

    missing = {family(n) for n in known - {"up"}} - {family(n) for n in used}
    assert not missing, f"metrics on no dashboard: {sorted(missing)}"


def test_promql_helpers() -> None:
    assert split_comparison('up{job="a"} == 0') == ('up{job="a"}', "==", 0.0)
    assert split_comparison('(sum(x{s=~"5.."}) or vector(0)) / sum(y) > 0.01')[1:] == (">", 0.01)
    assert split_comparison("time() - t > 172800")[0] == "time() - t"
    with pytest.raises(ValueError):
        split_comparison("a > 1 and b < 2")
    with pytest.raises(ValueError):
        split_comparison("a > b")
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="b"}[5m]))) / ignoring (w) c'
    ) == {"h_bucket", "c"}
    assert substitute_grafana_variables("rate(x[$__rate_interval]) [${__range}]") == (
        "rate(x[1m]) [5m]"
    )
    with pytest.raises(ValueError):
        substitute_grafana_variables('x{job=~"$job"}')
