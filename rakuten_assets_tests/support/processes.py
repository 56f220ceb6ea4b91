"""Processes the tests start and stop themselves, on 127.0.0.1 only: the project's CLI, an
MLflow server, Debian's Prometheus tools. (What the benchmarks need too stays in
`rakuten_assets.benchmarks.processes`.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rakuten_assets.benchmarks.processes import Service, http, wait_until
from rakuten_assets.stack.services import process_start_time

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


def binary(name: str) -> str:
    """Path of a binary of Debian's prometheus / prometheus-pushgateway packages, or a failure
    saying how to install it (`make test` and .ci/run install them)."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        package = "prometheus-pushgateway" if name == "prometheus-pushgateway" else "prometheus"
        pytest.fail(
            f"{name} is not installed: `apt-get install -y {package}` (Debian's package; "
            "deploy/install-test-tools.sh installs it)",
            pytrace=False,
        )
    return found


def started(service: Service, url: str, what: str, timeout: float) -> Service:
    """`service` once `url` answers 200; stopped, with its log in the failure, if it dies or
    does not answer in time."""

    def ready() -> bool:
        if not service.alive():
            raise RuntimeError(f"{what} exited with status {service.process.returncode}")
        return http("GET", url, timeout=2)[0] == 200

    try:
        wait_until(ready, timeout, what)
    except (TimeoutError, RuntimeError) as error:
        service.stop()
        raise AssertionError(f"{error}\n{service.log()}") from None
    return service
