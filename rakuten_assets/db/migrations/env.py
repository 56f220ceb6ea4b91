"""Alembic environment: run by `rakuten init-db` and on first use of a database."""

from __future__ import annotations

from alembic import context

from rakuten_assets.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `rakuten init-db` (rakuten_assets.db.engine.migrate), "
        "which passes the connection"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
