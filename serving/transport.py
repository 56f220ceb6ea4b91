"""Queues between LitServe's HTTP processes and its inference workers, without a Manager.

LitServe 0.2.19 routes every request and every response through a `multiprocessing.Manager`
proxy: each put and get is a round trip through the manager process, and the HTTP side
hands each receive to a thread pool. Measured with `make bench-serve`, that plumbing cost
more CPU per request than the model. Here requests and responses travel through plain
`multiprocessing` queues (a pipe and a feeder thread each), and each HTTP process drains
its response queue with one reader thread that wakes the event loop.

(LitServe's `fast_queue=True` would select ZeroMQ instead, but in 0.2.19 the flag is
dropped on the way: `TransportConfig(transport_config=...)` where the field is
`transport_type`; forcing it fails with "ZMQ not initialized".)
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from typing import Any

from litserve.transport.base import MessageTransport

_CONTEXT = multiprocessing.get_context("spawn")  # LitServe spawns its inference workers


def new_queue() -> Any:
    return _CONTEXT.Queue()


class PipeTransport(MessageTransport):
    """Responses of the workers to the HTTP process `consumer_id` (one queue each)."""

    def __init__(self, queues: list[Any]):
        self._queues = queues
        self._closed = False
        self._inbox: asyncio.Queue | None = None

    @classmethod
    def create(cls, consumers: int) -> PipeTransport:
        return cls([new_queue() for _ in range(consumers)])

    def send(self, item: Any, consumer_id: int) -> None:
        self._queues[consumer_id].put(item)

    def _start_reader(self, consumer_id: int) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        source = self._queues[consumer_id]

        def read() -> None:
            while True:
                item = source.get()
                loop.call_soon_threadsafe(inbox.put_nowait, item)

        threading.Thread(target=read, name="litserve-responses", daemon=True).start()
        return inbox

    async def areceive(
        self, consumer_id: int, timeout: float | None = None, block: bool = True
    ) -> Any:
        if self._closed:
            raise asyncio.CancelledError("transport closed")
        if self._inbox is None:  # first call, in the HTTP process's own event loop
            self._inbox = self._start_reader(consumer_id)
        try:
            return await asyncio.wait_for(self._inbox.get(), 1 if timeout is None else timeout)
        except TimeoutError:
            if timeout is not None:
                raise
            return None  # LitServe's loop polls again, as with its own transport

    def close(self, send_sentinel: bool = True) -> None:
        self._closed = True
        if send_sentinel:
            for queue in self._queues:
                with contextlib.suppress(Exception):  # a closed queue needs no sentinel
                    queue.put_nowait(None)

    def __reduce__(self) -> tuple:
        return (PipeTransport, (self._queues,))
