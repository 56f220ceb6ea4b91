"""The project's database and model registry, opened as the settings name them.

Several concerns (data, training, monitoring, the demo) read the same database and registry;
opening them in one place keeps every command on the same URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rakuten_assets.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from rakuten_assets.ml.registry import ModelRegistry


def database_engine() -> Engine:
    """An engine on the project database, its schema brought up to date."""
    from rakuten_assets.db.engine import connect

    return connect(get_settings().resolved_database_url)


def model_registry() -> ModelRegistry:
    """The MLflow registry of the project's model, with its promotion audit in the database."""
    from rakuten_assets.ml.registry import ModelRegistry

    settings = get_settings()
    return ModelRegistry(
        settings.resolved_mlflow_tracking_uri, settings.model_name, database_engine()
    )
