"""Shared fixtures. Database tests run on SQLite AND on the real PostgreSQL server.

PostgreSQL: RAKUTEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
must reach a server where the user may create databases. One database is created per test run
and dropped afterwards; each test gets its own schema in it. There is no skip: without
PostgreSQL the PostgreSQL tests fail with a message saying what to start.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from rakuten_assets.data.challenge_files import LABELLED_COLUMNS
from rakuten_assets.data.synth.generator import SynthOptions, generate, synthesize
from rakuten_assets.db.engine import connect
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingParams, TrainingResult, train
from rakuten_assets_tests.support import FIXTURES
from rakuten_assets_tests.support.postgres import ADMIN_URL, new_schema_url

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def isolated_dagster_state_storage() -> Iterator[None]:
    """Dagster keeps the current instance's definitions-state storage in a process-wide
    ContextVar; an instance of one test exiting out of order (instance_for_test with
    materializations and sensor contexts inside) can leave it pointing at a disposed
    instance, and the next test resolving Definitions fails with "Attempted to resolve
    undefined DagsterInstance weakref". Each test starts from the value it found."""
    from dagster._core.storage.defs_state import base

    token = base._current_storage.set(base._current_storage.get())
    yield
    base._current_storage.reset(token)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test run and dropped after it."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"rakuten_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        pytest.fail(
            f"PostgreSQL is required for these tests and is not reachable at {ADMIN_URL} "
            f"({error.orig}). Start it, or set RAKUTEN_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A PostgreSQL URL whose search_path is a schema of its own, for one test."""
    return new_schema_url(postgres_database)


@pytest.fixture(scope="session")
def postgres_schemas(postgres_database: str) -> Callable[[], str]:
    """Makes PostgreSQL URLs with schemas of their own, for fixtures wider than one test."""
    return lambda: new_schema_url(postgres_database)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty project database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rakuten.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = connect(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def challenge_fixture_dir(tmp_path: Path) -> Path:
    """A copy of the hand-written challenge files (real quirks), safe to modify."""
    target = tmp_path / "challenge"
    shutil.copytree(FIXTURES / "challenge", target)
    return target


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated challenge files, 3,000 training rows, written once per test run."""
    directory = tmp_path_factory.mktemp("synth")
    synthesize(directory, SynthOptions(rows=3000, test_rows=300, seed=7))
    return directory


@pytest.fixture(scope="session")
def synth_frame() -> pd.DataFrame:
    """15,000 generated labelled listings as a snapshot frame (with `first_seen`)."""
    data = generate(SynthOptions(rows=15_000, test_rows=0, seed=11))
    frame = data.x_train.join(data.y_train).reset_index(drop=True)
    frame["first_seen"] = np.arange(len(frame))
    frame["partition_key"] = "100"
    return frame[[*LABELLED_COLUMNS, "partition_key", "first_seen"]]


@pytest.fixture(scope="session")
def trained(synth_frame: pd.DataFrame) -> TrainingResult:
    """A model trained with the default parameters on generated data (behavioural tests)."""
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(min_test_rows_per_class=0))
    return train(dataset, TrainingParams())


@pytest.fixture(scope="session")
def small_trained(synth_frame: pd.DataFrame) -> TrainingResult:
    """The default pipeline (the same steps and types) with small vocabularies, on 8,000 rows:
    quick to save and log (weighted F1 ~0.83), for the tests of saving, loading and registering
    a model."""
    dataset = build_balanced_dataset(
        synth_frame.head(8000), "100", 1, SplitParams(min_test_rows_per_class=0)
    )
    return train(dataset, TrainingParams(max_features=10_000, char_max_features=10_000))


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A temporary MLflow store (SQLite backend, local artifacts) for this test run."""
    folder = tmp_path_factory.mktemp("mlflow")
    return {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_root": (folder / "artifacts").as_uri(),
    }


@pytest.fixture(scope="session")
def synth_dir_large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50,000 generated rows: enough for the default checks (>= 20 test rows per class at 40%)."""
    directory = tmp_path_factory.mktemp("synth_large")
    synthesize(directory, SynthOptions(rows=50_000, test_rows=500, seed=3))
    return directory
