"""Serving and monitoring commands: `serve`, `test-api`, `simulate-traffic`, `drift` and
`export-inference-log` (the model in production and what it answers).

`print_api_report` is shared with `demo`, which checks the server it started the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rakuten_assets.cli.dagster_runs import materialize
from rakuten_assets.cli.output import check_mark, console, errors, fail, progress_bar
from rakuten_assets.cli.resources import database_engine
from rakuten_assets.settings import get_settings

if TYPE_CHECKING:
    from rakuten_assets.stack.api_check import ApiReport


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
        f"serving {get_settings().model_name}@production on http://{host}:{port} "
        f"({workers} worker(s)); docs at http://{host}:{port}/docs"
    )
    run(host=host, port=port, workers=workers, api_servers=api_servers)


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
    settings = get_settings()
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


def export_inference_log(
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path(
        "data/monitoring/inference_log.csv"
    ),
) -> None:
    """Write the inference log in the seed's CSV format."""
    from rakuten_assets.db.queries import export_inference_log as export

    rows = export(database_engine(), out)
    console.print(f"wrote {rows:,} prediction(s) to {out}")


def print_api_report(report: ApiReport) -> None:
    """One line per check of a running model server (`test-api`, the end of `demo`)."""
    for check in report.checks:
        console.print(f"{check_mark(check.ok)} {check.name:<44} {check.detail}", highlight=False)


def test_api(
    url: Annotated[str, typer.Option(help="Base URL of the model server.")] = (
        "http://127.0.0.1:8000"
    ),
) -> None:
    """Check the model server end to end: health, info, predictions, bad input, metrics."""
    from rakuten_assets.stack.api_check import check_api

    report = check_api(url, get_settings().api_key)
    print_api_report(report)
    if not report.ok:
        raise fail(f"the API at {url} failed {sum(not c.ok for c in report.checks)} check(s)")
