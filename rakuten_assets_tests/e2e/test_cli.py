"""The `rakuten` command line, run in-process against temporary databases and instances."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from rakuten_assets.cli import app
from rakuten_assets.data.challenge_files import X_TEST_FILE, X_TRAIN_FILE, Y_TRAIN_FILE
from rakuten_assets_tests.support import ROOT

REPO = ROOT
runner = CliRunner()


@pytest.fixture
def project_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, synth_dir: Path
) -> Path:
    """The CLI's environment: the repository's dagster.yaml, temporary storage and data."""
    monkeypatch.setenv("DAGSTER_HOME", str(REPO))
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", database_url)
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(synth_dir))
    monkeypatch.delenv("RAKUTEN_DAGSTER_DATABASE_URL", raising=False)
    return tmp_path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.slow
def test_init_db_load_data_and_status(project_env: Path) -> None:
    invoke("init-db")
    report = json.loads(invoke("status", "--json"))
    assert report["loaded_percentage"] == 40
    assert report["total_rows"] == 3000 * 40 // 100
    assert report["next_partition"] == "043"
    assert len(report["classes"]) == 27
    assert {"prdtypecode", "name_fr", "name_en", "rows"} <= set(report["classes"][0])

    assert "already loaded" in invoke("init-db")
    invoke("load-data")
    report = json.loads(invoke("status", "--json"))
    assert report["loaded_percentage"] == 43
    assert [load["batch_name"] for load in report["loads"]] == ["initial", "week_2"]
    assert all(load["dagster_run_id"] for load in report["loads"])
    assert "43% of the data loaded" in invoke("status")

    with dg.DagsterInstance.from_config(str(REPO)) as instance:
        runs = instance.get_runs()
    assert {run.run_id for run in runs} == {load["dagster_run_id"] for load in report["loads"]}


@pytest.mark.slow
def test_load_data_refuses_a_partition_with_missing_predecessors(project_env: Path) -> None:
    result = runner.invoke(app, ["load-data", "--partition", "046"])
    assert result.exit_code == 1
    assert "earlier partition(s) 040, 043 are not loaded" in " ".join(result.output.split())


def test_unknown_partition_is_rejected(project_env: Path) -> None:
    result = runner.invoke(app, ["load-data", "--partition", "041"])
    assert result.exit_code == 1
    assert "partitions are 040..100" in " ".join(result.output.split())


def test_missing_files_give_a_clear_message(
    project_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(project_env / "nowhere"))
    result = runner.invoke(app, ["init-db"])
    assert result.exit_code == 1
    assert "rakuten synth" in " ".join(result.output.split())


def test_synth_writes_the_three_files_deterministically(tmp_path: Path) -> None:
    invoke(
        "synth", "--rows", "400", "--test-rows", "50", "--seed", "3", "--out", str(tmp_path / "a")
    )
    invoke(
        "synth", "--rows", "400", "--test-rows", "50", "--seed", "3", "--out", str(tmp_path / "b")
    )
    for name in (X_TRAIN_FILE, Y_TRAIN_FILE, X_TEST_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len((tmp_path / "a" / Y_TRAIN_FILE).read_text().splitlines()) == 401
