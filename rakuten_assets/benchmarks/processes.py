"""Start and stop local processes (servers on 127.0.0.1, free ports) for benchmarks and tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rakuten_assets.http_json import http
from rakuten_assets.local_stack import descendants, process_start_time, stop_process_tree

__all__ = [
    "BIN",
    "Service",
    "alive",
    "descendants",
    "free_port",
    "http",
    "run_rakuten",
    "start_mlflow_server",
    "wait_until",
]

BIN = Path(sys.executable).parent


def run_rakuten(cwd: Path, env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run the venv's `rakuten` as a user would; its stdout (AssertionError when it fails)."""
    result = subprocess.run(
        [str(BIN / "rakuten"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"`rakuten {' '.join(args)}` exited with {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


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


def start_mlflow_server(backend: str, artifacts: Path, port: int, log: Path) -> Service:
    service = Service(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        dict(os.environ),
        log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http("GET", f"{url}/health", timeout=2)[0] == 200, 180, "mlflow server")
    except TimeoutError as error:
        service.stop()
        raise TimeoutError(f"{error}\n{service.log()}") from None
    return service


def alive(pid: int) -> bool:
    return process_start_time(pid) is not None
