"""Send simulated traffic to the serving API (`rakuten simulate-traffic`).

Requests come from `traffic.shifted_requests` (X_test_update.csv rows, optionally shifted);
a few threads send them at a steady rate, so the inference log fills as with real users.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rakuten_assets.http_json import http
from rakuten_assets.monitoring.traffic import Request


@dataclass
class TrafficSummary:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    predicted: Counter[int] = field(default_factory=Counter)
    confidence_sum: float = 0.0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.ok if self.ok else float("nan")


def send_traffic(
    url: str,
    requests: Sequence[Request],
    rate: float = 50.0,
    api_key: str | None = None,
    concurrency: int = 4,
    on_done: Callable[[], None] = lambda: None,
    timeout: float = 30.0,
) -> TrafficSummary:
    """POST each request to `url`/predict, `rate` per second (0: as fast as possible).

    A refused connection or an error answer is counted, never raised: the summary says what
    happened."""
    endpoint = url.rstrip("/") + "/predict"
    headers = {"X-API-Key": api_key} if api_key else {}
    summary = TrafficSummary()
    lock = threading.Lock()
    started = time.monotonic()

    def send(position: int, body: Request) -> None:
        if rate > 0:  # pace by schedule, not by sleeps after each request
            delay = started + position / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            status, answer = http("POST", endpoint, body, headers=headers, timeout=timeout)
        except OSError as error:  # connection refused, timeout
            status, answer = 0, str(error)
        with lock:
            summary.sent += 1
            summary.statuses[status] += 1
            if status == 200 and isinstance(answer, dict):
                summary.predicted[int(answer["prdtypecode"])] += 1
                summary.confidence_sum += float(answer["confidence"])
            elif len(summary.errors) < 5:
                summary.errors.append(f"{status}: {str(answer)[:200]}")
        on_done()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(send, i, body) for i, body in enumerate(requests)]:
            future.result()
    summary.seconds = time.monotonic() - started
    return summary
