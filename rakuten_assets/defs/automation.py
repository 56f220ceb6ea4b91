"""Automation, on by default under `dagster dev` (except the weekly load):

- `train_on_new_partition`: when a `products` partition P lands, first grade the production
  model on P's rows (`production_model_evaluation`, job `evaluate`), then, once that
  evaluation has finished, train P (balanced_dataset -> trained_model ->
  registered_model_version, promotion by the rule): two runs, in that order, so the
  evaluation never sees a model trained on P. The training follows whatever the evaluation's
  outcome (graded, skipped because no model is in production, or failed: alerted by
  `alert_on_run_failure`); without an evaluation run an hour after asking for it, it trains
  anyway. A sensor rather than an eager automation condition: eager conditions over static
  partitions wait for missing upstream partitions, and most of the 21 are not loaded for
  weeks. Dagster records the materialization of `products` before its blocking checks run,
  and keeps it when they fail; so the sensor waits for the loading run to finish, skips a
  load whose checks did not all pass in that run, and evaluates and trains only a load the
  project database records as `completed` (a failed check reverts the load: `reverted`).
- `retrain_on_drift`: when `drift_metrics` reports drift, retrain the latest loaded partition
  (by the project database), at most once per cooldown (RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS,
  default 6).
- `retrain_on_quality_drop`: the same, when `f1_within_margin_of_test` fails (the production
  model graded on a partition fell more than the margin below its test F1). The two triggers
  share the cooldown: the last retraining either of them launched counts. A breach found by
  an evaluation that `train_on_new_partition` launched needs no retraining of its own: the
  training of that partition follows it.
- `drift_metrics_hourly`: materializes `drift_metrics` every hour.
- `weekly_load` (off by default): loads the next +3% increment (batch `week_N`) on Mondays;
  the next one by the project database, so a reverted partition is loaded again.
- `alert_on_run_failure`: logs an alert for every failed run.

Sensors keep their progress in their cursor (the last event storage id seen), so a restart
neither misses an event nor handles one twice; run keys make requests idempotent.
"""

import json
import time
from collections.abc import Callable

import dagster as dg
from sqlalchemy import Engine

from rakuten_assets.data.partitions import next_partition
from rakuten_assets.db.queries import (
    latest_load_id,
    latest_loaded_partition,
    load_status,
    loaded_partitions,
)
from rakuten_assets.defs.ingestion import ingest_job
from rakuten_assets.defs.monitoring import drift_job
from rakuten_assets.defs.quality import EVALUATION as EVALUATION_NAME
from rakuten_assets.defs.quality import QUALITY_CHECK, evaluate_job
from rakuten_assets.defs.resources import DatabaseResource
from rakuten_assets.defs.training import train_job
from rakuten_assets.settings import get_settings

PRODUCTS = dg.AssetKey("products")
REGISTERED = dg.AssetKey("registered_model_version")
DRIFT = dg.AssetKey("drift_metrics")
EVALUATION = dg.AssetKey(EVALUATION_NAME)
AUTOMATION_TAG = "rakuten/automation"
NEW_PARTITION = "new-partition"
# On the evaluation run of a new load: the storage id of the load's materialization.
PRODUCTS_EVENT_TAG = "rakuten/products_event"
# The automation tags of the retrainings that share the cooldown.
RETRAIN_TRIGGERS = ("drift", "quality")
# No evaluation run this long after asking for one (never launched, deleted): train anyway.
EVALUATION_GRACE_SECONDS = 3600.0


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


def _loaded_partitions(engine: Engine) -> set[str]:
    """Partitions with a completed load in the project database (reverted loads do not count)."""
    with engine.connect() as connection:
        return loaded_partitions(connection)


def _check_events(
    instance: dg.DagsterInstance,
    run_id: str,
    kind: dg.DagsterEventType,
    asset_key: dg.AssetKey = PRODUCTS,
) -> list:
    """The event data (planned or evaluated check) of one kind of check event of an asset
    (`products` by default) in a run."""
    records = instance.get_records_for_run(run_id=run_id, of_type=kind, limit=1000).records
    events = [record.event_log_entry.dagster_event for record in records]
    data = [event.event_specific_data for event in events if event is not None]
    return [d for d in data if getattr(d, "asset_key", None) == asset_key]


def _unpassed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The checks of `products` planned in a run that did not pass (failed or never evaluated).

    Sorted names; empty when every planned check passed (or none was planned).
    """
    planned = _check_events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
    evaluated = _check_events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    passed = {e.check_name for e in evaluated if e.passed or e.blocking is False}
    return sorted({p.check_name for p in planned} - passed)


def _load_id_of(record: dg.EventLogRecord) -> int | None:
    materialization = record.asset_materialization
    value = materialization.metadata.get("load_id") if materialization else None
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, int) else None


TRAIN, WAIT = "train", "wait"


def _new_partition_verdict(
    instance: dg.DagsterInstance, engine: Engine, record: dg.EventLogRecord
) -> str:
    """`train`, `wait` (the loading run is still running) or why the load is not trained."""
    partition = record.partition_key
    if partition is None:
        return "not partitioned"
    # A model of this partition registered after this load (e.g. `rakuten train`
    # run by hand, or `make demo`) already covers it; so does the loading run itself
    # when it also trains (a backfill of the whole lineage).
    if _latest_storage_id(instance, REGISTERED, partition) > record.storage_id:
        return "a model of this partition was registered after the load"
    if _run_trains(instance, record.run_id):
        return "the loading run trains the partition itself"
    if record.run_id:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and not run.is_finished:
            return WAIT  # its blocking checks may still fail and revert the load
        unpassed = _unpassed_checks(instance, record.run_id)
        if unpassed:
            return f"blocking check(s) {', '.join(unpassed)} of the load did not pass"
    # The project database decides: the load of this materialization (or, for an event
    # reported from outside Dagster, the partition's last load) must be completed.
    load_id = _load_id_of(record) or latest_load_id(engine, partition)
    status = load_status(engine, load_id) if load_id is not None else None
    if status is None:
        return f"partition {partition} has no load in the project database"
    if status.status != "completed":
        return f"load {status.load_id} of partition {partition} is {status.status}: {status.reason}"
    return TRAIN


MAX_WAITING = 100


def _evaluation_outcome(
    instance: dg.DagsterInstance, partition: str, storage_id: int, waited: float
) -> str | None:
    """How the evaluation asked for after the load `storage_id` ended (None: not yet)."""
    if _latest_storage_id(instance, EVALUATION, partition) > storage_id:
        return "evaluation recorded"
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=evaluate_job.name, tags={PRODUCTS_EVENT_TAG: str(storage_id)}
        ),
        limit=1,
    )
    if runs:
        run = runs[0]
        return (
            f"evaluation run {run.run_id} {run.status.value.lower()}" if run.is_finished else None
        )
    if waited > EVALUATION_GRACE_SECONDS:
        return f"no evaluation run {waited / 60:.0f} minutes after asking for it"
    return None


def _new_partition_request(job: str, partition: str, storage_id: int) -> dg.RunRequest:
    tags = {AUTOMATION_TAG: NEW_PARTITION}
    if job == evaluate_job.name:
        tags[PRODUCTS_EVENT_TAG] = str(storage_id)
    return dg.RunRequest(
        run_key=f"{job}-{partition}-after-load-{storage_id}",
        job_name=job,
        partition_key=partition,
        tags=tags,
    )


@dg.sensor(
    jobs=[evaluate_job, train_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="For each products partition that lands (once per load), once its loading "
    "run has finished, its blocking checks passed and the database records it completed: "
    "evaluate the production model on it, then, after that evaluation, train it.",
)
def train_on_new_partition(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult:
    cursor = _cursor(context)
    after = int(cursor.get("after", 0))
    waiting = [int(storage_id) for storage_id in cursor.get("waiting", [])]
    # loads whose evaluation was asked for: storage id -> [partition, when it was asked]
    evaluating = {int(k): v for k, v in cursor.get("evaluating", {}).items()}
    records = []
    if waiting:  # loads whose run was still running at an earlier evaluation
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PRODUCTS, storage_ids=waiting),
            limit=len(waiting),
            ascending=True,
        ).records
    records += context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PRODUCTS, after_storage_id=after),
        limit=100,
        ascending=True,
    ).records
    engine = database.engine()
    now = time.time()
    requests, still_waiting, still_evaluating = [], [], {}
    # Loads evaluated since the last tick: their training, now and only now.
    for storage_id, (partition, asked_at) in evaluating.items():
        outcome = _evaluation_outcome(context.instance, partition, storage_id, now - asked_at)
        if outcome is None:
            still_evaluating[storage_id] = [partition, asked_at]
        elif _latest_storage_id(context.instance, REGISTERED, partition) > storage_id:
            context.log.info(
                f"products [{partition}] not trained ({outcome}): a model of this partition "
                "was registered after the load"
            )
        else:
            context.log.info(f"products [{partition}]: {outcome}; training it")
            requests.append(_new_partition_request(train_job.name, partition, storage_id))
    for record in records:
        after = max(after, record.storage_id)
        verdict = _new_partition_verdict(context.instance, engine, record)
        if verdict == WAIT:
            still_waiting.append(record.storage_id)
        elif verdict == TRAIN and record.partition_key is not None:
            # Grade the production model on the new rows first; train at a later tick.
            requests.append(
                _new_partition_request(evaluate_job.name, record.partition_key, record.storage_id)
            )
            still_evaluating[record.storage_id] = [record.partition_key, now]
        else:
            context.log.info(f"products [{record.partition_key}] not trained: {verdict}")
    for name, pending in (("loading run", still_waiting), ("evaluation", still_evaluating)):
        if len(pending) > MAX_WAITING:
            context.log.warning(
                f"{len(pending) - MAX_WAITING} load(s) waited too long for their {name}; "
                "train them by hand (rakuten train --partition P)"
            )
    still_waiting = still_waiting[-MAX_WAITING:]
    still_evaluating = dict(sorted(still_evaluating.items())[-MAX_WAITING:])
    skip = None
    if not requests:
        skip = (
            f"waiting for {len(still_waiting)} loading run(s) and {len(still_evaluating)} "
            "evaluation(s) to finish"
            if still_waiting or still_evaluating
            else "no new products partition to train"
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(
            {
                **cursor,
                "after": after,
                "waiting": still_waiting,
                "evaluating": {str(k): v for k, v in still_evaluating.items()},
            }
        ),
        skip_reason=skip,
    )


def _last_automatic_retraining(instance: dg.DagsterInstance) -> float:
    """Unix time of the last retraining run either trigger launched (0: none)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={AUTOMATION_TAG: list(RETRAIN_TRIGGERS)}), limit=1
    )
    return records[0].create_timestamp.timestamp() if records else 0.0


def _retrain_on_breach(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    key: dg.AssetKey,
    is_breach: Callable[[dg.EventLogRecord], bool],
    trigger: str,
    what: str,
) -> dg.SensorResult:
    """Retrain the latest loaded partition on the last new materialization of `key` that
    `is_breach`, at most once per cooldown (RAKUTEN_DRIFT_RETRAIN_COOLDOWN_HOURS) across the
    retraining triggers. The cursor moves past every materialization read."""
    cursor = _cursor(context)
    after = int(cursor.get("after", 0))
    breaches = []
    for record in _new_materializations(context, key, after):
        after = max(after, record.storage_id)
        if is_breach(record):
            breaches.append(record)
    state = {**cursor, "after": after}
    if not breaches:
        return dg.SensorResult(cursor=json.dumps(state), skip_reason=f"no {what} reported")
    cooldown = get_settings().drift_retrain_cooldown_hours * 3600
    last_retrain = max(
        float(cursor.get("last_retrain_at", 0.0)), _last_automatic_retraining(context.instance)
    )
    now = time.time()
    if now - last_retrain < cooldown:
        wait = (cooldown - (now - last_retrain)) / 60
        return dg.SensorResult(
            cursor=json.dumps(state),
            skip_reason=f"{what} reported, but the cooldown holds for {wait:.0f} more minutes",
        )
    latest = latest_loaded_partition(database.engine())
    if latest is None:
        return dg.SensorResult(cursor=json.dumps(state), skip_reason="no partition loaded")
    event = breaches[-1]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain-{latest}-{trigger}-{event.storage_id}",
                job_name=train_job.name,
                partition_key=latest,
                tags={AUTOMATION_TAG: trigger, f"rakuten/{trigger}_event": str(event.storage_id)},
            )
        ],
        cursor=json.dumps({**state, "last_retrain_at": now}),
    )


def _new_materializations(
    context: dg.SensorEvaluationContext, key: dg.AssetKey, after: int
) -> list[dg.EventLogRecord]:
    return list(
        context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=100, ascending=True
        ).records
    )


@dg.sensor(
    job=train_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain the latest loaded partition when drift_metrics reports drift "
    "(with a cooldown).",
)
def retrain_on_drift(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult:
    def drifted(record: dg.EventLogRecord) -> bool:
        materialization = record.asset_materialization
        verdict = materialization.metadata.get("verdict") if materialization else None
        return verdict is not None and getattr(verdict, "value", verdict) == "drift"

    return _retrain_on_breach(context, database, DRIFT, drifted, "drift", "drift")


def _quality_breach(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> str | None:
    """The failed f1_within_margin_of_test of an evaluation's run, for its partition (None:
    passed, skipped, or not run)."""
    if not record.run_id:
        return None
    evaluations = _check_events(
        instance, record.run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION, EVALUATION
    )
    failed = [
        e
        for e in evaluations
        if e.check_name == QUALITY_CHECK
        and not e.passed
        and e.partition in (None, record.partition_key)
    ]
    return (failed[-1].description or "failed") if failed else None


@dg.sensor(
    job=train_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain the latest loaded partition when f1_within_margin_of_test fails "
    "(the production model fell below its test F1 on a new partition), with the drift "
    "trigger's cooldown.",
)
def retrain_on_quality_drop(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult:
    def dropped(record: dg.EventLogRecord) -> bool:
        breach = _quality_breach(context.instance, record)
        if breach is None:
            return False
        run = context.instance.get_run_by_id(record.run_id) if record.run_id else None
        if run is not None and run.tags.get(AUTOMATION_TAG) == NEW_PARTITION:
            context.log.info(
                f"quality drop on partition {record.partition_key} ({breach}): the training "
                "train_on_new_partition launches after this evaluation is the retraining"
            )
            return False
        context.log.info(f"quality drop on partition {record.partition_key}: {breach}")
        return True

    return _retrain_on_breach(context, database, EVALUATION, dropped, "quality", "quality drop")


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
def weekly_load(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.RunRequest | dg.SkipReason:
    # The project database, not Dagster's materializations: Dagster keeps the materialization
    # of a load whose blocking checks failed (and reverted it); that partition is loaded again.
    key = next_partition(_loaded_partitions(database.engine()))
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
    sensors=[
        train_on_new_partition,
        retrain_on_drift,
        retrain_on_quality_drop,
        alert_on_run_failure,
    ],
    schedules=[drift_metrics_hourly, weekly_load],
)
