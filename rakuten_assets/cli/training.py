"""Training and registry commands: `train`, `promote`, `rollback`, `models`, `evaluations`,
`reproduce`.

`train_and_register` is the training step `train` and `demo` share.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rakuten_assets.cli.dagster_runs import materialize
from rakuten_assets.cli.data import default_partition
from rakuten_assets.cli.output import console, errors, fail, print_json, table
from rakuten_assets.cli.resources import database_engine, model_registry
from rakuten_assets.settings import get_settings


def train_and_register(
    partition: str | None = None,
    preset: str = "default",
    *,
    max_features: int | None = None,
    c: float | None = None,
    classifier: str | None = None,
    promote: bool = False,
) -> None:
    """Run the `train` job on a partition (default: the latest loaded) and print the model's
    figures and the registry's decision (`train`, `demo`)."""
    from rakuten_assets.data.partitions import percentage_of

    key = default_partition(partition)
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


def train(
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
    train_and_register(
        partition,
        preset,
        max_features=max_features,
        c=c,
        classifier=classifier,
        promote=promote,
    )


def _actor() -> str:
    """Who a forced promotion or a rollback is recorded as."""
    import getpass

    return f"cli:{getpass.getuser()}"


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
        event = model_registry().force_promote(
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


def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "rollback from the CLI",
) -> None:
    """Put production back on the previous production version (recorded)."""
    from rakuten_assets.ml.registry import RegistryError

    try:
        event = model_registry().rollback(_actor(), reason)
    except RegistryError as error:
        raise fail(str(error)) from None
    console.print(f"production rolled back from v{event.previous_version} to v{event.version}")


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Registered versions with aliases and metrics, and the production history."""
    registry = model_registry()
    versions = registry.versions()
    history = [{**event.__dict__, "at": event.at.isoformat()} for event in registry.history()]
    if as_json:
        print_json(
            {
                "model_name": registry.model_name,
                "versions": versions,
                "production_history": history,
            }
        )
        return
    listing = table(
        f"{registry.model_name}",
        ("version", "aliases", "partition", "weighted F1", "accuracy", "run", "created"),
    )
    for row in versions:
        listing.add_row(
            str(row["version"]),
            ", ".join(row["aliases"]),
            str(row.get("partition") or "-"),
            f"{row['weighted_f1']:.4f}" if "weighted_f1" in row else "-",
            f"{row['accuracy']:.4f}" if "accuracy" in row else "-",
            (row["run_id"] or "-")[:8],
            row["created_at"][:19],
        )
    console.print(listing)
    if history:
        events = table(
            "production history",
            ("at", "action", "version", "previous", "by", "replay", "reason"),
        )
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


def evaluations(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The production model graded on each partition's new rows, before training on them."""
    from rakuten_assets.db.queries import model_evaluation_records

    settings = get_settings()
    records = model_evaluation_records(database_engine(), settings.model_name)
    if as_json:
        print_json(records)
        return
    if not records:
        console.print(
            "no evaluation yet: production_model_evaluation grades each partition loaded "
            "after a model is in production (make load-data)"
        )
        return
    graded = table(
        f"{settings.model_name} graded on new partitions",
        (
            "partition",
            "version",
            "rows",
            "accuracy",
            "weighted F1",
            "macro F1",
            "test F1 - F1",
            "evaluated",
        ),
    )
    for row in records:
        test_f1 = row["model_test_f1"]
        drop = "-" if test_f1 is None else f"{test_f1 - row['weighted_f1']:+.4f}"
        if test_f1 is not None and test_f1 - row["weighted_f1"] > settings.quality_f1_margin:
            drop = f"[red]{drop}[/]"
        graded.add_row(
            row["partition_key"],
            row["model_version"],
            str(row["rows"]),
            f"{row['accuracy']:.4f}",
            f"{row['weighted_f1']:.4f}",
            f"{row['macro_f1']:.4f}",
            drop,
            row["evaluated_at"][:19],
        )
    console.print(graded)


def reproduce(run_id: Annotated[str, typer.Argument(help="MLflow run id of a training.")]) -> None:
    """Rebuild a run's exact data from the audit trail, retrain, compare test predictions."""
    from mlflow.exceptions import MlflowException

    from rakuten_assets.ml.reproduce import reproduce_run

    settings = get_settings()
    try:
        report = reproduce_run(database_engine(), settings.resolved_mlflow_tracking_uri, run_id)
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
