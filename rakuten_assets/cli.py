"""The `rakuten` command line.

Commands that change data run through Dagster on the project's persistent instance, so every
run shows in the UI (`dagster dev`) exactly like a run launched from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rakuten_assets.settings import Settings

# Progress bars of artifact downloads would drown the CLI's own output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

app = typer.Typer(
    name="rakuten",
    help="MLOps platform for the Rakuten France product classification challenge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def progress_bar() -> Any:
    """The CLI's progress bar (on stderr, so stdout stays parseable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    )


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


def materialize(
    job_name: str, partition_key: str | None, run_config: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Run a partitioned job of the code location in-process on the persistent instance.

    Returns the metadata of each materialized asset, by asset name.
    """
    ensure_dagster_home()
    import dagster as dg

    from rakuten_assets.definitions import defs

    label = f" [{partition_key}]" if partition_key else ""
    console.print(f"materializing [bold]{job_name}[/]{label} ...")
    config = {
        **(run_config or {}),
        # The summary below replaces Dagster's console log; the full log is in the UI.
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    with dg.DagsterInstance.get() as instance:
        # Resolved inside the instance's context: building the repository reads the
        # instance's definitions-state storage.
        job = defs.resolve_job_def(job_name)
        result = job.execute_in_process(
            partition_key=partition_key,
            instance=instance,
            raise_on_error=False,
            run_config=config,
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
        raise fail(f"run {result.run_id} of {job_name}{label} failed:\n{detail}")
    console.print(f"run {result.run_id} of [bold]{job_name}[/]{label} succeeded")
    materializations = [
        event.step_materialization_data.materialization
        for event in result.get_asset_materialization_events()
    ]
    return {
        m.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in materializations
        if m is not None
    }


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
    from rakuten_assets.data.synth.generator import SynthOptions, synthesize

    if rows < 1 or test_rows < 0:
        raise fail("--rows must be >= 1 and --test-rows >= 0")
    out_dir = out or Settings().data_dir
    if report and challenge_files_present(out_dir):
        realism_report(out_dir)
        return
    with progress_bar() as progress:
        task = progress.add_task("generating listings", total=rows + test_rows)
        written = synthesize(
            out_dir,
            SynthOptions(rows=rows, test_rows=test_rows, seed=seed),
            progress=lambda done: progress.update(task, completed=done),
        )
    for path in written.values():
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
    if report:
        realism_report(out_dir)


def realism_report(data_dir: Path) -> None:
    """Print the realism report of the challenge files in `data_dir`."""
    from rich.table import Table

    from rakuten_assets.data.challenge_files import read_training_set
    from rakuten_assets.data.synth.realism import measure, typical_words_of
    from rakuten_assets.data.synth.vocab import common_slots
    from rakuten_assets.ml.probes import probe_generated_data

    frame = read_training_set(data_dir).frame
    labels = frame["prdtypecode"].tolist()
    table = Table(title=f"realism of {data_dir} ({len(frame):,} listings)")
    for column in ("figure", "these files", "real set", "source of the real figure"):
        table.add_column(column)
    for figure in measure(frame, labels, list(common_slots()["seller_padding"])):
        shown = (lambda v: f"{v:.3f}") if figure.unit == "share" else (lambda v: f"{v:,.1f}")
        real = "" if figure.real is None else shown(figure.real)
        unit = "" if figure.unit == "share" else f" ({figure.unit})"
        table.add_row(figure.label + unit, shown(figure.generated), real, figure.source)
    console.print(table)
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
    # a reverted load (a blocking check failed after it) leaves its partition unloaded
    loaded = set(history.loc[history["status"] == "completed", "partition_key"])
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


def _latest_loaded_partition() -> str:
    from rakuten_assets.data.partitions import PARTITION_KEYS
    from rakuten_assets.db.loader import loaded_partitions

    with _engine().connect() as connection:
        loaded = loaded_partitions(connection)
    contiguous = [key for key in PARTITION_KEYS if key in loaded]
    if not contiguous:
        raise fail("no partition is loaded yet: run `rakuten init-db` first")
    return contiguous[-1]


@app.command()
def dataset(
    partition: Annotated[
        str | None, typer.Option(help="Partition (default: the latest loaded).")
    ] = None,
) -> None:
    """Build the balanced dataset of a partition through Dagster (split, oversampling)."""
    key = partition or _latest_loaded_partition()
    metadata = materialize("dataset", key).get("balanced_dataset", {})
    console.print(
        f"data load {metadata.get('data_load_id')} ({metadata.get('batch_name')}): "
        f"{metadata.get('train_rows')} training rows, "
        f"{metadata.get('train_rows_oversampled')} after oversampling, "
        f"{metadata.get('test_rows')} test rows; data hash {str(metadata.get('data_hash'))[:16]}",
        highlight=False,
    )


@app.command("train")
def train_command(
    partition: Annotated[
        str | None, typer.Option(help="Partition to train on (default: the latest loaded).")
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            "--config",
            help="Named configuration: default (word + character n-grams, calibrated linear "
            "SVM) or seed (the seed project's 5,000-word TF-IDF + logistic regression).",
        ),
    ] = "default",
    max_features: Annotated[int | None, typer.Option(help="Word TF-IDF vocabulary size.")] = None,
    c: Annotated[
        float | None, typer.Option("--C", "--c", help="Inverse regularization strength.")
    ] = None,
    classifier: Annotated[
        str | None, typer.Option(help="logistic_regression or linear_svc.")
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote/--no-promote",
            help="Apply the champion/challenger rule; without it, register as challenger only.",
        ),
    ] = False,
) -> None:
    """Train on a partition through Dagster: dataset, model (MLflow), registered version."""
    from rakuten_assets.data.partitions import percentage_of

    key = partition or _latest_loaded_partition()
    try:
        percentage_of(key)
    except ValueError as error:
        raise fail(str(error)) from None
    training: dict[str, object] = {"preset": preset}
    training.update(
        (name, value)
        for name, value in (("max_features", max_features), ("C", c), ("classifier", classifier))
        if value is not None
    )
    metadata = materialize(
        "train",
        key,
        {
            "ops": {
                "trained_model": {"config": training},
                "registered_model_version": {"config": {"auto_promote": promote}},
            }
        },
    )
    model = metadata.get("trained_model", {})
    version = metadata.get("registered_model_version", {})
    console.print(
        f"MLflow run {model.get('mlflow_run_id')} ({model.get('mlflow_run')})\n"
        f"test set: accuracy {model.get('accuracy', 0):.4f}, "
        f"weighted F1 {model.get('weighted_f1', 0):.4f}, macro F1 {model.get('macro_f1', 0):.4f}\n"
        f"registered {version.get('model_name')} v{version.get('version')}: "
        f"{version.get('decision')}",
        highlight=False,
    )


def _registry():  # type: ignore[no-untyped-def]
    from rakuten_assets.ml.registry import ModelRegistry

    settings = Settings()
    return ModelRegistry(settings.resolved_mlflow_tracking_uri, settings.model_name, _engine())


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version to make production.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "forced from the CLI",
    allow_below_floor: Annotated[
        bool,
        typer.Option(
            "--allow-below-floor",
            help="Promote even if the version's weighted F1 is under RAKUTEN_MIN_WEIGHTED_F1 "
            "(the override is recorded in the reason).",
        ),
    ] = False,
) -> None:
    """Make a model version production (forced, recorded in model_promotions).

    A version whose weighted F1 is under the floor is refused without --allow-below-floor.
    """
    from rakuten_assets.ml.registry import RegistryError

    try:
        event = _registry().force_promote(
            version, _actor(), reason, allow_below_floor=allow_below_floor
        )
    except RegistryError as error:
        raise fail(str(error)) from None
    if allow_below_floor and "allowed below the floor" in event.reason:
        errors.print(
            f"[bold yellow]warning:[/] v{event.version} is under the weighted-F1 floor; "
            "promoted because of --allow-below-floor (recorded)",
            highlight=False,
        )
    console.print(
        f"production is now v{event.version} (was v{event.previous_version or '-'}), "
        f"recorded as {event.actor} at {event.at.isoformat(timespec='seconds')}"
    )


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "rollback from the CLI",
) -> None:
    """Put production back on the previous production version (recorded)."""
    from rakuten_assets.ml.registry import RegistryError

    try:
        event = _registry().rollback(_actor(), reason)
    except RegistryError as error:
        raise fail(str(error)) from None
    console.print(f"production rolled back from v{event.previous_version} to v{event.version}")


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Registered versions with aliases and metrics, and the production history."""
    registry = _registry()
    versions = registry.versions()
    history = [{**event.__dict__, "at": event.at.isoformat()} for event in registry.history()]
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "model_name": registry.model_name,
                    "versions": versions,
                    "production_history": history,
                },
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(title=f"{registry.model_name}")
    for column in ("version", "aliases", "partition", "weighted F1", "accuracy", "run", "created"):
        table.add_column(column)
    for row in versions:
        table.add_row(
            str(row["version"]),
            ", ".join(row["aliases"]),
            str(row.get("partition") or "-"),
            f"{row['weighted_f1']:.4f}" if "weighted_f1" in row else "-",
            f"{row['accuracy']:.4f}" if "accuracy" in row else "-",
            (row["run_id"] or "-")[:8],
            row["created_at"][:19],
        )
    console.print(table)
    if history:
        events = Table(title="production history")
        for column in ("at", "action", "version", "previous", "by", "replay", "reason"):
            events.add_column(column)
        for event in history:
            events.add_row(
                event["at"][:19],
                event["action"],
                event["version"],
                event["previous_version"] or "-",
                event["actor"],
                _replay_cell(event.get("replay")),
                event["reason"],
            )
        console.print(events)


def _replay_cell(replay: dict[str, Any] | None) -> str:
    """The challenger replay of a promotion, in a few characters (details: the reason)."""
    if not replay:
        return "-"
    if replay.get("skipped") or replay.get("agreement") is None:
        return "skipped"
    return f"agreement {replay['agreement']:.3f} on {replay['rows']:,}"


@app.command()
def evaluations(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The production model graded on each partition's new rows, before training on them."""
    from rakuten_assets.db.evaluations import model_evaluations_frame

    settings = Settings()
    frame = model_evaluations_frame(_engine(), settings.model_name)
    records = [
        {
            # a missing test F1 reads back as NaN in a float column
            **{k: None if v != v else v for k, v in row.items() if k != "id"},
            "evaluated_at": row["evaluated_at"].isoformat(),
        }
        for row in frame.to_dict("records")
    ]
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if not records:
        console.print(
            "no evaluation yet: production_model_evaluation grades each partition loaded "
            "after a model is in production (make load-data)"
        )
        return
    table = Table(title=f"{settings.model_name} graded on new partitions")
    for column in ("partition", "version", "rows", "accuracy", "weighted F1", "macro F1"):
        table.add_column(column)
    table.add_column("test F1 - F1")
    table.add_column("evaluated")
    for row in records:
        test_f1 = row["model_test_f1"]
        drop = "-" if test_f1 is None else f"{test_f1 - row['weighted_f1']:+.4f}"
        if test_f1 is not None and test_f1 - row["weighted_f1"] > settings.quality_f1_margin:
            drop = f"[red]{drop}[/]"
        table.add_row(
            row["partition_key"],
            row["model_version"],
            str(row["rows"]),
            f"{row['accuracy']:.4f}",
            f"{row['weighted_f1']:.4f}",
            f"{row['macro_f1']:.4f}",
            drop,
            row["evaluated_at"][:19],
        )
    console.print(table)


@app.command()
def reproduce(run_id: Annotated[str, typer.Argument(help="MLflow run id of a training.")]) -> None:
    """Rebuild a run's exact data from the audit trail, retrain, compare test predictions."""
    from mlflow.exceptions import MlflowException

    from rakuten_assets.ml.reproduce import reproduce_run

    settings = Settings()
    try:
        report = reproduce_run(_engine(), settings.resolved_mlflow_tracking_uri, run_id)
    except (ValueError, KeyError, MlflowException) as error:
        raise fail(f"cannot reproduce run {run_id}: {error}") from None
    console.print(
        f"run {run_id}: partition {report.partition}, data load {report.load_id}\n"
        f"data hash: logged {report.data_hash_logged[:16]}, rebuilt "
        f"{report.data_hash_rebuilt[:16]} "
        f"({'same' if report.data_hash_logged == report.data_hash_rebuilt else 'DIFFERENT'})\n"
        f"test rows: {report.test_rows}; predictions differing from the logged ones: "
        f"{report.differing_from_logged_predictions}, from the logged model: "
        f"{report.differing_from_logged_model}\n"
        f"weighted F1: logged {report.weighted_f1_logged:.4f}, "
        f"rebuilt {report.weighted_f1_rebuilt:.4f}",
        highlight=False,
    )
    if not report.identical:
        raise fail("NOT reproduced: predictions or data differ")
    console.print("[bold green]reproduced: identical predictions on the test set[/]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Inference worker processes.", min=1)] = 1,
    api_servers: Annotated[
        int | None, typer.Option(help="HTTP processes (default: as many as workers).", min=1)
    ] = None,
) -> None:
    """Serve the production model over HTTP (LitServe): /predict, /feedback, /health, /info,
    /metrics."""
    from serving.server import run

    console.print(
        f"serving {Settings().model_name}@production on http://{host}:{port} "
        f"({workers} worker(s)); docs at http://{host}:{port}/docs"
    )
    run(host=host, port=port, workers=workers, api_servers=api_servers)


@app.command()
def drift(
    window_hours: Annotated[
        float | None, typer.Option(help="Predictions of the last N hours (default 24).")
    ] = None,
    last_n: Annotated[int | None, typer.Option(help="Only the last N predictions.")] = None,
) -> None:
    """Materialize drift_metrics through Dagster: live traffic vs the production model's data."""
    config = {
        key: value
        for key, value in (("window_hours", window_hours), ("last_n", last_n))
        if value is not None
    }
    metadata = materialize(
        "drift", None, {"ops": {"drift_metrics": {"config": config}}} if config else None
    ).get("drift_metrics", {})
    verdict = metadata.get("verdict", "?")
    colour = {"drift": "red", "no_drift": "green"}.get(str(verdict), "yellow")
    console.print(
        f"[bold {colour}]{verdict}[/] over {metadata.get('window_predictions', 0)} prediction(s) "
        f"(model v{metadata.get('model_version')}; report {metadata.get('drift_report_id')}; "
        f"pushgateway: {metadata.get('pushgateway')})"
    )
    console.print(str(metadata.get("reasons", "")), highlight=False)
    corrected = metadata.get("feedback_corrected") or 0
    if corrected:
        console.print(
            f"live accuracy {float(metadata['feedback_accuracy']):.3f} on the {corrected} "
            "corrected prediction(s) of the window (POST /feedback)"
        )


@app.command("simulate-traffic")
def simulate_traffic(
    url: Annotated[str, typer.Option(help="Base URL of the serving API.")] = (
        "http://127.0.0.1:8000"
    ),
    n: Annotated[int, typer.Option(help="Requests to send.", min=1)] = 500,
    shift: Annotated[
        str, typer.Option(help="none | length | category | language: how traffic drifts.")
    ] = "none",
    rate: Annotated[float, typer.Option(help="Requests per second (0: as fast as possible).")] = (
        50.0
    ),
    seed: Annotated[int, typer.Option(help="Random seed of the sample.")] = 0,
    feedback: Annotated[
        float,
        typer.Option(
            help="Share of the requests (0-1) whose answer is corrected on /feedback with the "
            "true code; those requests are labelled listings of partition 100 (X_train/Y_train).",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
) -> None:
    """Send realistic requests built from X_test_update.csv, optionally drifted; with
    --feedback, correct a share of the answers as users would."""
    from rakuten_assets.data.categories import category_name
    from rakuten_assets.data.challenge_files import (
        challenge_files_present,
        read_test_set,
        read_training_set,
    )
    from rakuten_assets.data.partitions import PARTITION_KEYS, partition_delta
    from rakuten_assets.monitoring.simulate import send_traffic
    from rakuten_assets.monitoring.traffic import SHIFTS, requests_with_feedback

    if shift not in SHIFTS:
        raise fail(f"--shift must be one of {', '.join(SHIFTS)}, not {shift!r}")
    settings = Settings()
    test = read_test_set(settings.data_dir)
    if test is None and feedback < 1:
        raise fail(
            f"no X_test_update.csv in {settings.data_dir}/: run `rakuten synth` or copy the "
            "challenge's file there"
        )
    labelled = None
    if feedback > 0:
        # X_test has no labels: the corrected requests are training listings, those of the
        # last partition, which a model trained before it has never seen.
        if not challenge_files_present(settings.data_dir):
            raise fail(
                f"--feedback needs the labelled training files (X_train, Y_train) in "
                f"{settings.data_dir}/: run `rakuten synth` or copy the challenge's files there"
            )
        labelled = partition_delta(read_training_set(settings.data_dir), PARTITION_KEYS[-1]).frame
    requests, labels = requests_with_feedback(
        test, labelled, n, feedback, shift, seed, max_chars=settings.max_text_chars
    )
    with progress_bar() as progress:
        task = progress.add_task(f"{shift} traffic to {url}", total=len(requests))
        summary = send_traffic(
            url,
            requests,
            rate=rate,
            api_key=settings.api_key,
            on_done=lambda: progress.advance(task),
            labels=labels if feedback > 0 else None,
        )
    console.print(
        f"sent {summary.sent} request(s) in {summary.seconds:.1f} s: {summary.ok} answered, "
        f"statuses {dict(sorted(summary.statuses.items()))}"
    )
    if summary.ok:
        top = ", ".join(
            f"{code} {category_name(code)} ({count})"
            for code, count in summary.predicted.most_common(5)
        )
        console.print(f"mean confidence {summary.mean_confidence:.3f}; top classes: {top}")
    if feedback > 0:
        console.print(
            f"sent {summary.feedback_sent} correction(s) to /feedback: "
            f"{summary.feedback_stored} stored, statuses "
            f"{dict(sorted(summary.feedback_statuses.items()))}; live accuracy on them "
            f"{summary.feedback_accuracy:.3f}"
        )
    for error in summary.errors:
        errors.print(f"  {error}", highlight=False)
    if summary.ok == 0:
        raise fail(f"no request succeeded; is the server up at {url}?")


@app.command("export-inference-log")
def export_inference_log(
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path(
        "data/monitoring/inference_log.csv"
    ),
) -> None:
    """Write the inference log in the seed's CSV format."""
    from rakuten_assets.db.queries import export_inference_log as export

    rows = export(_engine(), out)
    console.print(f"wrote {rows:,} prediction(s) to {out}")


# -- the local stack: Dagster UI, MLflow UI and model server in the background ----------------

stack_app = typer.Typer(
    help="The demo's background services: Dagster UI (dagster dev), MLflow UI, model server.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

ServicesArg = Annotated[
    list[str] | None,
    typer.Argument(help="dagster, mlflow and/or serving (default: all).", show_default=False),
]
DagsterPort = Annotated[int, typer.Option(help="Port of the Dagster UI.")]
MlflowPort = Annotated[int, typer.Option(help="Port of the MLflow UI.")]
ServingPort = Annotated[int, typer.Option(help="Port of the model server.")]
Workers = Annotated[int, typer.Option(help="Inference workers of the model server.", min=1)]


def _local_stack(
    dagster_port: int = 3000, mlflow_port: int = 5000, serving_port: int = 8000, workers: int = 2
) -> Any:
    from rakuten_assets.local_stack import LocalStack, StackPorts, service_specs

    settings = Settings()
    specs = service_specs(
        tracking_uri=settings.resolved_mlflow_tracking_uri,
        project_dir=Path.cwd(),
        dagster_home=ensure_dagster_home(),
        ports=StackPorts(dagster_port, mlflow_port, serving_port),
        serving_workers=workers,
    )
    return LocalStack(specs, settings.home_dir)


def _selected(stack: Any, names: list[str] | None) -> list[str]:
    chosen = names or list(stack.specs)
    unknown = [name for name in chosen if name not in stack.specs]
    if unknown:
        raise fail(f"unknown service(s) {', '.join(unknown)}: choose from {', '.join(stack.specs)}")
    return chosen


# Start-up budgets: dagster dev loads the code location; the server loads the model.
STARTUP_SECONDS = {"dagster": 240.0, "mlflow": 120.0, "serving": 240.0}


@contextlib.contextmanager
def _stack_errors() -> Iterator[None]:
    """A service that cannot start or stop: its message, exit 1."""
    from rakuten_assets.local_stack import StackError

    try:
        yield
    except StackError as error:
        raise fail(str(error)) from None


def _start_services(stack: Any, names: list[str]) -> None:
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


@stack_app.command("start")
def stack_start(
    services: ServicesArg = None,
    dagster_port: DagsterPort = 3000,
    mlflow_port: MlflowPort = 5000,
    serving_port: ServingPort = 8000,
    workers: Workers = 2,
    restart: Annotated[bool, typer.Option(help="Stop running ones first (make restart).")] = False,
) -> None:
    """Start the services in the background (those already running are left alone)."""
    stack = _local_stack(dagster_port, mlflow_port, serving_port, workers)
    names = _selected(stack, services)
    if restart:
        with _stack_errors():
            for name in names:
                stack.stop(name)
    _start_services(stack, names)


@stack_app.command("stop")
def stack_stop(services: ServicesArg = None) -> None:
    """Stop the services this project started (by pid), and every process they started."""
    stack = _local_stack()
    for name in _selected(stack, services):
        with _stack_errors():
            stopped = stack.stop(name)
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


def _states(stack: Any) -> list[Any]:
    return [stack.state(name) for name in stack.specs]


@stack_app.command("ps")
def stack_ps(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each service: pid, URL, health."""
    states = _states(_local_stack())
    if as_json:
        sys.stdout.write(json.dumps([s.as_dict() for s in states], indent=2) + "\n")
        return
    table = Table(title="local stack")
    for column in ("service", "pid", "url", "health", "what it is"):
        table.add_column(column)
    for s in states:
        health = "[green]healthy[/]" if s.healthy else f"[red]down[/] {s.detail}"
        table.add_row(s.name, str(s.pid or "-"), s.url, health, s.title)
    console.print(table)


@stack_app.command("health")
def stack_health() -> None:
    """Ask each service's health endpoint; exit 1 when one is not healthy."""
    states = _states(_local_stack())
    for s in states:
        mark = "[green]ok[/]  " if s.healthy else "[red]FAIL[/]"
        console.print(f"{mark} {s.name:<8} {s.url:<24} {s.detail}", highlight=False)
    if not all(s.healthy for s in states):
        raise fail("not every service is healthy: `rakuten stack logs NAME` shows why")


@stack_app.command("logs")
def stack_logs(
    services: ServicesArg = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines per service.")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """The last lines of the services' logs (under .rakuten/logs)."""
    stack = _local_stack()
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


def _print_api_report(report: Any) -> None:
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name:<44} {check.detail}", highlight=False)


@app.command("test-api")
def test_api(
    url: Annotated[str, typer.Option(help="Base URL of the model server.")] = (
        "http://127.0.0.1:8000"
    ),
) -> None:
    """Check the model server end to end: health, info, predictions, bad input, metrics."""
    from rakuten_assets.api_check import check_api

    report = check_api(url, Settings().api_key)
    _print_api_report(report)
    if not report.ok:
        raise fail(f"the API at {url} failed {sum(not c.ok for c in report.checks)} check(s)")


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Listings to generate when data/raw is empty.")] = (
        84_916
    ),
    test_rows: Annotated[int, typer.Option(help="Unlabelled listings to generate.")] = 13_812,
    dagster_port: DagsterPort = 3000,
    mlflow_port: MlflowPort = 5000,
    serving_port: ServingPort = 8000,
    workers: Workers = 2,
) -> None:
    """The whole platform on this machine: data, 040, a production model, the three UIs/APIs.

    Safe to run again: every step that is already done is skipped."""
    from rakuten_assets.api_check import check_api
    from rakuten_assets.data.challenge_files import challenge_files_present

    settings = Settings()
    console.rule("1/5 data")
    if challenge_files_present(settings.data_dir):
        console.print(f"challenge files found in {settings.data_dir}/: using them")
    else:
        synth(rows=rows, test_rows=test_rows, seed=42, out=settings.data_dir)
    console.rule("2/5 database and partition 040")
    init_db(reload=False)
    console.rule("3/5 a production model")
    production = _registry().production()
    if production is not None:
        console.print(f"{settings.model_name} v{production.version} is production already")
    else:
        train_command(promote=True)
        if _registry().production() is None:
            raise fail("the trained model was not promoted (see `rakuten models`)")
    console.rule("4/5 services")
    stack = _local_stack(dagster_port, mlflow_port, serving_port, workers)
    _start_services(stack, list(stack.specs))
    console.rule("5/5 a few predictions")
    report = check_api(stack.url("serving"), settings.api_key)
    _print_api_report(report)
    for listing, answer in report.predictions:
        console.print(
            f"  {str(listing['designation'])[:58]:<58} -> {answer['prdtypecode']} "
            f"{answer['category']} ({answer['confidence']:.2f})",
            highlight=False,
        )
    if not report.ok:
        raise fail("the model server does not answer as it should (`make logs-api`)")
    mlflow_url = stack.url("mlflow") if "mlflow" in stack.specs else settings.mlflow_ui_url
    dagster_url = stack.url("dagster")
    serving_url = stack.url("serving")
    console.rule("ready")
    console.print(
        f"""[bold]Dagster UI[/]   {dagster_url}   asset graph, partitions, runs, sensors
[bold]MLflow UI[/]    {mlflow_url}   runs, metrics, model registry ({settings.model_name})
[bold]Model API[/]    {serving_url}/docs   /predict, /feedback, /health, /info, /metrics

What to try next (the quality loop):
  make simulate-traffic FEEDBACK=0.2
                                    traffic, a fifth of it corrected by "users" (/feedback)
  make load-data                    load +3%: the sensor grades production on the new rows
                                    (production_model_evaluation), then retrains on them,
                                    replays the challenger on the logged traffic and may
                                    promote it
  make evaluations                  the graded partitions; `make drift`: drift and the
                                    live accuracy on corrected predictions
  make simulate-traffic SHIFT=category && make drift
                                    drifted traffic, then a drift report (and a retraining)
  curl -s {serving_url}/predict -H 'content-type: application/json' \\
       -d '{{"designation": "Lot de 3 coussins déhoussables 45x45"}}'
  make ps | make check-health | make logs | make demo-stop""",
        highlight=False,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
