"""`make bench-serve`: load-test the LitServe server with wrk, beside a plain FastAPI baseline.

A model is trained on generated data and aliased `production` in a temporary MLflow store.
wrk (Debian's package) then sends realistic requests, built from the generated
X_test_update.csv, at concurrency 1, 8 and 32, to:
- the project's server (`rakuten serve`: LitServe, batching across requests, metrics,
  inference log), and
- the baseline: one uvicorn process with a plain FastAPI app, one model call per request.
The batch path is measured with requests of 256 listings, and POST /feedback (one correction
a request, at c=1) on predictions the run logged.
Targets (2-core machine): at c=32, >= 2x the baseline's req/s with p99 <= 50 ms; p50 <= 5 ms at
c=1; the batch path >= 10,000 items/s; /feedback p50 < 5 ms. The last line is machine-readable:
    bench-serve c1_p50_ms=<float> c32_rps=<float> c32_p99_ms=<float> baseline_c32_rps=<float> \
ratio=<float> batch_items_per_s=<float> feedback_p50_ms=<float>
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from sqlalchemy import select

from rakuten_assets.benchmarks.ingest import ensure_data
from rakuten_assets.benchmarks.processes import Service, free_port, http, wait_until
from rakuten_assets.data.categories import CODES
from rakuten_assets.data.challenge_files import read_test_set, read_training_set
from rakuten_assets.db.engine import connect
from rakuten_assets.db.schema import inference_log
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingParams, train
from rakuten_assets.ml.registry import ModelRegistry, decide_promotion
from rakuten_assets.ml.tracking import ensure_experiment, log_training_run
from rakuten_assets.settings import get_settings

BIN = Path(sys.executable).parent
MODEL = "bench-classifier"
LUA = """
local bodies = {%(bodies)s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "status_errors": %%d, "socket_errors": %%d,'
    .. ' "p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def lua_script(bodies: list[str], path: Path, endpoint: str = "/predict") -> Path:
    quoted = ",\n".join(f"[==[{body}]==]" for body in bodies)
    path.write_text(LUA % {"bodies": quoted, "path": endpoint})
    return path


def feedback_bodies(database_url: str, limit: int) -> list[str]:
    """Corrections of the last `limit` predictions the server logged: every other one says
    the model was right, the others name another code."""
    engine = connect(database_url)
    query = (
        select(inference_log.c.prediction_id, inference_log.c.predicted_class)
        .where(inference_log.c.prediction_id.is_not(None))
        .order_by(inference_log.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    engine.dispose()
    return [
        json.dumps(
            {
                "prediction_id": prediction_id,
                "prdtypecode": predicted if i % 2 else next(c for c in CODES if c != predicted),
            }
        )
        for i, (prediction_id, predicted) in enumerate(rows)
    ]


def payloads(data_dir: Path, limit: int, batch: int) -> tuple[list[str], list[str]]:
    test = read_test_set(data_dir)
    assert test is not None
    rows = [
        {"designation": d, "description": None if desc is None else str(desc)[:10_000]}
        for d, desc in zip(test["designation"], test["description"], strict=True)
    ][:limit]
    singles = [json.dumps(row, ensure_ascii=False) for row in rows]
    batches = [
        json.dumps(rows[i : i + batch], ensure_ascii=False)
        for i in range(0, len(rows) - batch + 1, batch)
    ][:20]
    return singles, batches


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench-serve needs wrk: `apt-get install wrk` (Debian's package)")
    completed = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return {
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["status_errors"] + result["socket_errors"],
    }


def prepare_model(data_dir: Path, train_rows: int, folder: Path) -> dict[str, str]:
    """Train on generated data, register, alias production; the environment to serve it."""
    store = f"sqlite:///{folder / 'mlflow.db'}"
    artifacts = (folder / "artifacts").as_uri()
    frame = read_training_set(data_dir).frame.head(train_rows).reset_index()
    frame["first_seen"] = range(len(frame))
    dataset = build_balanced_dataset(frame, "100", 1, SplitParams(min_test_rows_per_class=0))
    result = train(dataset, TrainingParams())
    mlflow.set_tracking_uri(store)
    with mlflow.start_run(experiment_id=ensure_experiment(store, "bench", artifacts)) as run:
        uri = log_training_run(result, dataset, {})
    database = f"sqlite:///{folder / 'rakuten.db'}"
    registry = ModelRegistry(store, MODEL, connect(database))
    version = registry.register(uri, run.info.run_id, {})
    registry.promote(str(version.version), decide_promotion(1.0, None, 0.0), "bench-serve")
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "RAKUTEN_MODEL_NAME": MODEL,
        "RAKUTEN_DATABASE_URL": database,
        "RAKUTEN_HOME": str(folder / "home"),
        "RAKUTEN_API_KEY": "",
    }


def start(args: list[str], env: dict[str, str], log: Path, url: str) -> Service:
    service = Service(args, env, log)
    try:
        wait_until(lambda: http("GET", f"{url}/health", timeout=2)[0] == 200, 300, url)
    except TimeoutError:
        service.stop()
        raise SystemExit(f"{args[0]} did not become healthy:\n{service.log()}") from None
    return service


def measure(url: str, singles: Path, batch: Path | None, seconds: int) -> dict[str, Any]:
    wrk(url, singles, 8, 2)  # warm-up
    results: dict[str, Any] = {c: wrk(url, singles, c, seconds) for c in (1, 8, 32)}
    if batch is not None:
        results["batch"] = wrk(url, batch, 4, seconds)
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument(
        "--workers", type=int, default=2, help="inference workers (and HTTP processes)"
    )
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--smoke", action="store_true", help="small model, 2 s runs")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, seconds, train_rows = (
        (3_000, 2, 2_000) if args.smoke else (84_916, args.seconds, args.train_rows)
    )
    data_dir = args.data_dir or get_settings().home_dir / "bench" / f"serve-data-{rows}"
    ensure_data(data_dir, rows, 42, test_rows=rows // 6)

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        env = prepare_model(data_dir, train_rows, folder)
        singles, batches = payloads(data_dir, 2_000, 256)
        single_script = lua_script(singles, folder / "single.lua")
        batch_script = lua_script(batches, folder / "batch.lua")

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start(
            [str(BIN / "rakuten"), "serve", "--port", str(port), "--workers", str(args.workers)],
            env,
            folder / "serve.log",
            url,
        )
        try:
            ours = measure(url, single_script, batch_script, seconds)
            # corrections of what was just served, once the inference log holds it
            wait_until(
                lambda: len(feedback_bodies(env["RAKUTEN_DATABASE_URL"], 1)) == 1, 30, "the log"
            )
            time.sleep(1.0)  # the writers' last flush
            bodies = feedback_bodies(env["RAKUTEN_DATABASE_URL"], 2_000)
            feedback_script = lua_script(bodies, folder / "feedback.lua", "/feedback")
            ours["feedback"] = wrk(url, feedback_script, 1, seconds)
        finally:
            server.stop()

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        baseline = start(
            [
                str(BIN / "uvicorn"),
                "rakuten_assets.benchmarks.serve_baseline:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env,
            folder / "baseline.log",
            f"{url}/docs#",
        )
        try:
            theirs = measure(url, single_script, None, seconds)
        finally:
            baseline.stop()

    print(
        f"{'':<10} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    for label, results in (("litserve", ours), ("baseline", theirs)):
        for concurrency in (1, 8, 32):
            r = results[concurrency]
            print(
                f"{label:<10} {concurrency:>4} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} "
                f"{r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6.0f}"
            )
    batch_items = ours["batch"]["rps"] * 256
    print(
        f"batch path (256 listings per request, c=4): {ours['batch']['rps']:.1f} req/s = "
        f"{batch_items:,.0f} items/s, p99 {ours['batch']['p99_ms']:.1f} ms"
    )
    fb = ours["feedback"]
    print(
        f"feedback (one correction per request, c=1, {len(bodies):,} logged predictions): "
        f"{fb['rps']:.0f} req/s, p50 {fb['p50_ms']:.2f} ms, p99 {fb['p99_ms']:.2f} ms, "
        f"errors {fb['errors']:.0f}"
    )
    summary = {
        "c1_p50_ms": ours[1]["p50_ms"],
        "c32_rps": ours[32]["rps"],
        "c32_p99_ms": ours[32]["p99_ms"],
        "baseline_c32_rps": theirs[32]["rps"],
        "ratio": ours[32]["rps"] / theirs[32]["rps"],
        "batch_items_per_s": batch_items,
        "feedback_p50_ms": fb["p50_ms"],
    }
    checks = {
        "c32 >= 2x baseline": summary["ratio"] >= 2,
        "c32 p99 <= 50 ms": summary["c32_p99_ms"] <= 50,
        "c1 p50 <= 5 ms": summary["c1_p50_ms"] <= 5,
        "batch >= 10,000 items/s": batch_items >= 10_000,
        "feedback p50 < 5 ms": summary["feedback_p50_ms"] < 5,
    }
    print("targets: " + ", ".join(f"{k}: {'PASS' if v else 'MISS'}" for k, v in checks.items()))
    print("bench-serve " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()), flush=True)
    return summary


if __name__ == "__main__":
    main()
