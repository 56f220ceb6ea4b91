"""The `rakuten` command line: the Typer app, assembled from one module per concern.

Commands that change data run through Dagster on the project's persistent instance, so every
run shows in the UI (`dagster dev`) exactly like a run launched from there.

- `data`: challenge files, database loads, status, datasets;
- `training`: training, the model registry, evaluations, reproduction;
- `serving`: the model server, its check, traffic, drift, the inference log;
- `stack`: the local services in the background (`rakuten stack ...`);
- `demo`: all of the above in one command.

Commands are registered here, in the order `rakuten --help` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import typer

from rakuten_assets.cli import data, demo, serving, stack, training

# Progress bars of artifact downloads would drown the CLI's own output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _register(group: typer.Typer, commands: Iterable[tuple[str, Callable[..., Any]]]) -> None:
    """Add the commands to the group under their command-line names, in this order."""
    for name, command in commands:
        group.command(name)(command)


app = typer.Typer(
    name="rakuten",
    help="MLOps platform for the Rakuten France product classification challenge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_register(
    app,
    (
        ("synth", data.synth),
        ("init-db", data.init_db),
        ("load-data", data.load_data),
        ("status", data.status),
        ("dataset", data.dataset),
        ("train", training.train),
        ("promote", training.promote),
        ("rollback", training.rollback),
        ("models", training.models),
        ("evaluations", training.evaluations),
        ("reproduce", training.reproduce),
        ("serve", serving.serve),
        ("drift", serving.drift),
        ("simulate-traffic", serving.simulate_traffic),
        ("export-inference-log", serving.export_inference_log),
        ("test-api", serving.test_api),
        ("demo", demo.demo),
    ),
)
stack_app = typer.Typer(help=stack.HELP, no_args_is_help=True)
_register(
    stack_app,
    (
        ("start", stack.start),
        ("stop", stack.stop),
        ("ps", stack.ps),
        ("health", stack.health),
        ("logs", stack.logs),
    ),
)
app.add_typer(stack_app, name="stack")


def main() -> None:
    """Entry point of the `rakuten` console script."""
    app()


__all__ = ["app", "main"]
