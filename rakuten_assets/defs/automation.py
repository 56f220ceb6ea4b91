"""Automation, on by default under `dagster dev` (except the weekly load):

- `train_on_new_partition`: when a `products` partition lands, train that partition
  (balanced_dataset -> trained_model -> registered_model_version, promotion by the rule).
  A sensor rather than an eager automation condition: eager conditions over static partitions
  wait for missing upstream partitions, and most of the 21 are not loaded for weeks.
- `retrain_on_drift`: when `drift_metrics` reports drift, retrain the latest loaded partition,
  at most once per cooldown (RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS, default 6).
- `drift_metrics_hourly`: materializes `drift_metrics` every hour.
- `weekly_load` (off by default): loads the next +3% increment (batch `week_N`) on Mondays.
- `alert_on_run_failure`: logs an alert for every failed run.

Sensors keep their progress in their cursor (the last event storage id seen), so a restart
neither misses an event nor handles one twice; run keys make requests idempotent.
"""

import json
import time

import dagster as dg

from rakuten_assets.data.partitions import PARTITION_KEYS, next_partition
from rakuten_assets.defs.ingestion import ingest_job
from rakuten_assets.defs.monitoring import drift_job
from rakuten_assets.defs.training import train_job
from rakuten_assets.settings import Settings

PRODUCTS = dg.AssetKey("products")
REGISTERED = dg.AssetKey("registered_model_version")
DRIFT = dg.AssetKey("drift_metrics")
AUTOMATION_TAG = "rakuten/automation"


def _cursor(context: dg.SensorEvaluationContext) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].storage_id if records else 0


def _run_trains(instance: dg.DagsterInstance, run_id: str | None) -> bool:
    """Whether the run planned to materialize registered_model_version (it trains itself)."""
    if not run_id:
        return False  # a runless event (reported from outside Dagster)
    planned = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    return any(
        record.event_log_entry.dagster_event is not None
        and record.event_log_entry.dagster_event.asset_key == REGISTERED
        for record in planned
    )


def _materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


@dg.sensor(
    job=train_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Train each products partition that lands (once per load).",
)
def train_on_new_partition(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = _cursor(context)
    after = int(cursor.get("after", 0))
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PRODUCTS, after_storage_id=after),
        limit=100,
        ascending=True,
    )
    requests = []
    for record in result.records:
        after = max(after, record.storage_id)
        partition = record.partition_key
        if partition is None:
            continue
        # A model of this partition registered after this load (e.g. `rakuten train`
        # run by hand, or `make demo`) already covers it; so does the loading run itself
        # when it also trains (a backfill of the whole lineage).
        if _latest_storage_id(context.instance, REGISTERED, partition) > record.storage_id:
            continue
        if _run_trains(context.instance, record.run_id):
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"train-{partition}-after-load-{record.storage_id}",
                partition_key=partition,
                tags={AUTOMATION_TAG: "new-partition"},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({**cursor, "after": after}),
        skip_reason=None if requests else "no new products partition to train",
    )


@dg.sensor(
    job=train_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain the latest loaded partition when drift_metrics reports drift "
    "(with a cooldown).",
)
def retrain_on_drift(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = _cursor(context)
    after = int(cursor.get("after", 0))
    last_retrain = float(cursor.get("last_retrain_at", 0.0))
    cooldown = Settings().drift_retrain_cooldown_hours * 3600
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT, after_storage_id=after), limit=100, ascending=True
    )
    drifted = []
    for record in result.records:
        after = max(after, record.storage_id)
        materialization = record.asset_materialization
        verdict = materialization.metadata.get("verdict") if materialization else None
        if verdict is not None and getattr(verdict, "value", verdict) == "drift":
            drifted.append(record)
    state = {**cursor, "after": after}
    if not drifted:
        return dg.SensorResult(cursor=json.dumps(state), skip_reason="no drift reported")
    now = time.time()
    if now - last_retrain < cooldown:
        wait = (cooldown - (now - last_retrain)) / 60
        return dg.SensorResult(
            cursor=json.dumps(state),
            skip_reason=f"drift reported, but the cooldown holds for {wait:.0f} more minutes",
        )
    loaded = _materialized_partitions(context.instance, PRODUCTS)
    latest = max((key for key in PARTITION_KEYS if key in loaded), default=None)
    if latest is None:
        return dg.SensorResult(cursor=json.dumps(state), skip_reason="no partition loaded")
    report = drifted[-1]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain-{latest}-drift-{report.storage_id}",
                partition_key=latest,
                tags={AUTOMATION_TAG: "drift", "rakuten/drift_event": str(report.storage_id)},
            )
        ],
        cursor=json.dumps({**state, "last_retrain_at": now}),
    )


drift_metrics_hourly = dg.ScheduleDefinition(
    name="drift_metrics_hourly",
    job=drift_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Materialize drift_metrics every hour.",
)


@dg.schedule(
    job=ingest_job,
    cron_schedule="0 6 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Load the next +3% increment every Monday at 06:00 (batch week_N). Off by "
    "default: turn it on in the UI (Automation) to replay the challenge's weekly arrivals.",
)
def weekly_load(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    loaded = _materialized_partitions(context.instance, PRODUCTS)
    key = next_partition(loaded)
    if key is None:
        return dg.SkipReason("all 21 partitions are loaded (100% of the data)")
    when = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"weekly-load-{key}-{when:%Y%m%d}" if when else None,
        partition_key=key,
        tags={AUTOMATION_TAG: "weekly-load"},
    )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Log an alert for every failed run (the hook to page someone).",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    steps = ", ".join(event.step_key or "?" for event in context.get_step_failure_events())
    context.log.error(
        f"ALERT: run {run.run_id} of job {run.job_name} failed"
        + (
            f" [partition {run.tags.get('dagster/partition')}]"
            if run.tags.get("dagster/partition")
            else ""
        )
        + (f" in step(s) {steps}" if steps else "")
        + f": {context.failure_event.message}"
    )


defs = dg.Definitions(
    sensors=[train_on_new_partition, retrain_on_drift, alert_on_run_failure],
    schedules=[drift_metrics_hourly, weekly_load],
)
