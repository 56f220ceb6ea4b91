"""The `rakuten` command line.

Commands that change data run through Dagster on the project's persistent instance, so every
run shows in the UI (`dagster dev`) exactly like a run launched from there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rakuten_assets.settings import Settings

app = typer.Typer(
    name="rakuten",
    help="MLOps platform for the Rakuten France product classification challenge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the repository root (where dagster.yaml lives) unless it is set."""
    if not os.environ.get("DAGSTER_HOME"):
        if Path("dagster.yaml").is_file():
            home = Path.cwd()
        else:  # an installed package run outside the repository: a private instance
            home = Settings().dagster_storage_dir / "home"
            home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home.resolve())
    return Path(os.environ["DAGSTER_HOME"])


def materialize(job_name: str, partition_key: str) -> None:
    """Run a partitioned job of the code location in-process on the persistent instance."""
    ensure_dagster_home()
    import dagster as dg

    from rakuten_assets.definitions import defs

    job = defs.resolve_job_def(job_name)
    console.print(f"materializing [bold]{job_name}[/] [{partition_key}] ...")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=partition_key,
            instance=instance,
            raise_on_error=False,
            # The summary below replaces Dagster's console log; the full log is in the UI.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    if not result.success:
        messages = [
            event.event_specific_data.error.message.strip()  # type: ignore[union-attr]
            for event in result.all_events
            if event.event_type_value == "STEP_FAILURE"
        ]
        failed_checks = [
            f"asset check {e.check_name} failed"
            for e in result.get_asset_check_evaluations()
            if not e.passed
        ]
        detail = "\n".join(
            m.removeprefix("dagster._core.definitions.events.Failure: ") for m in messages
        ) or "\n".join(failed_checks)
        raise fail(f"run {result.run_id} of {job_name} [{partition_key}] failed:\n{detail}")
    console.print(f"run {result.run_id} of [bold]{job_name}[/] [{partition_key}] succeeded")


def _engine():  # type: ignore[no-untyped-def]
    from rakuten_assets.db.engine import connect

    return connect(Settings().resolved_database_url)


def _require_files(data_dir: Path) -> None:
    from rakuten_assets.data.challenge_files import X_TRAIN_FILE, challenge_files_present

    if not challenge_files_present(data_dir):
        raise fail(
            f"no challenge files in {data_dir}/ ({X_TRAIN_FILE} and its labels). Generate the "
            "default data with `rakuten synth`, or copy the real files there "
            "(or set RAKUTEN_DATA_DIR)."
        )


@app.command()
def synth(
    rows: Annotated[int, typer.Option(help="Training rows (X_train/Y_train).")] = 84_916,
    test_rows: Annotated[int, typer.Option(help="Unlabelled rows (X_test).")] = 13_812,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 42,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: RAKUTEN_DATA_DIR).")
    ] = None,
) -> None:
    """Generate realistic listings in the exact format of the challenge files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from rakuten_assets.data.synth.generator import SynthOptions, synthesize

    if rows < 1 or test_rows < 0:
        raise fail("--rows must be >= 1 and --test-rows >= 0")
    out_dir = out or Settings().data_dir
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task("generating listings", total=rows + test_rows)
        written = synthesize(
            out_dir,
            SynthOptions(rows=rows, test_rows=test_rows, seed=seed),
            progress=lambda done: progress.update(task, completed=done),
        )
    for path in written.values():
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command("init-db")
def init_db(
    reload: Annotated[
        bool, typer.Option("--reload", help="Materialize 040 again even if it is loaded.")
    ] = False,
) -> None:
    """Create or upgrade the schema, then load the initial 40% (partition 040) through Dagster."""
    from rakuten_assets.db.engine import migrate
    from rakuten_assets.db.loader import loaded_partitions

    settings = Settings()
    engine = _engine()
    console.print(f"schema at revision {migrate(engine)} on {engine.url.render_as_string()}")
    with engine.connect() as connection:
        already = "040" in loaded_partitions(connection)
    if already and not reload:
        console.print("partition 040 is already loaded (use --reload to materialize it again)")
        return
    _require_files(settings.data_dir)
    materialize("ingest", "040")


@app.command("load-data")
def load_data(
    partition: Annotated[
        str | None, typer.Option(help="Partition to load (default: the next one).")
    ] = None,
) -> None:
    """Load the next +3% increment (or --partition) through Dagster."""
    from rakuten_assets.data.partitions import next_partition, percentage_of
    from rakuten_assets.db.loader import loaded_partitions

    settings = Settings()
    with _engine().connect() as connection:
        loaded = loaded_partitions(connection)
    key = partition or next_partition(loaded)
    if key is None:
        console.print("all 21 partitions are loaded (100% of the data)")
        return
    try:
        percentage_of(key)
    except ValueError as error:
        raise fail(str(error)) from None
    _require_files(settings.data_dir)
    materialize("ingest", key)


def status_report(engine: Any) -> dict[str, Any]:
    from rakuten_assets.data.partitions import PARTITION_KEYS, next_partition
    from rakuten_assets.db.queries import class_counts, load_history

    history = load_history(engine)
    loaded = set(history["partition_key"])
    loaded_keys = [key for key in PARTITION_KEYS if key in loaded]
    percentage = 0
    for key in PARTITION_KEYS:
        if key not in loaded:
            break
        percentage = int(key)
    classes = class_counts(engine)
    loads = [
        {
            "id": int(row.id),
            "batch_name": row.batch_name,
            "partition_key": row.partition_key,
            "percentage": int(row.percentage),
            "rows_added": int(row.rows_added),
            "rows_updated": int(row.rows_updated),
            "rows_deleted": int(row.rows_deleted),
            "rows_unchanged": int(row.rows_unchanged),
            "total_rows": int(row.total_rows),
            "status": row.status,
            "dagster_run_id": row.dagster_run_id,
            "started_at": row.started_at.isoformat() if row.started_at else None,
            "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "source_hashes": row.source_hashes,
        }
        for row in history.itertuples()
    ]
    return {
        "database": engine.url.render_as_string(),
        "loaded_percentage": percentage,
        "loaded_partitions": loaded_keys,
        "next_partition": next_partition(loaded),
        "total_rows": sum(c.rows for c in classes),
        "classes": [
            {
                "prdtypecode": c.prdtypecode,
                "name_fr": c.name_fr,
                "name_en": c.name_en,
                "rows": c.rows,
            }
            for c in classes
        ],
        "loads": loads,
    }


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Loaded percentage, rows, rows per class and the load history."""
    report = status_report(_engine())
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return
    console.print(
        f"[bold]{report['loaded_percentage']}%[/] of the data loaded, "
        f"{report['total_rows']:,} products ({report['database']}); "
        f"next partition: {report['next_partition'] or 'none (all loaded)'}"
    )
    classes = Table(title="Products per class")
    for column in ("prdtypecode", "category", "rows", "share"):
        classes.add_column(column, justify="right" if column in ("rows", "share") else "left")
    total = max(report["total_rows"], 1)
    for c in report["classes"]:
        classes.add_row(
            str(c["prdtypecode"]), c["name_fr"], f"{c['rows']:,}", f"{c['rows'] / total:.1%}"
        )
    console.print(classes)
    loads = Table(title="Load history")
    for column in (
        "id",
        "batch",
        "partition",
        "+rows",
        "~rows",
        "-rows",
        "total",
        "completed",
        "run",
    ):
        loads.add_column(column)
    for load in report["loads"]:
        loads.add_row(
            str(load["id"]),
            load["batch_name"],
            load["partition_key"],
            f"{load['rows_added']:,}",
            f"{load['rows_updated']:,}",
            f"{load['rows_deleted']:,}",
            f"{load['total_rows']:,}",
            (load["completed_at"] or "")[:19],
            (load["dagster_run_id"] or "-")[:8],
        )
    console.print(loads)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
