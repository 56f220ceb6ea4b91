"""Schema migrations: applied on first use, identical to the declared schema, concurrent-safe."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select

from rakuten_assets.data.categories import CATEGORIES
from rakuten_assets.db.engine import current_revision, head_revision, make_engine, migrate
from rakuten_assets.db.schema import categories, metadata


def test_fresh_database_is_migrated_to_the_declared_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_categories_table_holds_the_27_codes_with_names(engine: Engine) -> None:
    with engine.connect() as connection:
        rows = connection.execute(select(categories).order_by(categories.c.prdtypecode)).all()
    assert [(r.prdtypecode, r.name_fr, r.name_en) for r in rows] == [
        (c.code, c.name_fr, c.name_en) for c in CATEGORIES
    ]


def test_concurrent_migrations_of_an_empty_database(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    revisions, failures = [], []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            revisions.append(migrate(engine))
        except Exception as error:  # asserted below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert failures == []
    assert revisions == [head_revision()] * 3
