"""`make bench-train`: `balanced_dataset` + `trained_model` on the 100% partition.

The default data (84,916 generated rows) is loaded into a temporary SQLite database, then
three runs use the same snapshot, each in a fresh child process so that its peak memory is
its own:
- default: the two Dagster assets, materialized with the "default" preset (dataset, word and
  character TF-IDF, calibrated linear SVM with sample weights, evaluation, MLflow logging of
  params, metrics, artifacts and the skops model);
- seed-preset: the same assets with the "seed" preset (5,000-word TF-IDF, logistic regression);
- seed: the seed project's way (that configuration fitted on every oversampled row), dataset
  and evaluation included, no logging.
Target on a 2-core machine: default under 60 s and 4 GB. The last line is machine-readable:
    bench-train rows=<int> wall_s=<float> peak_mb=<float> weighted_f1=<float>
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from rakuten_assets.benchmarks.ingest import ensure_data
from rakuten_assets.data.categories import REAL_TRAIN_ROWS
from rakuten_assets.data.challenge_files import read_training_set
from rakuten_assets.data.partitions import PARTITION_KEYS, partition_delta
from rakuten_assets.settings import get_settings

TARGET_SECONDS = 60.0
TARGET_MB = 4096.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _project(database_url: str, folder: str, min_test_rows: int, preset: str) -> dict[str, Any]:
    import dagster as dg

    from rakuten_assets.defs import training
    from rakuten_assets.defs.resources import DatabaseResource, MlflowResource, mlflow_tracking

    store = f"sqlite:///{folder}/mlflow.db"
    artifacts = Path(folder, "artifacts").as_uri()
    resources = {
        "database": DatabaseResource(url=database_url),
        "mlflow_registry": MlflowResource(tracking_uri=store, artifact_root=artifacts),
        "mlflow_tracking": mlflow_tracking.configured(
            {"experiment_name": "bench", "mlflow_tracking_uri": store, "artifact_root": artifacts}
        ),
    }
    # Create the MLflow store before timing: its schema migrations are a one-off.
    resources["mlflow_registry"].experiment_id()
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [training.balanced_dataset, training.trained_model],
            partition_key=PARTITION_KEYS[-1],
            instance=instance,
            resources=resources,
            run_config={
                "ops": {
                    "balanced_dataset": {"config": {"min_test_rows_per_class": min_test_rows}},
                    "trained_model": {"config": {"preset": preset}},
                },
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
        wall = time.perf_counter() - started
        assert result.success
        metadata = instance.get_latest_materialization_event(
            dg.AssetKey("trained_model")
        ).asset_materialization.metadata  # type: ignore[union-attr]
    return {"wall_s": wall, "weighted_f1": metadata["weighted_f1"].value, "peak_mb": _peak_mb()}


def _seed(database_url: str, folder: str, min_test_rows: int) -> dict[str, Any]:
    from rakuten_assets.db.engine import connect
    from rakuten_assets.db.queries import latest_load_id, snapshot
    from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
    from rakuten_assets.ml.model import (
        SEED_PARAMS,
        evaluate,
        fit_seed_configuration,
        predict_test,
    )

    engine = connect(database_url)
    started = time.perf_counter()
    key = PARTITION_KEYS[-1]
    load_id = latest_load_id(engine, key)
    assert load_id is not None
    dataset = build_balanced_dataset(
        snapshot(engine, load_id=load_id), key, load_id, SplitParams(min_test_rows_per_class=0)
    )
    pipeline = fit_seed_configuration(dataset, SEED_PARAMS)
    predictions = predict_test(pipeline, dataset)
    f1 = evaluate(predictions["prdtypecode"], predictions["predicted"].to_numpy()).weighted_f1
    return {"wall_s": time.perf_counter() - started, "weighted_f1": f1, "peak_mb": _peak_mb()}


def _child(name: str, args: tuple[Any, ...], queue: multiprocessing.Queue) -> None:
    target = {"project": _project, "seed": _seed}[name]
    queue.put(target(*args))


def run_isolated(name: str, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, args, queue))
    process.start()
    result = queue.get(timeout=3600)
    process.join(timeout=60)
    if process.exitcode != 0:
        raise RuntimeError(f"the {name} configuration failed (exit code {process.exitcode})")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=REAL_TRAIN_ROWS)
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument("--smoke", action="store_true", help="3,000 rows, to check it runs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-seed", action="store_true", help="do not run the seed config")
    args = parser.parse_args(argv)
    rows = 3_000 if args.smoke else args.rows
    min_test_rows = 0 if args.smoke else 20
    data_dir = args.data_dir or get_settings().home_dir / "bench" / f"data-{rows}-{args.seed}"
    ensure_data(data_dir, rows, args.seed)

    from rakuten_assets.db.engine import connect
    from rakuten_assets.db.loader import load_partition

    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/rakuten.db"
        engine = connect(database_url)
        training_set = read_training_set(data_dir)
        for key in PARTITION_KEYS:
            delta = partition_delta(training_set, key)
            load_partition(engine, key, delta.frame, delta.source_hashes)
        engine.dispose()
        print(f"loaded {len(training_set):,} rows; timing the 100% partition ...", flush=True)

        results = {
            "default": run_isolated("project", database_url, folder, min_test_rows, "default")
        }
        if not args.skip_seed:
            results["seed-preset"] = run_isolated(
                "project", database_url, folder, min_test_rows, "seed"
            )
            results["seed"] = run_isolated("seed", database_url, folder, min_test_rows)

    print(f"{'configuration':<14} {'wall_s':>8} {'peak_mb':>9} {'weighted_f1':>12}")
    for name, result in results.items():
        print(
            f"{name:<14} {result['wall_s']:>8.1f} {result['peak_mb']:>9.0f} "
            f"{result['weighted_f1']:>12.4f}"
        )
    project = results["default"]
    verdict = (
        "PASS" if project["wall_s"] < TARGET_SECONDS and project["peak_mb"] < TARGET_MB else "MISS"
    )
    print(
        f"target (full data): < {TARGET_SECONDS:.0f} s and < {TARGET_MB / 1024:.0f} GB: {verdict}"
    )
    print(
        f"bench-train rows={len(training_set)} wall_s={project['wall_s']:.3f} "
        f"peak_mb={project['peak_mb']:.1f} weighted_f1={project['weighted_f1']:.4f}",
        flush=True,
    )
    return {"rows": len(training_set), **project, "seed": results.get("seed")}


if __name__ == "__main__":
    main()
