"""ASGI middleware counting requests by endpoint and status, and timing /predict."""

from __future__ import annotations

import time
from typing import Any

from serving import metrics

KNOWN = {"/predict", "/feedback", "/health", "/info", "/metrics", "/docs", "/openapi.json"}


class HttpMetricsMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in KNOWN else "other"
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.HTTP_REQUESTS.labels(endpoint, str(status["code"])).inc()
            if endpoint == "/predict":
                metrics.PREDICTION_LATENCY.observe(time.perf_counter() - started)
