"""POST /feedback: the correct class of served predictions, one item or a list.

Served by the HTTP processes, not the inference workers: it is one database transaction
(`rakuten_assets.db.feedback.record_feedback`), not a model call, so it does not queue
behind predictions. Each HTTP process opens its own engine on first use (they are forked
from the main process, and a connection pool must not cross a fork).

Answers: 200 with what was stored; 401 without the API key (the same rule as /predict);
422 for a malformed item, a code outside the 27 or a prediction_id named twice; 404 for a
prediction_id not in the inference log (written asynchronously: a correction sent within a
second of its prediction may have to be retried; the answer says so, with Retry-After); 503
when the database is unavailable. A list is all or nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Response
from sqlalchemy import Engine

from rakuten_assets.db.feedback import (
    Correction,
    InvalidCorrections,
    UnknownPredictions,
    record_feedback,
)
from rakuten_assets.settings import Settings, mask_credentials
from serving import metrics
from serving.api import API_KEY_HEADER, check_api_key
from serving.inference_log import database_unavailable
from serving.schemas import FeedbackAnswer, FeedbackBatch, FeedbackItem

log = logging.getLogger(__name__)


class FeedbackStore:
    """The database of one process, connected on first use (again after a fork)."""

    def __init__(self, database_url: str):
        self._url = database_url
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    from rakuten_assets.db.engine import connect

                    self._engine = connect(self._url)  # raises while the database is down
                    self._pid = os.getpid()
        return self._engine


def add_feedback_route(app: FastAPI, settings: Settings) -> None:
    """Add POST /feedback to `app` (the LitServe server's FastAPI app, or any other)."""
    store = FeedbackStore(settings.resolved_database_url)
    api_key = settings.api_key

    def authorize(given: str | None = Depends(API_KEY_HEADER)) -> None:
        check_api_key(api_key, given)  # a dependency: refused before the body is validated

    @app.post(
        "/feedback",
        tags=["feedback"],
        dependencies=[Depends(authorize)],
        # documents the answer; the route returns a Response, which FastAPI sends as it is
        response_model=FeedbackAnswer | list[FeedbackAnswer],
        responses={
            401: {"description": "Missing or wrong X-API-Key header."},
            404: {"description": "A prediction_id is not in the inference log (yet)."},
            422: {"description": "Malformed item, unknown code, prediction_id named twice."},
            503: {"description": "The database is unavailable; nothing was stored."},
        },
    )
    def feedback(body: FeedbackItem | FeedbackBatch):  # type: ignore[no-untyped-def]
        """Send the correct `prdtypecode` of predictions (their `prediction_id` from /predict):
        one item, or a list of up to RAKUTEN_MAX_BATCH_ITEMS, stored all or nothing. A
        correction sent again for the same prediction replaces the earlier one."""
        items = body if isinstance(body, list) else [body]
        corrections = [Correction(str(item.prediction_id), item.prdtypecode) for item in items]
        try:
            stored = record_feedback(store.engine(), corrections)
        except InvalidCorrections as error:
            raise HTTPException(422, str(error)) from None
        except UnknownPredictions as error:
            raise HTTPException(404, str(error), headers={"Retry-After": "1"}) from None
        except Exception as error:
            if not database_unavailable(error):
                raise
            log.warning("feedback not stored: %s", mask_credentials(str(error))[:500])
            raise HTTPException(
                503, "the database is unavailable: nothing was stored; retry later"
            ) from None
        right = sum(item.correct for item in stored)
        if right:
            metrics.FEEDBACK.labels("true").inc(right)
        if len(stored) - right:
            metrics.FEEDBACK.labels("false").inc(len(stored) - right)
        answers: list[dict[str, Any]] = [
            {
                "prediction_id": item.prediction_id,
                "prdtypecode": item.prdtypecode,
                "predicted_class": item.predicted_class,
                "correct": item.correct,
                "replaced": item.replaced,
            }
            for item in stored
        ]
        output = answers if isinstance(body, list) else answers[0]
        body_bytes = json.dumps(output, separators=(",", ":")).encode()
        return Response(body_bytes, media_type="application/json")
