"""Asynchronous, batched writing of predictions to the `inference_log` table.

Requests only put records on a bounded queue (never blocking); a background thread writes them
in batches. A full queue or a database that is down drops records and counts them
(`rakuten_inference_log_dropped_total`): logging never slows or fails a request. A row the
database refuses costs only itself: the batch holding it is written again in halves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from rakuten_assets.db.schema import inference_log
from rakuten_assets.settings import mask_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedPrediction:
    at: datetime
    designation: str
    description: str | None
    predicted_class: int
    confidence: float
    model_version: str
    latency_ms: float
    # The id the answer carried (uuid4), so a correction can name it (POST /feedback).
    prediction_id: str | None = None


COLUMNS = tuple(field for field in LoggedPrediction.__dataclass_fields__)


def _driver_insert(engine: Engine) -> tuple[str, Callable[[LoggedPrediction], tuple]]:
    """An INSERT in the driver's parameter style (sqlite3: qmark, psycopg: pyformat) and a
    record -> row converter applying the column types' bind processing (e.g. SQLite's
    datetime text format).

    Rows handed straight to the driver's executemany cost a fraction of SQLAlchemy's Core
    insert, which processes every row in Python; at thousands of predictions a second that
    was an eighth of a serving worker's CPU (measured with `make bench-serve`)."""
    dialect = engine.dialect
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
    statement = (
        f"INSERT INTO {inference_log.name} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(COLUMNS))})"
    )
    processors = [inference_log.c[name].type.bind_processor(dialect) for name in COLUMNS]

    def convert(record: LoggedPrediction) -> tuple:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(
                (getattr(record, name) for name in COLUMNS), processors, strict=True
            )
        )

    return statement, convert


class InferenceLogWriter:
    """A bounded buffer of predictions and the thread that writes them.

    Requests add a whole batch under one lock (a `queue.Queue` locks and notifies once per
    record); the writer wakes when a full batch is waiting, or every `flush_seconds`."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 0.5,
        on_drop: Callable[[int], None] = lambda n: None,
        on_write: Callable[[int], None] = lambda n: None,
    ):
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._pending: deque[LoggedPrediction] = deque()
        self._capacity = capacity
        self._ready = threading.Condition()
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._on_drop = on_drop
        self._on_write = on_write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._last_error_log = 0.0

    def start(self) -> InferenceLogWriter:
        self._thread.start()
        return self

    def put(self, record: LoggedPrediction) -> None:
        self.put_many([record])

    def put_many(self, records: list[LoggedPrediction]) -> None:
        """Never blocks: what does not fit is dropped and counted."""
        with self._ready:
            room = max(self._capacity - len(self._pending), 0)
            self._pending.extend(records[:room])
            if len(self._pending) >= self._batch_size:
                self._ready.notify()
        if len(records) > room:
            self._on_drop(len(records) - room)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after writing what is queued (up to `timeout` seconds)."""
        self._stop.set()
        with self._ready:
            self._ready.notify()
        self._thread.join(timeout)

    def _take_batch(self) -> list[LoggedPrediction]:
        with self._ready:
            if len(self._pending) < self._batch_size and not self._stop.is_set():
                self._ready.wait(self._flush_seconds)
            count = min(len(self._pending), self._batch_size)
            return [self._pending.popleft() for _ in range(count)]

    def _run(self) -> None:
        while not (self._stop.is_set() and not self._pending):
            batch = self._take_batch()
            if batch:
                self._write(batch)

    def _write(self, batch: list[LoggedPrediction]) -> None:
        """Write a batch in one statement; when the database refuses a row of it (not when
        the database is down), write the halves separately, so one bad row costs only itself."""
        try:
            if self._engine is None:
                self._engine = self._engine_factory()
            with self._engine.begin() as connection:
                statement, convert = _driver_insert(self._engine)
                connection.exec_driver_sql(statement, [convert(r) for r in batch])
            self._on_write(len(batch))
        except Exception as error:
            if len(batch) > 1 and not database_unavailable(error):
                middle = len(batch) // 2
                self._write(batch[:middle])
                self._write(batch[middle:])
                return
            self._on_drop(len(batch))  # the database is down, or this one row is refused
            if time.monotonic() - self._last_error_log > 30:
                self._last_error_log = time.monotonic()
                log.warning(
                    "inference log: %d prediction(s) dropped: %s",
                    len(batch),
                    mask_credentials(str(error))[:500],
                )


def database_unavailable(error: BaseException) -> bool:
    """The database cannot be reached or used at all (as opposed to refusing some row)."""
    return isinstance(error, OperationalError | InterfaceError | DisconnectionError)
