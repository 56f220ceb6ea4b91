"""Project settings from environment variables and `.env` (pydantic-settings).

Every variable is documented in the README's configuration table. Relative paths are resolved
against the current directory: run commands from the repository root (the Makefile does).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAKUTEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default=Path(".rakuten"),
        description="Working folder of the embedded default: SQLite databases, Dagster storage.",
    )
    data_dir: Path = Field(
        default=Path("data/raw"),
        description="Folder holding X_train_update.csv, Y_train_CVw08PX.csv, X_test_update.csv.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the project database; default SQLite under `home`.",
    )
    dagster_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL for Dagster's own storage; unset means SQLite under `home`.",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'rakuten.db'}"

    @property
    def dagster_storage_dir(self) -> Path:
        return self.home_dir / "dagster"


@cache
def get_settings() -> Settings:
    """Settings of this process (read once; tests build `Settings(...)` directly)."""
    return Settings()
