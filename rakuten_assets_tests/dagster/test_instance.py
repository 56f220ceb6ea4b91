"""The top-level dagster.yaml: SQLite under RAKUTEN_HOME by default, dagster-postgres when
RAKUTEN_DAGSTER_DATABASE_URL is set; and `dagster asset materialize` from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from rakuten_assets.db.engine import connect
from rakuten_assets.db.schema import products
from rakuten_assets_tests.support import ROOT
from rakuten_assets_tests.support.postgres import ADMIN_URL

REPO = ROOT


def _trivial_run(instance: dg.DagsterInstance) -> str:
    @dg.asset
    def probe() -> int:
        return 1

    result = dg.materialize([probe], instance=instance)
    assert result.success
    return result.run_id


def test_embedded_default_stores_under_rakuten_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAKUTEN_DAGSTER_DATABASE_URL", raising=False)
    with dg.DagsterInstance.from_config(str(REPO)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        run_id = _trivial_run(instance)
        assert instance.get_run_by_id(run_id) is not None
        assert instance.get_settings("telemetry") == {"enabled": False}
    assert (tmp_path / "home" / "dagster" / "history" / "runs.db").is_file()
    assert (tmp_path / "home" / "dagster" / "storage").is_dir()
    assert not (REPO / "history").exists()


@pytest.fixture
def dagster_postgres_url() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"rakuten_dagster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_production_setting_uses_dagster_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_postgres_url: str
) -> None:
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAKUTEN_DAGSTER_DATABASE_URL", dagster_postgres_url)
    with dg.DagsterInstance.from_config(str(REPO)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        run_id = _trivial_run(instance)
    engine = create_engine(dagster_postgres_url.replace("+psycopg", ""))
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM runs WHERE run_id = :run_id"), {"run_id": run_id}
        ).scalar_one()
    engine.dispose()
    assert stored == 1
    assert not (tmp_path / "home" / "dagster" / "history").exists()


@pytest.mark.slow
def test_dagster_cli_materializes_on_an_empty_database(tmp_path: Path, synth_dir: Path) -> None:
    """The README's command, run from the repository root on an empty database."""
    database = tmp_path / "rakuten.db"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(REPO),
        "RAKUTEN_HOME": str(tmp_path / "home"),
        "RAKUTEN_DATABASE_URL": f"sqlite:///{database}",
        "RAKUTEN_DATA_DIR": str(synth_dir),
    }
    env.pop("RAKUTEN_DAGSTER_DATABASE_URL", None)
    dagster = Path(sys.executable).with_name("dagster")
    for key in ("040", "043"):
        completed = subprocess.run(
            [
                str(dagster),
                "asset",
                "materialize",
                "-m",
                "rakuten_assets.definitions",
                "--select",
                "raw_products,products",
                "--partition",
                key,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]

    engine = connect(f"sqlite:///{database}")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(products)).scalar_one() == (
            3000 * 43 // 100
        )
    engine.dispose()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
        with dg.DagsterInstance.from_config(str(REPO)) as instance:
            runs = instance.get_runs()
    assert len(runs) == 2
    assert {run.tags.get("dagster/partition") for run in runs} == {"040", "043"}
