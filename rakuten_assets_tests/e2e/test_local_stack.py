"""The local stack (`make demo`, `make start|stop|ps|check-health`): real processes, real ports.

Small HTTP servers stand in for the services here; `rakuten demo` itself, with the real
services, runs end to end in test_ui_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rakuten_assets.benchmarks.processes import free_port, http, wait_until
from rakuten_assets.stack.services import (
    LocalStack,
    ServiceSpec,
    StackError,
    StackPorts,
    descendants,
    process_start_time,
    service_specs,
)
from rakuten_assets_tests.support import ROOT

REPO = ROOT

# A service that answers GET /health, starts a child (as dagster dev and LitServe do) and, when
# asked, ignores SIGTERM (as a busy dagster dev sometimes does).
FAKE_SERVICE = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys
    port, stubborn = int(sys.argv[1]), sys.argv[2] == "stubborn"
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)


def fake_spec(name: str, port: int, stubborn: bool = False) -> ServiceSpec:
    return ServiceSpec(
        name,
        f"fake {name}",
        "127.0.0.1",
        port,
        (sys.executable, "-c", FAKE_SERVICE, str(port), "stubborn" if stubborn else "polite"),
        "/health",
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack(
        [fake_spec("web", free_port()), fake_spec("stubborn", free_port(), stubborn=True)],
        tmp_path,
    )
    yield stack
    for name in stack.specs:
        stack.stop(name, timeout=2)


def test_start_is_idempotent_and_stop_ends_every_process(stack: LocalStack) -> None:
    pid, started = stack.start("web")
    assert started
    assert stack.wait_healthy("web", 30).startswith("HTTP 200")
    assert stack.start("web") == (pid, False)  # a second start leaves it alone
    children = descendants(pid)
    assert children, "the fake service starts a child"
    state = stack.state("web")
    assert (state.pid, state.running, state.healthy) == (pid, True, True)
    assert state.url == stack.specs["web"].url

    assert stack.stop("web")
    assert all(process_start_time(p) is None for p in {pid, *children})
    assert not stack.state("web").running
    assert not stack.stop("web")  # stopping again is a no-op


def test_services_do_not_inherit_ignored_signals(stack: LocalStack) -> None:
    """Started from `make demo &` (SIGINT ignored) or a caller ignoring SIGTERM, the services
    still get the default handlers, so `stop` ends them with SIGTERM, not by force."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        pid, _ = stack.start("web")
    finally:
        signal.signal(signal.SIGTERM, previous)
    stack.wait_healthy("web", 30)
    ignored = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("SigIgn:")
        ),
        16,
    )
    assert not ignored & (1 << (signal.SIGTERM - 1)) and not ignored & (1 << (signal.SIGINT - 1))


def test_a_service_that_ignores_sigterm_is_killed(stack: LocalStack) -> None:
    pid, _ = stack.start("stubborn")
    stack.wait_healthy("stubborn", 30)
    assert stack.stop("stubborn", timeout=1)
    assert process_start_time(pid) is None


def test_a_recycled_pid_is_never_ours(stack: LocalStack) -> None:
    """A record whose pid now belongs to another process (here: the test itself) is stale."""
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    record = stack.run_dir / "web.json"
    record.write_text(
        json.dumps({"pid": os.getpid(), "start_time": -1, "url": "http://127.0.0.1:1"})
    )
    assert stack.running_pid("web") is None
    assert not record.exists()
    assert not stack.stop("web")  # and the test process is still here to say so


def test_a_port_taken_by_someone_else_is_a_clear_error(stack: LocalStack) -> None:
    spec = stack.specs["web"]
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(spec.port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: http("GET", spec.url, timeout=1), 30, "the other server")
        with pytest.raises(StackError, match=f"127.0.0.1:{spec.port} is already in use"):
            stack.start("web")
        state = stack.state("web")
        assert not state.running and "this project did not start" in state.detail
    finally:
        other.kill()  # not under test: no need for a graceful stop
        other.wait(10)


def test_a_service_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    spec = ServiceSpec(
        "broken",
        "exits at once",
        "127.0.0.1",
        free_port(),
        (sys.executable, "-c", "import sys; print('missing model file'); sys.exit(3)"),
        "/health",
    )
    stack = LocalStack([spec], tmp_path)
    stack.start("broken")
    with pytest.raises(StackError, match="missing model file"):
        stack.wait_healthy("broken", 30)


def test_the_mlflow_ui_is_started_only_for_a_local_store(tmp_path: Path) -> None:
    local = service_specs(
        tracking_uri="sqlite:///x.db", project_dir=REPO, dagster_home=REPO, ports=StackPorts()
    )
    assert [s.name for s in local] == ["dagster", "mlflow", "serving"]
    assert [s.port for s in local] == [3000, 5000, 8000]
    assert "-w" in local[0].command and local[0].env["DAGSTER_HOME"] == str(REPO)
    remote = service_specs(
        tracking_uri="http://mlflow:5000", project_dir=tmp_path, dagster_home=tmp_path
    )
    assert [s.name for s in remote] == ["dagster", "serving"]
    assert "-m" in remote[0].command  # no workspace.yaml there: the module is loaded directly
