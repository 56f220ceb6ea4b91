"""Data commands: the challenge files (`synth`), the database and its loads (`init-db`,
`load-data`, `status`) and the balanced dataset of a partition (`dataset`).

The plain functions here (`write_synthetic_data`, `load_initial_partition`,
`default_partition`) are the steps `demo` and the training commands share with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rakuten_assets.cli.dagster_runs import materialize
from rakuten_assets.cli.output import console, fail, print_json, progress_bar, table
from rakuten_assets.cli.resources import database_engine
from rakuten_assets.settings import get_settings


def require_files(data_dir: Path) -> None:
    """Stop with the way out when the challenge files a load reads are missing."""
    from rakuten_assets.data.challenge_files import X_TRAIN_FILE, challenge_files_present

    if not challenge_files_present(data_dir):
        raise fail(
            f"no challenge files in {data_dir}/ ({X_TRAIN_FILE} and its labels). Generate the "
            "default data with `rakuten synth`, or copy the real files there "
            "(or set RAKUTEN_DATA_DIR)."
        )


def require_row_counts(rows: int, test_rows: int) -> None:
    """Refuse counts the generator cannot honour, before anything is written."""
    if rows < 1 or test_rows < 0:
        raise fail("--rows must be >= 1 and --test-rows >= 0")


def write_synthetic_data(out_dir: Path, rows: int, test_rows: int, seed: int) -> None:
    """Generate the three challenge files into `out_dir` with a progress bar (`synth`, `demo`)."""
    from rakuten_assets.data.synth.generator import SynthOptions, synthesize

    with progress_bar() as progress:
        task = progress.add_task("generating listings", total=rows + test_rows)
        written = synthesize(
            out_dir,
            SynthOptions(rows=rows, test_rows=test_rows, seed=seed),
            progress=lambda done: progress.update(task, completed=done),
        )
    for path in written.values():
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


def synth(
    rows: Annotated[int, typer.Option(help="Training rows (X_train/Y_train).")] = 84_916,
    test_rows: Annotated[int, typer.Option(help="Unlabelled rows (X_test).")] = 13_812,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 42,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: RAKUTEN_DATA_DIR).")
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Print the realism report of the files in the output folder (generated "
            "first when absent): figures beside the real set's, shortcut measures, and what "
            "a model trained on them predicts for empty and unfamiliar input.",
        ),
    ] = False,
) -> None:
    """Generate realistic listings in the exact format of the challenge files."""
    from rakuten_assets.data.challenge_files import challenge_files_present

    require_row_counts(rows, test_rows)
    out_dir = out or get_settings().data_dir
    if report and challenge_files_present(out_dir):
        realism_report(out_dir)
        return
    write_synthetic_data(out_dir, rows, test_rows, seed)
    if report:
        realism_report(out_dir)


def realism_report(data_dir: Path) -> None:
    """Print the realism report of the challenge files in `data_dir`."""
    from rakuten_assets.data.challenge_files import read_training_set
    from rakuten_assets.data.synth.realism import measure, typical_words_of
    from rakuten_assets.data.synth.vocab import common_slots
    from rakuten_assets.ml.probes import probe_generated_data

    frame = read_training_set(data_dir).frame
    labels = frame["prdtypecode"].tolist()
    figures = table(
        f"realism of {data_dir} ({len(frame):,} listings)",
        ("figure", "these files", "real set", "source of the real figure"),
    )
    for figure in measure(frame, labels, list(common_slots()["seller_padding"])):
        shown = (lambda v: f"{v:.3f}") if figure.unit == "share" else (lambda v: f"{v:,.1f}")
        real = "" if figure.real is None else shown(figure.real)
        unit = "" if figure.unit == "share" else f" ({figure.unit})"
        figures.add_row(figure.label + unit, shown(figure.generated), real, figure.source)
    console.print(figures)
    typical = typical_words_of(frame, labels)
    console.print("most typical title words of a few classes (what the shortcut share counts):")
    for code in (10, 1160, 2583, 1560):
        console.print(f"  {code}: {', '.join(typical.get(code, [])[:12])}", highlight=False)
    with console.status("training the default model on 20,000 listings for the probe"):
        result = probe_generated_data(
            frame[["designation", "description"]], frame["prdtypecode"], rows=20_000
        )
    console.print(
        f"empty listing -> {result.empty_class} (p {result.empty_confidence:.2f}); "
        f"unfamiliar titles: mean confidence {result.unfamiliar_mean_confidence:.2f} "
        f"(uniform: {1 / 27:.2f}), {result.unfamiliar_confident_share:.1%} answered with "
        f"p >= 0.5, most frequent answer {result.unfamiliar_top_class} "
        f"({result.unfamiliar_top_share:.0%})",
        highlight=False,
    )


def load_initial_partition(reload: bool = False) -> None:
    """Migrate the schema, then load partition 040 through Dagster unless it is loaded
    (`init-db`, `demo`)."""
    from rakuten_assets.db.engine import migrate
    from rakuten_assets.db.queries import loaded_partitions

    settings = get_settings()
    engine = database_engine()
    console.print(f"schema at revision {migrate(engine)} on {engine.url.render_as_string()}")
    with engine.connect() as connection:
        already = "040" in loaded_partitions(connection)
    if already and not reload:
        console.print("partition 040 is already loaded (use --reload to materialize it again)")
        return
    require_files(settings.data_dir)
    materialize("ingest", "040")


def init_db(
    reload: Annotated[
        bool, typer.Option("--reload", help="Materialize 040 again even if it is loaded.")
    ] = False,
) -> None:
    """Create or upgrade the schema, then load the initial 40% (partition 040) through Dagster."""
    load_initial_partition(reload)


def load_data(
    partition: Annotated[
        str | None, typer.Option(help="Partition to load (default: the next one).")
    ] = None,
) -> None:
    """Load the next +3% increment (or --partition) through Dagster."""
    from rakuten_assets.data.partitions import next_partition, percentage_of
    from rakuten_assets.db.queries import loaded_partitions

    settings = get_settings()
    with database_engine().connect() as connection:
        loaded = loaded_partitions(connection)
    key = partition or next_partition(loaded)
    if key is None:
        console.print("all 21 partitions are loaded (100% of the data)")
        return
    try:
        percentage_of(key)
    except ValueError as error:
        raise fail(str(error)) from None
    require_files(settings.data_dir)
    materialize("ingest", key)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Loaded percentage, rows, rows per class and the load history."""
    from rakuten_assets.db.queries import status_report

    report = status_report(database_engine())
    if as_json:
        print_json(report, ensure_ascii=False)
        return
    console.print(
        f"[bold]{report['loaded_percentage']}%[/] of the data loaded, "
        f"{report['total_rows']:,} products ({report['database']}); "
        f"next partition: {report['next_partition'] or 'none (all loaded)'}"
    )
    classes = table(
        "Products per class", ("prdtypecode", "category", "rows", "share"), ("rows", "share")
    )
    total = max(report["total_rows"], 1)
    for c in report["classes"]:
        classes.add_row(
            str(c["prdtypecode"]), c["name_fr"], f"{c['rows']:,}", f"{c['rows'] / total:.1%}"
        )
    console.print(classes)
    loads = table(
        "Load history",
        ("id", "batch", "partition", "+rows", "~rows", "-rows", "total", "completed", "run"),
    )
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


def default_partition(partition: str | None) -> str:
    """The partition asked for, else the latest loaded one (`dataset`, `train`)."""
    if partition:
        return partition
    from rakuten_assets.db.queries import latest_loaded_partition

    latest = latest_loaded_partition(database_engine())
    if latest is None:
        raise fail("no partition is loaded yet: run `rakuten init-db` first")
    return latest


def dataset(
    partition: Annotated[
        str | None, typer.Option(help="Partition (default: the latest loaded).")
    ] = None,
) -> None:
    """Build the balanced dataset of a partition through Dagster (split, oversampling)."""
    metadata = materialize("dataset", default_partition(partition)).get("balanced_dataset", {})
    console.print(
        f"data load {metadata.get('data_load_id')} ({metadata.get('batch_name')}): "
        f"{metadata.get('train_rows')} training rows, "
        f"{metadata.get('train_rows_oversampled')} after oversampling, "
        f"{metadata.get('test_rows')} test rows; data hash {str(metadata.get('data_hash'))[:16]}",
        highlight=False,
    )
