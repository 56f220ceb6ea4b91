"""The demo's background services on one machine: the Dagster UI, the MLflow UI, the model server.

`make demo`, `make start|stop|restart|ps|check-health|logs` and `rakuten stack ...` use this
module. Each service runs as its own process group; its pid, the start time of that pid (so a
recycled pid is never mistaken for ours) and its command are written to `<home>/run/<name>.json`,
its output to `<home>/logs/<name>.log`. Stopping ends the whole group, and any process that left
the group, and only processes this module started. Plain Python: no Dagster import.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rakuten_assets.stack.http_json import http


class StackError(RuntimeError):
    """A service cannot be started, stopped or reached; the message says what to do."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    host: str
    port: int
    command: tuple[str, ...]
    health_path: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServiceState:
    name: str
    title: str
    url: str
    pid: int | None
    healthy: bool
    detail: str

    @property
    def running(self) -> bool:
        return self.pid is not None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "running": self.running}


@dataclass(frozen=True)
class StackPorts:
    dagster: int = 3000
    mlflow: int = 5000
    serving: int = 8000


def service_specs(
    *,
    tracking_uri: str,
    project_dir: Path,
    dagster_home: Path,
    ports: StackPorts = StackPorts(),
    host: str = "127.0.0.1",
    serving_workers: int = 2,
    bin_dir: Path = Path(sys.executable).parent,
) -> list[ServiceSpec]:
    """The three services. The MLflow UI is started only for a local store: a tracking server
    (MLFLOW_TRACKING_URI=http...) is someone else's service and already has its UI."""
    workspace = project_dir / "workspace.yaml"
    location = (
        ("-w", str(workspace)) if workspace.is_file() else ("-m", "rakuten_assets.definitions")
    )
    specs = [
        ServiceSpec(
            "dagster",
            "Dagster UI (dagster dev: webserver, daemon, sensors)",
            host,
            ports.dagster,
            (str(bin_dir / "dagster"), "dev", "-h", host, "-p", str(ports.dagster), *location),
            "/server_info",
            {"DAGSTER_HOME": str(dagster_home)},
        ),
        ServiceSpec(
            "serving",
            "Model server (LitServe: /predict, /docs, /metrics)",
            host,
            ports.serving,
            (
                str(bin_dir / "rakuten"),
                "serve",
                "--host",
                host,
                "--port",
                str(ports.serving),
                "--workers",
                str(serving_workers),
            ),
            "/health",
        ),
    ]
    if not tracking_uri.startswith(("http://", "https://")):
        specs.insert(
            1,
            ServiceSpec(
                "mlflow",
                "MLflow UI (runs, model registry)",
                host,
                ports.mlflow,
                (
                    str(bin_dir / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    tracking_uri,
                    "--host",
                    host,
                    "--port",
                    str(ports.mlflow),
                    "--workers",
                    "1",
                ),
                "/health",
                # The UI needs none of the server's background job runners (nor their CPU).
                {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            ),
        )
    return specs


# -- processes -------------------------------------------------------------------------------


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (None when it is gone or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process, from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def group_members(pgid: int) -> set[int]:
    """Live processes of a process group (a run that outlived `dagster dev`, say)."""
    return {pid for pid, (_, group) in _process_table().items() if group == pgid}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in _process_table().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


class LocalStack:
    """Start, stop and inspect the services of `specs`, with state under `home`."""

    def __init__(self, specs: list[ServiceSpec], home: Path, env: Mapping[str, str] | None = None):
        self.specs = {spec.name: spec for spec in specs}
        self.run_dir = home / "run"
        self.log_dir = home / "logs"
        self.env = dict(os.environ if env is None else env)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _live_record(self, name: str) -> dict[str, Any] | None:
        """The record of our running process for `name`; a stale one is removed."""
        path = self._pidfile(name)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if process_start_time(int(record["pid"])) != record.get("start_time"):
            path.unlink(missing_ok=True)  # it died, and the pid may belong to someone else now
            return None
        return record

    def running_pid(self, name: str) -> int | None:
        """The pid of our process for `name`, if it still runs."""
        record = self._live_record(name)
        return None if record is None else int(record["pid"])

    def url(self, name: str) -> str:
        """Where the service listens: as recorded at its start, else as configured."""
        record = self._live_record(name)
        return record["url"] if record else self._spec(name).url

    def _spec(self, name: str) -> ServiceSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise StackError(
                f"unknown service {name!r}: choose from {', '.join(self.specs)}"
            ) from None

    # -- actions -------------------------------------------------------------------------------
    def start(self, name: str) -> tuple[int, bool]:
        """Start a service in the background: (pid, started). Already running: (pid, False)."""
        spec = self._spec(name)
        pid = self.running_pid(name)
        if pid is not None:
            return pid, False
        if port_in_use(spec.host, spec.port):
            raise StackError(
                f"cannot start {name}: {spec.host}:{spec.port} is already in use by a process "
                "this project did not start. Stop it, or choose another port (see "
                "`rakuten stack start --help`)."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {name} ===\n".encode())
            log.flush()
            process = subprocess.Popen(
                spec.command,
                env={**self.env, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Started from `cmd &` or nohup, a child inherits ignored SIGINT/SIGTERM and
                # could then only be killed; `stop` relies on them.
                preexec_fn=_default_signals,
            )
        record = {
            "pid": process.pid,
            "start_time": process_start_time(process.pid),
            "command": list(spec.command),
            "url": spec.url,
            "started_at": time.time(),
        }
        temporary = self._pidfile(name).with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=2))
        temporary.replace(self._pidfile(name))
        return process.pid, True

    def stop(self, name: str, timeout: float = 30.0) -> bool:
        """Stop a service and every process it started; False when it was not running."""
        pid = self.running_pid(name)
        if pid is None:
            return False
        if not stop_process_tree(pid, timeout):
            raise StackError(f"{name} (pid {pid}) did not stop; see {self.log_path(name)}")
        self._pidfile(name).unlink(missing_ok=True)
        return True

    def state(self, name: str) -> ServiceState:
        spec = self._spec(name)
        record = self._live_record(name)
        if record is None:
            taken = port_in_use(spec.host, spec.port)
            detail = (
                f"port taken by a process this project did not start ({self._probe(spec)[1]})"
                if taken
                else "not running"
            )
            return ServiceState(name, spec.title, spec.url, None, False, detail)
        healthy, detail = self._probe(spec, record["url"])
        return ServiceState(name, spec.title, record["url"], record["pid"], healthy, detail)

    def _probe(self, spec: ServiceSpec, url: str | None = None) -> tuple[bool, str]:
        """(healthy, what the health endpoint said)."""
        try:
            status, body = http("GET", (url or spec.url) + spec.health_path, timeout=5)
        except OSError as error:
            return False, f"no answer ({getattr(error, 'reason', error)})"
        if isinstance(body, dict):
            said = ", ".join(f"{k}={v}" for k, v in body.items() if not isinstance(v, dict | list))
        else:
            said = str(body).strip()[:120]
        return status == 200, f"HTTP {status} {said}".strip()

    def wait_healthy(self, name: str, timeout: float) -> str:
        """Wait until the health endpoint answers 200; raise with the log's tail otherwise."""
        spec = self._spec(name)
        deadline = time.monotonic() + timeout
        detail = ""
        while time.monotonic() < deadline:
            record = self._live_record(name)
            if record is None:
                raise StackError(f"{name} exited during start-up:\n{self.log_tail(name)}")
            healthy, detail = self._probe(spec, record["url"])
            if healthy:
                return detail
            time.sleep(1)
        raise StackError(
            f"{name} is not healthy after {timeout:.0f} s (last answer: {detail}); "
            f"its log:\n{self.log_tail(name)}"
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def stop_process_tree(leader: int, timeout: float) -> bool:
    """End a process group started with start_new_session, its descendants that left the
    group, and whatever the group still holds when the leader is gone (`dagster dev` exits on
    SIGTERM while a run it launched goes on): SIGTERM, then SIGKILL after `timeout`.
    True when nothing is left."""
    members = _identified({leader} | descendants(leader) | group_members(leader))
    _signal_group(leader, members, signal.SIGTERM)
    _wait_gone(members, timeout)
    # Whatever ignored SIGTERM, or was started meanwhile (a run the daemon was launching).
    members.update(_identified(group_members(leader)))
    _signal_group(leader, members, signal.SIGKILL)
    return _wait_gone(members, 10)


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _identified(pids: set[int]) -> dict[int, int | None]:
    """pid -> start time: a pid is signalled only while it is still the same process."""
    return {pid: process_start_time(pid) for pid in pids}


def _alive(members: dict[int, int | None]) -> list[int]:
    return [
        pid
        for pid, started in members.items()
        if started is not None and process_start_time(pid) == started
    ]


def _signal_group(leader: int, members: dict[int, int | None], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for pid in _alive(members):  # also those that moved to a session of their own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(members: dict[int, int | None], timeout: float) -> bool:
    """Zombies count as gone: their parent reaps them (and keeps their exit status)."""
    deadline = time.monotonic() + timeout
    while _alive(members):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
