"""Corrections sent by users for served predictions (`prediction_feedback`).

A correction names a prediction by the `prediction_id` its /predict answer carried and gives
the class the listing really has. `record_feedback` validates a whole list against the
inference log and stores it in one transaction: one bad item and nothing is written. A
correction sent again for the same prediction replaces the earlier one (one row per
prediction). `window_feedback` reads the corrections of a window of the log back, for the
live accuracy of `drift_metrics`.

The inference log is written asynchronously (batches, about every half second): a prediction
answered a moment ago may not be in it yet, and its correction is refused as unknown; the
caller retries shortly (the API says so in its 404).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from rakuten_assets.data.categories import CODES
from rakuten_assets.db.queries import _all, _as_utc
from rakuten_assets.db.schema import inference_log, prediction_feedback

_CODES = frozenset(CODES)
# Ids named in one error message; a list may hold up to the batch limit (256 by default).
_NAMED = 20


@dataclass(frozen=True)
class Correction:
    prediction_id: str
    prdtypecode: int


@dataclass(frozen=True)
class StoredCorrection:
    prediction_id: str
    prdtypecode: int  # the correct class, as stored
    predicted_class: int  # what the model answered
    correct: bool
    replaced: bool  # an earlier correction of this prediction existed


class InvalidCorrections(ValueError):
    """Items that can never be stored (a code outside the 27, an id named twice)."""


class UnknownPredictions(LookupError):
    """Items whose prediction_id is not in the inference log (or not yet: it is written
    asynchronously). `items`: (position in the list, prediction_id)."""

    def __init__(self, items: list[tuple[int, str]]):
        self.items = items
        named = ", ".join(f"item {i} ({pid})" for i, pid in items[:_NAMED])
        more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
        super().__init__(
            f"unknown prediction_id: {named}{more} not in the inference log; nothing was "
            "stored. Predictions are logged asynchronously, within about a second of their "
            "answer: if this one was served just now, retry shortly."
        )


def _named(items: list[tuple[int, str]]) -> str:
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    return "; ".join(f"item {i}: {why}" for i, why in items[:_NAMED]) + more


def _validate(corrections: Sequence[Correction]) -> None:
    problems: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    for position, item in enumerate(corrections):
        if item.prdtypecode not in _CODES:
            problems.append(
                (position, f"prdtypecode {item.prdtypecode} is not one of the 27 codes")
            )
        if item.prediction_id in first:
            problems.append(
                (position, f"names the same prediction_id as item {first[item.prediction_id]}")
            )
        first.setdefault(item.prediction_id, position)
    if problems:
        raise InvalidCorrections(f"nothing was stored: {_named(problems)}")


def _upsert(connection: Connection):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT (prediction_id) DO UPDATE, in the connection's dialect."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(prediction_feedback)
    return statement.on_conflict_do_update(
        index_elements=[prediction_feedback.c.prediction_id],
        set_={
            "prdtypecode": statement.excluded.prdtypecode,
            "received_at": statement.excluded.received_at,
        },
    )


def record_feedback(
    engine: Engine, corrections: Sequence[Correction], received_at: datetime | None = None
) -> list[StoredCorrection]:
    """Store `corrections` in one transaction (all or nothing), in the order given.

    Raises InvalidCorrections (a code outside the 27, the same prediction_id twice) before
    touching the database, UnknownPredictions when a prediction_id is not in the inference
    log; SQLAlchemy's errors when the database is unavailable."""
    _validate(corrections)
    if not corrections:
        return []
    received_at = received_at or datetime.now(UTC)
    ids = [item.prediction_id for item in corrections]
    earlier = prediction_feedback.alias("earlier")
    query = (
        select(inference_log.c.prediction_id, inference_log.c.predicted_class, earlier.c.id)
        .select_from(
            inference_log.outerjoin(
                earlier, earlier.c.prediction_id == inference_log.c.prediction_id
            )
        )
        .where(inference_log.c.prediction_id.in_(ids))
    )
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # BEGIN IMMEDIATE: a read transaction that later writes can fail at once under
            # concurrent writers (WAL snapshot), instead of waiting for the lock.
            connection = connection.execution_options(sqlite_immediate=True)
        with connection.begin():
            logged = {
                pid: (int(code), existing is not None)
                for pid, code, existing in connection.execute(query)
            }
            unknown = [(i, pid) for i, pid in enumerate(ids) if pid not in logged]
            if unknown:
                raise UnknownPredictions(unknown)
            connection.execute(
                _upsert(connection),
                [
                    {
                        "prediction_id": item.prediction_id,
                        "prdtypecode": item.prdtypecode,
                        "received_at": received_at,
                    }
                    for item in corrections
                ],
            )
    return [
        StoredCorrection(
            prediction_id=item.prediction_id,
            prdtypecode=item.prdtypecode,
            predicted_class=logged[item.prediction_id][0],
            correct=logged[item.prediction_id][0] == item.prdtypecode,
            replaced=logged[item.prediction_id][1],
        )
        for item in corrections
    ]


FEEDBACK_COLUMNS: tuple[str, ...] = (
    "prediction_id",
    "predicted_class",
    "prdtypecode",
    "model_version",
    "at",
    "received_at",
)


def window_feedback(
    engine: Engine | Connection,
    since: datetime | None = None,
    min_id: int | None = None,
    max_id: int | None = None,
) -> pd.DataFrame:
    """The corrections of the predictions logged since `since` with log ids in
    [min_id, max_id] (each bound optional), oldest prediction first: FEEDBACK_COLUMNS
    (`prdtypecode` is the correct class, `predicted_class` the model's answer)."""
    query = (
        select(
            inference_log.c.prediction_id,
            inference_log.c.predicted_class,
            prediction_feedback.c.prdtypecode,
            inference_log.c.model_version,
            inference_log.c.at,
            prediction_feedback.c.received_at,
        )
        .join(
            prediction_feedback,
            prediction_feedback.c.prediction_id == inference_log.c.prediction_id,
        )
        .order_by(inference_log.c.id)
    )
    if since is not None:
        query = query.where(inference_log.c.at >= since)
    if min_id is not None:
        query = query.where(inference_log.c.id >= min_id)
    if max_id is not None:
        query = query.where(inference_log.c.id <= max_id)
    frame = pd.DataFrame(_all(engine, query), columns=list(FEEDBACK_COLUMNS))
    for column in ("at", "received_at"):
        frame[column] = [_as_utc(value) for value in frame[column]]
    return frame
