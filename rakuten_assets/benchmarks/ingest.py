"""`make bench-ingest`: load the 21 partitions of the default data into PostgreSQL.

Measures the project's loader (diff, COPY, audit trail, one transaction per partition) and, in
the same run on the same rows, a baseline that writes one INSERT per product and one per
history row, the way a first version usually does. Each side gets a fresh database.
Target: 100% of the 84,916 rows in under 10 s and at least 10x the baseline.
The last line is machine-readable:
    bench-ingest rows=<int> total_s=<float> rows_per_s=<float> baseline_rows_per_s=<float> speedup=<float>
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from rakuten_assets.data.categories import REAL_TRAIN_ROWS
from rakuten_assets.data.challenge_files import (
    X_TEST_FILE,
    challenge_files_present,
    read_training_set,
)
from rakuten_assets.data.partitions import PARTITION_KEYS, PartitionDelta, partition_delta
from rakuten_assets.db.engine import connect, normalize_url
from rakuten_assets.db.loader import load_partition, utcnow
from rakuten_assets.db.schema import VALUE_COLUMNS
from rakuten_assets.settings import get_settings

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_SECONDS = 10.0
TARGET_SPEEDUP = 10.0


@contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"rakuten_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(normalize_url(admin_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def baseline_load(engine: Engine, delta: PartitionDelta) -> None:
    """One INSERT statement per product and per history row, in one transaction."""
    now = utcnow()
    key = delta.key
    product_sql = (
        "INSERT INTO products (productid, imageid, designation, description, prdtypecode, "
        "partition_key, source_row, created_at, updated_at, load_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    history_sql = (
        "INSERT INTO products_history (operation, at, load_id, productid, partition_key, "
        "source_row, new_imageid, new_designation, new_description, new_prdtypecode) "
        "VALUES ('INSERT', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with engine.begin() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            "INSERT INTO data_loads (batch_name, partition_key, percentage, source_hashes, "
            "started_at, status) VALUES (%s, %s, %s, '{}', %s, 'running') RETURNING id",
            (key, key, int(key), now),
        )
        load_id = cursor.fetchone()[0]
        frame = delta.frame
        for row_number, row in zip(frame.index, frame.itertuples(index=False), strict=True):
            values = [getattr(row, c) for c in VALUE_COLUMNS]
            values[2] = values[2] if isinstance(values[2], str) else None
            imageid, designation, description, code = values
            cursor.execute(
                product_sql,
                (
                    int(row.productid),
                    int(imageid),
                    designation,
                    description,
                    int(code),
                    key,
                    int(row_number),
                    now,
                    now,
                    load_id,
                ),
            )
            cursor.execute(
                history_sql,
                (
                    now,
                    load_id,
                    int(row.productid),
                    key,
                    int(row_number),
                    int(imageid),
                    designation,
                    description,
                    int(code),
                ),
            )
        cursor.execute(
            "UPDATE data_loads SET status = 'completed', completed_at = %s WHERE id = %s",
            (utcnow(), load_id),
        )


def ensure_data(data_dir: Path, rows: int, seed: int, test_rows: int = 0) -> None:
    """Generate the benchmark's data once (kept under .rakuten/bench between runs)."""
    if challenge_files_present(data_dir) and (test_rows == 0 or (data_dir / X_TEST_FILE).exists()):
        return
    from rakuten_assets.data.synth.generator import SynthOptions, synthesize

    print(f"generating {rows:,} rows into {data_dir} (seed {seed}) ...", flush=True)
    synthesize(data_dir, SynthOptions(rows=rows, test_rows=test_rows, seed=seed))


def run(rows: int, seed: int, data_dir: Path, admin_url: str) -> dict[str, float]:
    ensure_data(data_dir, rows, seed)
    training = read_training_set(data_dir)
    deltas = [partition_delta(training, key) for key in PARTITION_KEYS]
    timings: list[tuple[str, int, float, float]] = []

    with temporary_database(admin_url) as url:
        engine = connect(url)
        ours = []
        for delta in deltas:
            start = time.perf_counter()
            load_partition(engine, delta.key, delta.frame, delta.source_hashes)
            ours.append(time.perf_counter() - start)
        engine.dispose()
    with temporary_database(admin_url) as url:
        engine = connect(url)
        base = []
        for delta in deltas:
            start = time.perf_counter()
            baseline_load(engine, delta)
            base.append(time.perf_counter() - start)
        engine.dispose()

    print(
        f"{'partition':>9} {'rows':>7} {'loader_s':>9} {'rows/s':>9} "
        f"{'baseline_s':>10} {'rows/s':>9}"
    )
    for delta, mine, theirs in zip(deltas, ours, base, strict=True):
        n = len(delta.frame)
        timings.append((delta.key, n, mine, theirs))
        print(
            f"{delta.key:>9} {n:>7} {mine:>9.3f} {n / mine:>9,.0f} {theirs:>10.3f} "
            f"{n / theirs:>9,.0f}"
        )
    total_rows = len(training)
    total_s = sum(ours)
    baseline_s = sum(base)
    result = {
        "rows": total_rows,
        "total_s": total_s,
        "rows_per_s": total_rows / total_s,
        "baseline_rows_per_s": total_rows / baseline_s,
        "speedup": baseline_s / total_s,
    }
    print(
        f"{'total':>9} {total_rows:>7} {total_s:>9.3f} {result['rows_per_s']:>9,.0f} "
        f"{baseline_s:>10.3f} {result['baseline_rows_per_s']:>9,.0f}"
    )
    verdict = "PASS" if total_s < TARGET_SECONDS and result["speedup"] >= TARGET_SPEEDUP else "MISS"
    print(
        f"target (full data): < {TARGET_SECONDS:.0f} s and >= {TARGET_SPEEDUP:.0f}x baseline: "
        f"{verdict} ({total_s:.2f} s, {result['speedup']:.1f}x)"
    )
    print(
        f"bench-ingest rows={total_rows} total_s={total_s:.3f} "
        f"rows_per_s={result['rows_per_s']:.1f} "
        f"baseline_rows_per_s={result['baseline_rows_per_s']:.1f} "
        f"speedup={result['speedup']:.2f}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=REAL_TRAIN_ROWS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--smoke", action="store_true", help="2,000 rows, to check it runs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("RAKUTEN_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="a PostgreSQL URL of a user allowed to create databases",
    )
    args = parser.parse_args(argv)
    rows = 2_000 if args.smoke else args.rows
    data_dir = args.data_dir or get_settings().home_dir / "bench" / f"data-{rows}-{args.seed}"
    return run(rows, args.seed, data_dir, args.postgres_url)


if __name__ == "__main__":
    main()
