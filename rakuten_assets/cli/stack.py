"""The `rakuten stack` commands: the local stack (Dagster UI, MLflow UI and model server) in the
background: `start`, `stop`, `ps`, `health`, `logs`.

`local_stack` and `start_services` are shared with `demo`, which starts the same services.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rakuten_assets.cli.dagster_runs import ensure_dagster_home
from rakuten_assets.cli.output import check_mark, console, fail, print_json, table
from rakuten_assets.settings import get_settings

if TYPE_CHECKING:
    from rakuten_assets.stack.services import LocalStack, ServiceState

HELP = "The demo's background services: Dagster UI (dagster dev), MLflow UI, model server."

ServicesArg = Annotated[
    list[str] | None,
    typer.Argument(help="dagster, mlflow and/or serving (default: all).", show_default=False),
]
DagsterPort = Annotated[int, typer.Option(help="Port of the Dagster UI.")]
MlflowPort = Annotated[int, typer.Option(help="Port of the MLflow UI.")]
ServingPort = Annotated[int, typer.Option(help="Port of the model server.")]
Workers = Annotated[int, typer.Option(help="Inference workers of the model server.", min=1)]

# Start-up budgets: dagster dev loads the code location; the server loads the model.
STARTUP_SECONDS = {"dagster": 240.0, "mlflow": 120.0, "serving": 240.0}


def local_stack(
    dagster_port: int = 3000, mlflow_port: int = 5000, serving_port: int = 8000, workers: int = 2
) -> LocalStack:
    """The services on these ports, with their pid records and logs under RAKUTEN_HOME."""
    from rakuten_assets.stack.services import LocalStack, StackPorts, service_specs

    settings = get_settings()
    specs = service_specs(
        tracking_uri=settings.resolved_mlflow_tracking_uri,
        project_dir=Path.cwd(),
        dagster_home=ensure_dagster_home(),
        ports=StackPorts(dagster_port, mlflow_port, serving_port),
        serving_workers=workers,
    )
    return LocalStack(specs, settings.home_dir)


def _selected(stack: LocalStack, names: list[str] | None) -> list[str]:
    chosen = names or list(stack.specs)
    unknown = [name for name in chosen if name not in stack.specs]
    if unknown:
        raise fail(f"unknown service(s) {', '.join(unknown)}: choose from {', '.join(stack.specs)}")
    return chosen


@contextlib.contextmanager
def _stack_errors() -> Iterator[None]:
    """A service that cannot start or stop: its message, exit 1."""
    from rakuten_assets.stack.services import StackError

    try:
        yield
    except StackError as error:
        raise fail(str(error)) from None


def start_services(stack: LocalStack, names: list[str]) -> None:
    """Start the services (running ones are left alone), then wait until each is healthy."""
    with _stack_errors():
        for name in names:
            pid, started = stack.start(name)
            verb = "started" if started else "already running,"
            console.print(f"{name}: {verb} pid {pid}, log {stack.log_path(name)}", highlight=False)
        for name in names:
            url = stack.url(name)
            with console.status(f"waiting for {name} at {url} ..."):
                detail = stack.wait_healthy(name, STARTUP_SECONDS[name])
            console.print(f"{name}: [green]healthy[/] at {url} ({detail})")


def start(
    services: ServicesArg = None,
    dagster_port: DagsterPort = 3000,
    mlflow_port: MlflowPort = 5000,
    serving_port: ServingPort = 8000,
    workers: Workers = 2,
    restart: Annotated[bool, typer.Option(help="Stop running ones first (make restart).")] = False,
) -> None:
    """Start the services in the background (those already running are left alone)."""
    stack = local_stack(dagster_port, mlflow_port, serving_port, workers)
    names = _selected(stack, services)
    if restart:
        with _stack_errors():
            for name in names:
                stack.stop(name)
    start_services(stack, names)


def stop(services: ServicesArg = None) -> None:
    """Stop the services this project started (by pid), and every process they started."""
    stack = local_stack()
    for name in _selected(stack, services):
        with _stack_errors():
            stopped = stack.stop(name)
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def _states(stack: LocalStack) -> list[ServiceState]:
    return [stack.state(name) for name in stack.specs]


def ps(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each service: pid, URL, health."""
    states = _states(local_stack())
    if as_json:
        print_json([s.as_dict() for s in states])
        return
    services = table("local stack", ("service", "pid", "url", "health", "what it is"))
    for s in states:
        health = "[green]healthy[/]" if s.healthy else f"[red]down[/] {s.detail}"
        services.add_row(s.name, str(s.pid or "-"), s.url, health, s.title)
    console.print(services)


def health() -> None:
    """Ask each service's health endpoint; exit 1 when one is not healthy."""
    states = _states(local_stack())
    for s in states:
        console.print(
            f"{check_mark(s.healthy)} {s.name:<8} {s.url:<24} {s.detail}", highlight=False
        )
    if not all(s.healthy for s in states):
        raise fail("not every service is healthy: `rakuten stack logs NAME` shows why")


def logs(
    services: ServicesArg = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines per service.")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """The last lines of the services' logs (under .rakuten/logs)."""
    stack = local_stack()
    names = _selected(stack, services)
    paths = [stack.log_path(name) for name in names]
    if follow:
        existing = [str(path) for path in paths if path.exists()]
        if not existing:
            raise fail("no log yet: start the services first (`make start`)")
        os.execvp("tail", ["tail", "-n", str(lines), "-F", *existing])
    for name in names:
        console.rule(f"{name} ({stack.log_path(name)})")
        console.print(stack.log_tail(name, lines), highlight=False, markup=False)
