"""The LitServe API: decode, batch, predict, encode. Runs in each inference worker process.

No `from __future__ import annotations` here: LitServe hands the annotations of
`decode_request` and `encode_response` to FastAPI, which needs real types, not strings.
"""

import hmac
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
from fastapi import Depends, HTTPException, Response
from fastapi.security import APIKeyHeader

from rakuten_assets.data.categories import category_name
from rakuten_assets.settings import Settings
from serving import metrics
from serving.inference_log import InferenceLogWriter, LoggedPrediction
from serving.model_holder import LoadedModel, ModelHolder
from serving.schemas import BatchRequest, Prediction, PredictRequest

log = logging.getLogger(__name__)
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)
STATE_DIR_ENV = "RAKUTEN_SERVE_STATE_DIR"

Item = tuple[str, str | None]


def check_api_key(expected: str | None, given: str | None) -> None:
    """401 unless `given` is the key `expected` (no key configured: every caller passes).

    Constant-time comparison: `!=` stops at the first differing byte, which leaks how much of
    a guess is right through the answer's timing."""
    if expected and not hmac.compare_digest((given or "").encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key header")


class ProductClassifierAPI(ls.LitAPI):
    """POST /predict: one listing, or a list of up to RAKUTEN_MAX_BATCH_ITEMS listings."""

    def __init__(self, settings: Settings):
        super().__init__(
            max_batch_size=settings.serve_batch_size,
            batch_timeout=settings.serve_batch_timeout_ms / 1000,
            api_path="/predict",
        )
        # Only plain values here: the object is pickled into every worker process.
        self.tracking_uri = settings.resolved_mlflow_tracking_uri
        self.model_name = settings.model_name
        self.reload_seconds = settings.reload_seconds
        self.top_k = settings.top_k
        self.api_key = settings.api_key
        self.database_url = settings.resolved_database_url
        self.log_capacity = settings.inference_log_queue

    # -- worker start-up and shut-down -------------------------------------------------------
    def setup(self, device: str) -> None:
        from rakuten_assets.db.engine import connect

        self.writer = InferenceLogWriter(
            lambda: connect(self.database_url),
            capacity=self.log_capacity,
            on_drop=metrics.INFERENCE_LOG_DROPPED.inc,
            on_write=metrics.INFERENCE_LOG_WRITTEN.inc,
        ).start()
        state_dir = os.environ.get(STATE_DIR_ENV)
        self.holder = ModelHolder(
            self.tracking_uri,
            self.model_name,
            self.reload_seconds,
            Path(state_dir) if state_dir else None,
            on_change=self._version_changed,
            on_poll=metrics.MODEL_STALENESS.set,
            on_reload=lambda outcome: metrics.MODEL_RELOADS.labels(outcome).inc(),
        ).start()
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: object) -> None:
        self.holder.stop()
        self.writer.close(timeout=3.0)  # write what is queued before leaving
        metrics.mark_process_dead(os.getpid())
        sys.exit(0)

    @staticmethod
    def _version_changed(previous: str | None, current: str) -> None:
        if previous is not None:
            metrics.MODEL_VERSION.labels(previous).set(0)
        metrics.MODEL_VERSION.labels(current).set(1)

    # -- authorization (/predict here; /feedback checks the same key, serving.feedback) ------
    def authorize(self, api_key: str | None = Depends(API_KEY_HEADER)) -> None:
        check_api_key(self.api_key, api_key)

    # -- request path ------------------------------------------------------------------------
    def decode_request(
        self, request: PredictRequest | BatchRequest, **kwargs: Any
    ) -> tuple[list[Item], bool]:
        if isinstance(request, list):
            return [(r.designation, r.description) for r in request], True
        return [(request.designation, request.description)], False

    def batch(self, inputs: list[tuple[list[Item], bool]]) -> list[tuple[list[Item], bool]]:
        return inputs  # predict flattens: one model call for every listing of every request

    def predict(self, requests: list[tuple[list[Item], bool]], **kwargs: Any) -> list[Any]:
        model = self.holder.current
        if model is None:
            raise HTTPException(
                503, self.holder.state.error or f"no production model of {self.model_name} yet"
            )
        items = [item for listing, _ in requests for item in listing]
        started = time.perf_counter()
        probabilities = model.classifier.predict_proba(items)
        latency_ms = (time.perf_counter() - started) * 1000
        predictions = self._answers(model, probabilities)
        self._record(model, items, predictions, latency_ms)
        outputs: list[Any] = []
        position = 0
        for listing, is_list in requests:
            answer = predictions[position : position + len(listing)]
            position += len(listing)
            outputs.append(answer if is_list else answer[0])
        return outputs

    def _answers(self, model: LoadedModel, probabilities: np.ndarray) -> list[dict[str, Any]]:
        """The response of each listing (numpy picks the top k of every row at once), with
        the uuid4 a correction names (POST /feedback); the inference log stores it too."""
        order = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        top = np.take_along_axis(probabilities, order, axis=1).tolist()
        codes = [model.classes[i] for i in range(len(model.classes))]
        names = [category_name(code) for code in codes]
        answers = []
        for indices, chances in zip(order.tolist(), top, strict=True):
            answers.append(
                {
                    "prdtypecode": codes[indices[0]],
                    "category": names[indices[0]],
                    "confidence": chances[0],
                    "top_k": [
                        {"prdtypecode": codes[i], "category": names[i], "probability": p}
                        for i, p in zip(indices, chances, strict=True)
                    ],
                    "model_version": model.version,
                    "prediction_id": str(uuid.uuid4()),
                }
            )
        return answers

    def _record(
        self,
        model: LoadedModel,
        items: list[Item],
        answers: list[dict[str, Any]],
        latency_ms: float,
    ) -> None:
        """Metrics (one increment per class, not per listing) and the inference log."""
        for code, count in Counter(answer["prdtypecode"] for answer in answers).items():
            metrics.PREDICTIONS.labels(str(code)).inc(count)
        now = datetime.now(UTC)
        records = []
        for (designation, description), answer in zip(items, answers, strict=True):
            metrics.TEXT_LENGTH.observe(len(designation) + len(description or ""))
            records.append(
                LoggedPrediction(
                    at=now,
                    designation=designation,
                    description=description,
                    predicted_class=answer["prdtypecode"],
                    confidence=answer["confidence"],
                    model_version=model.version,
                    latency_ms=latency_ms,
                    prediction_id=answer["prediction_id"],
                )
            )
        self.writer.put_many(records)

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(
        self, output: dict | list[dict], **kwargs: Any
    ) -> Prediction | list[Prediction]:
        # JSON encoded here, in the worker: FastAPI returns a Response as it is, so the HTTP
        # process neither re-validates nor re-serializes the answer (the annotation still
        # documents it in OpenAPI). The answer is built from typed values above.
        body = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
        return Response(body.encode(), media_type="application/json")  # type: ignore[return-value]
