"""What the HTTP processes refuse before a request reaches the model.

- A body over the size the field and batch limits allow: 413, read no further.
- A request that fails validation: 422 listing where and why, never the input itself.
  FastAPI's default answer echoes the input, which cannot be encoded when it holds a lone
  surrogate (a 500 and a traceback per request) and doubles the size of a huge body.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rakuten_assets.settings import Settings

MAX_ERRORS = 20
DRAIN_BYTES = 1 << 20
# Per listing beyond its two text fields: keys, quotes, braces, commas, spaces.
LISTING_OVERHEAD_BYTES = 256


def max_body_bytes(settings: Settings) -> int:
    """The largest valid /predict body: a full batch of listings whose two fields are at the
    length limit, in UTF-8 (up to 4 bytes a character), plus the JSON around them."""
    per_listing = 2 * settings.max_text_chars * 4 + LISTING_OVERHEAD_BYTES
    return settings.max_batch_items * per_listing + 1024


async def _refuse(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """413 for a body over `max_bytes`, by Content-Length or, when chunked, while reading."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await _refuse(send, 413, too_large)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit before the app sees anything.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._drain(receive, message)
                await _refuse(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive: Any, message: dict) -> None:
        """Read (and drop) at most DRAIN_BYTES more of the refused body: when the client has
        nearly finished sending, it then reads the 413 instead of a reset connection."""
        drained = 0
        while message.get("more_body", False) and drained < DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))


def _plain(text: object) -> str:
    return str(text).encode("utf-8", "replace").decode("utf-8")


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 with the location, message and type of each problem; the input is never echoed."""
    assert isinstance(error, RequestValidationError)
    details = [
        {
            "loc": [item if isinstance(item, int) else _plain(item) for item in problem["loc"]],
            "msg": _plain(problem.get("msg", "")),
            "type": _plain(problem.get("type", "")),
        }
        for problem in error.errors()[:MAX_ERRORS]
    ]
    return JSONResponse({"detail": details}, status_code=422)
