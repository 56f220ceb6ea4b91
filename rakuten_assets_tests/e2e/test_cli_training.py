"""`rakuten train / models / promote / rollback / reproduce`, as a user runs them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rakuten_assets.cli import app
from rakuten_assets_tests.support import ROOT

REPO = ROOT
runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output + repr(result.exception)
    return " ".join(result.output.split())


@pytest.mark.slow
def test_train_promote_rollback_reproduce(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    synth_dir_large: Path,
    mlflow_store: dict[str, str],
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(REPO))
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", f"sqlite:///{tmp_path / 'rakuten.db'}")
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(synth_dir_large))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["tracking_uri"])
    monkeypatch.setenv("RAKUTEN_MLFLOW_ARTIFACT_ROOT", mlflow_store["artifact_root"])
    monkeypatch.setenv("RAKUTEN_MODEL_NAME", f"cli-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("RAKUTEN_DAGSTER_DATABASE_URL", raising=False)

    invoke("init-db")
    output = invoke("train", "--promote")
    assert "registered" in output and "v1: promoted v1 to production" in output
    invoke("load-data")
    output = invoke("train", "--max-features", "3000", "--C", "2.0")
    assert "v2: not evaluated (auto_promote is off)" in output

    listing = json.loads(runner.invoke(app, ["models", "--json"]).output)
    versions = {row["version"]: row for row in listing["versions"]}
    assert versions["1"]["aliases"] == ["production"]
    assert versions["2"]["aliases"] == ["challenger"]
    assert versions["2"]["partition"] == "043"
    assert versions["1"]["weighted_f1"] > 0.7

    assert "production is now v2 (was v1)" in invoke("promote", "2", "--reason", "test")
    assert "rolled back from v2 to v1" in invoke("rollback")
    assert "no earlier production version" in invoke("rollback", code=1)
    assert "has no version 9" in invoke("promote", "9", code=1)
    history = json.loads(runner.invoke(app, ["models", "--json"]).output)["production_history"]
    assert [(e["action"], e["version"]) for e in history] == [
        ("promote", "1"),
        ("force", "2"),
        ("rollback", "1"),
    ]
    assert history[1]["actor"].startswith("cli:") and history[1]["reason"] == "test"

    output = invoke("reproduce", versions["1"]["run_id"])
    assert "reproduced: identical predictions on the test set" in output
    assert "predictions differing from the logged ones: 0" in output
    assert "cannot reproduce run" in invoke("reproduce", "0" * 32, code=1)
