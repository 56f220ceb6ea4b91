"""Instance classes named in the top-level `dagster.yaml`.

One `dagster.yaml` serves both settings, chosen by environment variables at start-up:
- production: Dagster's runs, events and schedules in PostgreSQL through dagster-postgres,
  when `RAKUTEN_DAGSTER_DATABASE_URL` is set;
- embedded default: SQLite and local files under `$RAKUTEN_HOME/dagster` (`.rakuten/dagster`).
Local artifacts and compute logs always live under `$RAKUTEN_HOME/dagster`, so nothing is
written into the repository even though `DAGSTER_HOME` is the repository root.
"""

from __future__ import annotations

from typing import Any

from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from sqlalchemy.engine import make_url

from rakuten_assets.settings import get_settings


def dagster_postgres_url(url: str) -> str:
    """dagster-postgres is written for psycopg2; name it explicitly, because SQLAlchemy 2.1
    made psycopg 3 the default driver of plain postgresql:// URLs."""
    return make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


class _FromEnvironment:
    """Classes configured by the environment (Settings), with nothing to set in the YAML."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}


class ProjectStorage(_FromEnvironment, DagsterStorage, ConfigurableClass):
    """Dagster storage: PostgreSQL when RAKUTEN_DAGSTER_DATABASE_URL is set, SQLite otherwise.

    Never instantiated itself: `from_config_value` returns the concrete storage.
    """

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> DagsterStorage:
        settings = get_settings()
        if settings.dagster_database_url:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage(
                postgres_url=dagster_postgres_url(settings.dagster_database_url),
                inst_data=inst_data,
            )
        return DagsterSqliteStorage.from_local(
            str(settings.dagster_storage_dir), inst_data=inst_data
        )


class ProjectArtifactStorage(_FromEnvironment, LocalArtifactStorage):
    """Local artifacts (IO manager pickles, schedule state) under $RAKUTEN_HOME/dagster."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalArtifactStorage:
        return LocalArtifactStorage(str(get_settings().dagster_storage_dir), inst_data=inst_data)


class ProjectComputeLogManager(_FromEnvironment, LocalComputeLogManager):
    """Step stdout/stderr under $RAKUTEN_HOME/dagster/logs."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalComputeLogManager:
        return LocalComputeLogManager(
            str(get_settings().dagster_storage_dir / "logs"), inst_data=inst_data
        )
