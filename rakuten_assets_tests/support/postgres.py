"""The PostgreSQL server the database tests use for real (never skipped under CI)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rakuten_assets.db.engine import normalize_url

# A server where the user may create databases: one database per test run, a schema per test.
ADMIN_URL = normalize_url(
    os.environ.get("RAKUTEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)


def new_schema_url(database: str) -> str:
    """A URL of `database` whose search_path is a new schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
