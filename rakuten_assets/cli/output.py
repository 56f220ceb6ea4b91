"""What every command prints with: the consoles, errors with their exit code, progress, tables.

One place, so that all commands write tables and messages the same way and stdout stays
parseable (errors and progress bars go to stderr, `--json` output is written as is).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error on stderr and return the exit to raise (`raise fail(...)`)."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def progress_bar() -> Progress:
    """The CLI's progress bar (on stderr, so stdout stays parseable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    )


def table(title: str, columns: Iterable[str], right: Collection[str] = ()) -> Table:
    """A table with these columns, those named in `right` right-aligned (numbers)."""
    result = Table(title=title)
    for column in columns:
        result.add_column(column, justify="right" if column in right else "left")
    return result


def print_json(value: Any, ensure_ascii: bool = True) -> None:
    """`--json` output: straight to stdout, so rich never wraps or colours it."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=ensure_ascii) + "\n")


def check_mark(ok: bool) -> str:
    """The mark of a health check line, padded so the lines after it align."""
    return "[green]ok[/]  " if ok else "[red]FAIL[/]"
