"""Runs of the code location's jobs from the CLI, on the project's persistent Dagster instance.

Commands that change data go through here, so every run they make shows in the Dagster UI
exactly like a run launched from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rakuten_assets.cli.output import console, fail
from rakuten_assets.settings import get_settings


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the repository root (where dagster.yaml lives) unless it is set."""
    if not os.environ.get("DAGSTER_HOME"):
        if Path("dagster.yaml").is_file():
            home = Path.cwd()
        else:  # an installed package run outside the repository: a private instance
            home = get_settings().dagster_storage_dir / "home"
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
