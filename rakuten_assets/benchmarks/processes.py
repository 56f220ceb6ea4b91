"""Start and stop local processes (servers on 127.0.0.1, free ports) for the benchmarks; the
tests use them too, beside their own helpers in `rakuten_assets_tests.support.processes`."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from rakuten_assets.stack.http_json import http
from rakuten_assets.stack.services import stop_process_tree

__all__ = ["Service", "free_port", "http", "wait_until"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Service:
    """A process group started for a test; `stop()` ends all of it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None):
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text()[-tail:]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the group, SIGKILL what is left after `timeout`; the leader's exit status."""
        stop_process_tree(self.process.pid, timeout)  # the unreaped leader keeps its pid ours
        self.process.wait(10)
        self._log.close()
        return self.process.returncode
