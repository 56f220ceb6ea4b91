"""Send simulated traffic to the serving API (`rakuten simulate-traffic`).

Requests come from `traffic.shifted_requests` (X_test_update.csv rows, optionally shifted);
a few threads send them at a steady rate, so the inference log fills as with real users.
With labels (`traffic.requests_with_feedback`), the answer to each labelled request is
corrected on POST /feedback with the true code, as a user would: by one more thread, a
moment after the answer (the inference log is written asynchronously, so a correction sent
at once would be refused as unknown; a 404 is retried for up to `feedback_wait` seconds).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rakuten_assets.monitoring.traffic import Request
from rakuten_assets.stack.http_json import http


@dataclass
class TrafficSummary:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    predicted: Counter[int] = field(default_factory=Counter)
    confidence_sum: float = 0.0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    feedback_statuses: Counter[int] = field(default_factory=Counter)
    feedback_correct: int = 0  # corrections stored that said the model was right

    @property
    def feedback_sent(self) -> int:
        return sum(self.feedback_statuses.values())

    @property
    def feedback_stored(self) -> int:
        return self.feedback_statuses[200]

    @property
    def feedback_accuracy(self) -> float:
        """Share of the corrected predictions that were right (the live accuracy)."""
        stored = self.feedback_stored
        return self.feedback_correct / stored if stored else float("nan")

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
    labels: Sequence[int | None] | None = None,
    feedback_delay: float = 1.0,
    feedback_wait: float = 15.0,
) -> TrafficSummary:
    """POST each request to `url`/predict, `rate` per second (0: as fast as possible).

    `labels`: the true code of each request (None: unknown); each labelled answer is
    corrected on `url`/feedback `feedback_delay` seconds after it came. A refused connection
    or an error answer is counted, never raised: the summary says what happened."""
    endpoint = url.rstrip("/") + "/predict"
    headers = {"X-API-Key": api_key} if api_key else {}
    summary = TrafficSummary()
    lock = threading.Lock()
    started = time.monotonic()
    if labels is not None and len(labels) != len(requests):
        raise ValueError(f"{len(labels)} labels for {len(requests)} requests")
    corrections: queue.Queue[tuple[float, str, int] | None] = queue.Queue()

    def correct_all() -> None:
        feedback = url.rstrip("/") + "/feedback"
        while (item := corrections.get()) is not None:
            answered_at, prediction_id, code = item
            time.sleep(max(0.0, answered_at + feedback_delay - time.monotonic()))
            body = {"prediction_id": prediction_id, "prdtypecode": code}
            while True:
                try:
                    status, answer = http("POST", feedback, body, headers=headers, timeout=timeout)
                except OSError as error:
                    status, answer = 0, str(error)
                # 404: not in the inference log yet (written asynchronously); retry a while
                if status != 404 or time.monotonic() > answered_at + feedback_wait:
                    break
                time.sleep(0.25)
            with lock:
                summary.feedback_statuses[status] += 1
                if status == 200 and isinstance(answer, dict):
                    summary.feedback_correct += bool(answer["correct"])
                elif len(summary.errors) < 5:
                    summary.errors.append(f"feedback {status}: {str(answer)[:200]}")

    corrector = threading.Thread(target=correct_all, name="feedback", daemon=True)
    if labels is not None:
        corrector.start()

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
                label = labels[position] if labels is not None else None
                prediction_id = answer.get("prediction_id")  # absent: a server without it
                if label is not None and prediction_id:
                    corrections.put((time.monotonic(), prediction_id, label))
            elif len(summary.errors) < 5:
                summary.errors.append(f"{status}: {str(answer)[:200]}")
        on_done()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(send, i, body) for i, body in enumerate(requests)]:
            future.result()
    if labels is not None:
        corrections.put(None)  # after the last answer: send what is queued, then stop
        corrector.join()
    summary.seconds = time.monotonic() - started
    return summary
