"""The repository is a dg project: `dg check defs` passes and `dg list defs` shows the whole
lineage, its checks, jobs, sensors and schedules (what `make check-defs` runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rakuten_assets_tests.support import ROOT

DG = Path(sys.executable).parent / "dg"

LINEAGE = {
    "raw_products": set(),
    "products": {"raw_products"},
    "balanced_dataset": {"products"},
    "trained_model": {"balanced_dataset"},
    "registered_model_version": {"balanced_dataset", "trained_model"},
    "inference_log": set(),
    "drift_metrics": {"inference_log", "registered_model_version"},
    "production_model_evaluation": {"products"},
}
CHECKS = {
    ("products", "row_count_matches_partition"),
    ("products", "no_empty_designation"),
    ("products", "labels_within_codes"),
    ("products", "productid_unique"),
    ("balanced_dataset", "enough_test_rows_per_class"),
    ("balanced_dataset", "no_train_test_leak"),
    ("trained_model", "weighted_f1_above_floor"),
    ("drift_metrics", "no_drift_detected"),
    ("production_model_evaluation", "f1_within_margin_of_test"),
}
JOBS = {"ingest", "dataset", "train", "evaluate", "drift"}
SENSORS = {
    "train_on_new_partition",
    "retrain_on_drift",
    "retrain_on_quality_drop",
    "alert_on_run_failure",
}
SCHEDULES = {"drift_metrics_hourly", "weekly_load"}
RESOURCES = {"database", "challenge_files", "mlflow_registry", "mlflow_tracking", "pushgateway"}


def dg(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The venv's `dg`, from the repository root, with a Dagster home of the test's own."""
    env = {**os.environ, "DAGSTER_HOME": str(ROOT), "RAKUTEN_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [str(DG), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    result = dg("list", "defs", "--json", tmp_path=tmp_path_factory.mktemp("dg"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    result = dg("check", "defs", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_shows_the_lineage(listed: dict[str, list[dict[str, object]]]) -> None:
    assets = {str(item["asset_key"]): set(item["dependency_keys"]) for item in listed["assets"]}
    assert assets == LINEAGE


def test_dg_list_defs_shows_checks_jobs_sensors_schedules(
    listed: dict[str, list[dict[str, object]]],
) -> None:
    assert {(str(c["asset_key"]), str(c["name"])) for c in listed["asset_checks"]} == CHECKS
    assert {str(job["name"]) for job in listed["jobs"]} == JOBS
    assert {str(sensor["name"]) for sensor in listed["sensors"]} == SENSORS
    assert {str(schedule["name"]) for schedule in listed["schedules"]} == SCHEDULES
    assert {str(resource["name"]) for resource in listed["resources"]} == RESOURCES
