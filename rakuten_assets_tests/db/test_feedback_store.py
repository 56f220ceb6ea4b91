"""Corrections from users in the database, on SQLite and PostgreSQL: prediction ids in the
log (a duplicate costs only itself), validation against the log (unknown id, code outside the
27, an id named twice), all or nothing for a list, a correction sent again replaces the
earlier one, and the corrections of a window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from rakuten_assets.db.feedback import (
    Correction,
    InvalidCorrections,
    UnknownPredictions,
    record_feedback,
    window_feedback,
)
from rakuten_assets.db.schema import inference_log, prediction_feedback
from rakuten_assets_tests.support.predictions import log_predictions, stored
from serving.inference_log import InferenceLogWriter, LoggedPrediction


# -- the database functions ------------------------------------------------------------------
def test_the_log_stores_prediction_ids_and_a_duplicate_costs_only_itself(engine: Engine) -> None:
    """prediction_id is unique: a (never expected) repeated id is refused like any bad row,
    and the rest of its batch is still written (the writer's halves retry)."""
    ids = log_predictions(engine, [2583, 10])
    dropped: list[int] = []
    writer = InferenceLogWriter(lambda: engine, on_drop=dropped.append).start()
    fresh = [str(uuid.uuid4()) for _ in range(9)]
    batch = [
        LoggedPrediction(datetime.now(UTC), f"again {i}", None, 40, 0.5, "1", 1.0, pid)
        for i, pid in enumerate([*fresh[:4], ids[0], *fresh[4:]])
    ]
    writer.put_many(batch)
    writer.close(timeout=30)
    assert dropped == [1]
    with engine.connect() as connection:
        logged = dict(
            connection.execute(
                select(inference_log.c.prediction_id, inference_log.c.predicted_class)
            ).all()
        )
    assert logged == {ids[0]: 2583, ids[1]: 10, **dict.fromkeys(fresh, 40)}


def test_record_feedback_validates_all_or_nothing_and_replaces(engine: Engine) -> None:
    ids = log_predictions(engine, [2583, 10, 1560])
    first = record_feedback(engine, [Correction(ids[0], 2583), Correction(ids[1], 40)])
    assert [(s.correct, s.replaced, s.predicted_class) for s in first] == [
        (True, False, 2583),
        (False, False, 10),
    ]
    assert stored(engine) == {ids[0]: 2583, ids[1]: 40}

    # a list with one unknown id: refused, named, and nothing of the list is written
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownPredictions, match=rf"item 1 \({unknown}\).*retry shortly") as error:
        record_feedback(engine, [Correction(ids[0], 1560), Correction(unknown, 10)])
    assert error.value.items == [(1, unknown)]
    # a code outside the 27, and the same id twice: refused before the database
    with pytest.raises(InvalidCorrections, match="item 2: prdtypecode 11 is not one of the 27"):
        record_feedback(
            engine, [Correction(ids[2], 10), Correction(ids[0], 10), Correction(ids[1], 11)]
        )
    with pytest.raises(InvalidCorrections, match="item 1: names the same prediction_id as item 0"):
        record_feedback(engine, [Correction(ids[2], 10), Correction(ids[2], 40)])
    assert stored(engine) == {ids[0]: 2583, ids[1]: 40}

    # sent again: replaces (one row per prediction)
    again = record_feedback(engine, [Correction(ids[0], 1560), Correction(ids[2], 1560)])
    assert [(s.correct, s.replaced) for s in again] == [(False, True), (True, False)]
    assert stored(engine) == {ids[0]: 1560, ids[1]: 40, ids[2]: 1560}
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(prediction_feedback)).scalar() == 3
        )
    assert record_feedback(engine, []) == []


def test_window_feedback_reads_the_corrections_of_a_window(engine: Engine) -> None:
    old = log_predictions(engine, [10, 40], at=datetime.now(UTC) - timedelta(days=3), text="old")
    new = log_predictions(engine, [2583, 2583, 1560], text="new")
    record_feedback(
        engine, [Correction(old[0], 10), Correction(new[0], 2583), Correction(new[2], 40)]
    )

    frame = window_feedback(engine, since=datetime.now(UTC) - timedelta(hours=1))
    assert list(frame["prediction_id"]) == [new[0], new[2]]
    assert list(frame["predicted_class"]) == [2583, 1560]
    assert list(frame["prdtypecode"]) == [2583, 40]
    assert all(at.tzinfo is not None for at in frame["at"])
    assert len(window_feedback(engine)) == 3
    with engine.connect() as connection:
        new_first = connection.execute(
            select(func.min(inference_log.c.id)).where(inference_log.c.prediction_id.in_(new))
        ).scalar_one()
    assert list(window_feedback(engine, min_id=new_first)["prediction_id"]) == [new[0], new[2]]
    assert list(window_feedback(engine, max_id=new_first - 1)["prediction_id"]) == [old[0]]
