"""The deploy/ monitoring configuration as the tests read it: the Prometheus config and alert
rules, the Grafana provisioning and dashboards, and small PromQL helpers (the metric names an
expression selects, an alert's comparison). Used by the static checks (e2e/test_deploy_configs)
and by the live-Prometheus checks (e2e/test_monitoring_stack)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rakuten_assets.monitoring.pushgateway import DRIFT_METRICS, LAST_RUN
from rakuten_assets.monitoring.quality import QUALITY_LAST_RUN, QUALITY_METRICS
from rakuten_assets_tests.support import ROOT

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
    return (
        serving_series_names()
        | set(DRIFT_METRICS)
        | set(QUALITY_METRICS)
        | {LAST_RUN, QUALITY_LAST_RUN, "up"}
    )
