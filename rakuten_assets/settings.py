"""Project settings from environment variables and `.env` (pydantic-settings).

Every variable is documented in docs/configuration.md. Relative paths are resolved
against the current directory: run commands from the repository root (the Makefile does).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
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
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "RAKUTEN_MLFLOW_TRACKING_URI"),
        description="MLflow tracking server or store; default SQLite under `home`.",
    )
    mlflow_artifact_root: str | None = Field(
        default=None,
        description="Where a new experiment keeps its artifacts; default `home`/mlartifacts "
        "for a local store (a tracking server uses its own --default-artifact-root).",
    )
    mlflow_experiment: str = Field(default="rakuten-product-classification")
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000", description="Base URL of the MLflow UI, for links."
    )
    model_name: str = Field(
        default="rakuten-product-classifier", description="Name in the MLflow model registry."
    )
    min_weighted_f1: float = Field(
        default=0.70, description="Floor of the blocking check and of automatic promotion."
    )
    # -- serving -----------------------------------------------------------------------------
    reload_seconds: float = Field(
        default=10.0, gt=0, description="How often each serving worker polls the production alias."
    )
    max_batch_items: int = Field(default=256, ge=1, description="Items of one batch request.")
    max_text_chars: int = Field(default=10_000, ge=1, description="Characters of one field.")
    api_key: str | None = Field(
        default=None, description="When set, /predict and /feedback need X-API-Key."
    )
    top_k: int = Field(default=3, ge=1, le=27, description="Classes returned per prediction.")
    inference_log_queue: int = Field(
        default=10_000, ge=1, description="Predictions waiting to be logged before drops."
    )
    serve_batch_size: int = Field(
        default=64, ge=1, description="Requests a worker gathers into one model call."
    )
    serve_batch_timeout_ms: float = Field(
        default=1.0, gt=0, description="How long a worker waits to gather them."
    )

    # -- monitoring and automation ---------------------------------------------------------
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway for the rakuten_drift_* gauges; unset: no push.",
    )
    drift_window_hours: float = Field(
        default=24.0, gt=0, description="Window of the inference log that drift_metrics reads."
    )
    drift_retrain_cooldown_hours: float = Field(
        default=6.0, ge=0, description="Minimum time between two drift-triggered retrainings."
    )
    quality_f1_margin: float = Field(
        default=0.03,
        ge=0,
        description="How far the weighted F1 of production on a new partition may fall below "
        "its own test F1 before f1_within_margin_of_test warns.",
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

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def resolved_mlflow_artifact_root(self) -> str | None:
        """None for a tracking server (it decides where artifacts go)."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        if self.resolved_mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.home_dir / "mlartifacts").as_uri()


def get_settings() -> Settings:
    """The settings of this process, read once.

    Everything else asks here instead of building `Settings()`. The cache is keyed on what the
    settings are read from (the working directory, where `.env` and relative paths resolve, and
    the variables they read), so a process that changes its environment (a test, `CliRunner`)
    sees the change while an unchanged process reads `.env` and the environment only once.
    """
    return _settings_for(Path.cwd(), _settings_environment())


def _settings_environment() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (key, value)
            for key, value in os.environ.items()
            if key.startswith("RAKUTEN_") or key == "MLFLOW_TRACKING_URI"
        )
    )


@lru_cache(maxsize=8)
def _settings_for(cwd: Path, environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings()


# `scheme://user:password@host` and `password=...`-style query parameters: what an exception
# text or a URL may carry that must never reach a log, a health answer or a state file.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/'\"]+@")
_SECRET_PARAMETERS = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key)=)[^\s&'\"]+",
    re.IGNORECASE,
)


def mask_credentials(text: str) -> str:
    """`text` with the credentials of every URL (and secret query parameters) replaced by ***."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAMETERS.sub(r"\g<key>***", text)
