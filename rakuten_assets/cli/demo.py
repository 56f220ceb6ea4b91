"""`rakuten demo`: the whole platform on this machine in one command.

Each step calls the function its own command calls (data, load, training, services, API
check), so the demo does what the commands do and skips what is already done.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rakuten_assets.cli.data import load_initial_partition, require_row_counts, write_synthetic_data
from rakuten_assets.cli.output import console, fail
from rakuten_assets.cli.resources import model_registry
from rakuten_assets.cli.serving import print_api_report
from rakuten_assets.cli.stack import (
    DagsterPort,
    MlflowPort,
    ServingPort,
    Workers,
    local_stack,
    start_services,
)
from rakuten_assets.cli.training import train_and_register
from rakuten_assets.settings import get_settings


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
    from rakuten_assets.data.challenge_files import challenge_files_present
    from rakuten_assets.stack.api_check import check_api

    settings = get_settings()
    console.rule("1/5 data")
    if challenge_files_present(settings.data_dir):
        console.print(f"challenge files found in {settings.data_dir}/: using them")
    else:
        require_row_counts(rows, test_rows)
        write_synthetic_data(settings.data_dir, rows, test_rows, seed=42)
    console.rule("2/5 database and partition 040")
    load_initial_partition(reload=False)
    console.rule("3/5 a production model")
    registry = model_registry()
    production = registry.production()
    if production is not None:
        console.print(f"{settings.model_name} v{production.version} is production already")
    else:
        train_and_register(promote=True)
        if registry.production() is None:
            raise fail("the trained model was not promoted (see `rakuten models`)")
    console.rule("4/5 services")
    stack = local_stack(dagster_port, mlflow_port, serving_port, workers)
    start_services(stack, list(stack.specs))
    console.rule("5/5 a few predictions")
    report = check_api(stack.url("serving"), settings.api_key)
    print_api_report(report)
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
