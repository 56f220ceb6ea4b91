"""Engines for PostgreSQL and SQLite, and the schema migrations applied on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# One advisory-lock key for everything that must not run twice at once (loads, migrations).
LOCK_KEY = 0x52414B55  # "RAKU"

_migrated: set[str] = set()
_migrated_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given as postgresql:// or postgres://."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine with the project's connection settings; does not touch the schema."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below own BEGIN, so writers can ask for IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def exclusive_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the project's write lock until it commits or rolls back.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN IMMEDIATE (one writer).
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_immediate=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield connection


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> str:
    """Bring the schema to the latest migration (idempotent, safe to run concurrently)."""
    with exclusive_transaction(engine) as connection:
        if MigrationContext.configure(connection).get_current_revision() != head_revision():
            command.upgrade(_alembic_config(connection), "head")
        revision = MigrationContext.configure(connection).get_current_revision()
    assert revision is not None
    return revision


def ensure_schema(engine: Engine) -> None:
    """Migrate once per process and database, on first use."""
    key = engine.url.render_as_string(hide_password=False)
    with _migrated_lock:
        if key in _migrated:
            return
        migrate(engine)
        _migrated.add(key)


def connect(url: str) -> Engine:
    """An engine on a database whose schema is up to date."""
    engine = make_engine(url)
    ensure_schema(engine)
    return engine
