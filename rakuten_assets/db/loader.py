"""Load one partition's rows into `products` with an audit trail, in one transaction.

A load:
1. takes the project's write lock (PostgreSQL advisory lock / SQLite BEGIN IMMEDIATE), so two
   loads never interleave and load ids follow commit order;
2. refuses to run when a predecessor partition has never been loaded;
3. compares the partition's source rows with what the database holds and writes only the
   difference: new rows are INSERTed, changed rows UPDATEd, rows of this partition that left
   the source DELETEd; every change is a `products_history` row with old and new values;
4. records a `data_loads` row (batch name, counts, source hashes, Dagster run id).

Everything happens in one transaction: a failure anywhere leaves the database as it was.
Re-loading an unchanged partition adds a `data_loads` row and no history (idempotent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Table,
    any_,
    bindparam,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY

from rakuten_assets.data.challenge_files import LABELLED_COLUMNS
from rakuten_assets.data.partitions import batch_name, percentage_of, predecessors
from rakuten_assets.db.engine import exclusive_transaction
from rakuten_assets.db.schema import VALUE_COLUMNS, data_loads, products, products_history

CHUNK = 5_000


class LoadRefused(RuntimeError):
    """The load cannot run (for instance, earlier partitions are missing)."""


@dataclass(frozen=True)
class LoadResult:
    load_id: int
    partition_key: str
    batch_name: str
    percentage: int
    rows_added: int
    rows_updated: int
    rows_deleted: int
    rows_unchanged: int
    total_rows: int
    started_at: datetime
    completed_at: datetime

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["started_at"] = self.started_at.isoformat()
        values["completed_at"] = self.completed_at.isoformat()
        return values


def utcnow() -> datetime:
    return datetime.now(UTC)


def loaded_partitions(connection: Connection) -> set[str]:
    rows = connection.execute(
        select(data_loads.c.partition_key).where(data_loads.c.status == "completed").distinct()
    )
    return {row.partition_key for row in rows}


def _chunks(values: Sequence[int], size: int = CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield [int(v) for v in values[start : start + size]]


def _existing_rows(connection: Connection, key: str, productids: Sequence[int]) -> pd.DataFrame:
    """Rows already stored that this load may touch: those of the partition or with its ids.

    Keys are looked up first and the text only for the rows found, so that a first load
    (nothing stored yet) reads next to nothing.
    """
    ids = [int(v) for v in productids]
    if connection.dialect.name == "postgresql":
        # One array parameter instead of thousands of IN parameters.
        by_id = [products.c.productid == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))]
    else:
        by_id = [products.c.productid.in_(chunk) for chunk in _chunks(ids)]
    found: set[int] = set()
    for condition in [products.c.partition_key == key, *by_id]:
        found.update(connection.execute(select(products.c.productid).where(condition)).scalars())
    columns = [products.c.productid, products.c.partition_key, products.c.source_row] + [
        products.c[name] for name in VALUE_COLUMNS
    ]
    frames = [
        pd.DataFrame(
            connection.execute(select(*columns).where(products.c.productid.in_(chunk))).all(),
            columns=[c.name for c in columns],
        )
        for chunk in _chunks(sorted(found))
    ]
    if not frames:
        return pd.DataFrame(columns=[c.name for c in columns]).set_index("productid")
    return pd.concat(frames, ignore_index=True).set_index("productid")


def _same(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values are equal."""
    both_missing = left.isna().to_numpy() & right.isna().to_numpy()
    equal = left.astype(object).to_numpy() == right.astype(object).to_numpy()
    return both_missing | equal


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[object, ...]]:
    """Plain Python tuples (Series iteration yields Python scalars; missing text is None)."""
    return list(zip(*(frame[column].tolist() for column in columns), strict=True))


def _bulk_insert(
    connection: Connection, table: Table, columns: Sequence[str], rows: list[tuple[object, ...]]
) -> None:
    """COPY on PostgreSQL (the production path, several times faster); executemany elsewhere."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    # Binary COPY: no text formatting on either side (measured ~1.6x faster than text COPY).
    types = [
        re.sub(r"\(.*\)", "", table.c[name].type.compile(dialect=postgresql.dialect())).lower()
        for name in columns
    ]
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


OLD_COLUMNS = tuple(f"old_{c}" for c in VALUE_COLUMNS)
NEW_COLUMNS = tuple(f"new_{c}" for c in VALUE_COLUMNS)
HISTORY_KEY_COLUMNS: tuple[str, ...] = (
    "operation",
    "at",
    "load_id",
    "productid",
    "partition_key",
    "source_row",
)
HISTORY_COLUMNS: tuple[str, ...] = (
    *HISTORY_KEY_COLUMNS,
    *OLD_COLUMNS,
    *NEW_COLUMNS,
)
PRODUCT_COLUMNS: tuple[str, ...] = tuple(c.name for c in products.columns)


def _insert_new_rows(
    connection: Connection, new: pd.DataFrame, key: str, load_id: int, now: datetime
) -> None:
    """INSERT the new rows, then their INSERT history rows.

    The history rows are copied by the database from the rows just written (until the
    UPDATEs below, only they carry this load id), so the text crosses the wire once.
    """
    if new.empty:
        return
    rows = new.assign(created_at=now, updated_at=now, partition_key=key, load_id=load_id)
    _bulk_insert(connection, products, PRODUCT_COLUMNS, _rows(rows, PRODUCT_COLUMNS))
    connection.execute(
        insert(products_history).from_select(
            [*HISTORY_KEY_COLUMNS, *NEW_COLUMNS],
            select(
                literal("INSERT"),
                literal(now, DateTime(timezone=True)),
                products.c.load_id,
                products.c.productid,
                products.c.partition_key,
                products.c.source_row,
                *(products.c[name] for name in VALUE_COLUMNS),
            ).where(products.c.load_id == load_id),
        )
    )


def _validate_delta(delta: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in LABELLED_COLUMNS if c not in delta.columns]
    if missing:
        raise ValueError(f"the partition's rows lack column(s) {missing}")
    if delta["productid"].duplicated().any():
        raise ValueError("the partition's rows repeat a productid")
    frame = delta.loc[:, list(LABELLED_COLUMNS)].copy()
    frame["source_row"] = delta.index.to_numpy()
    frame["description"] = (
        frame["description"].astype(object).where(frame["description"].notna(), None)
    )
    for column in ("productid", "imageid", "prdtypecode", "source_row"):
        frame[column] = frame[column].astype("int64")
    return frame.set_index("productid", drop=False)


def load_partition(
    engine: Engine,
    key: str,
    delta: pd.DataFrame,
    source_hashes: Mapping[str, str],
    dagster_run_id: str | None = None,
) -> LoadResult:
    """Load partition `key` (its rows in `delta`, indexed by the challenge row index)."""
    percentage = percentage_of(key)
    rows = _validate_delta(delta)
    with exclusive_transaction(engine) as connection:
        loaded = loaded_partitions(connection)
        missing = [p for p in predecessors(key) if p not in loaded]
        previous_total = (
            connection.execute(
                select(data_loads.c.total_rows)
                .where(data_loads.c.status == "completed")
                .order_by(data_loads.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            or 0
        )
        if missing:
            raise LoadRefused(
                f"cannot load partition {key}: earlier partition(s) {', '.join(missing)} "
                f"are not loaded yet; load them first (for example: rakuten load-data, or a "
                f"backfill of {missing[0]}..{key} in the Dagster UI)"
            )
        now = utcnow()
        load_id = connection.execute(
            insert(data_loads).returning(data_loads.c.id),
            {
                "batch_name": batch_name(key),
                "partition_key": key,
                "percentage": percentage,
                "source_hashes": dict(source_hashes),
                "dagster_run_id": dagster_run_id,
                "started_at": now,
                "status": "running",
            },
        ).scalar_one()

        existing = _existing_rows(connection, key, rows["productid"].to_numpy())
        known = rows.index.isin(existing.index)
        new = rows.loc[~known]
        present = rows.loc[known]
        before = existing.loc[present.index]
        unchanged_mask = np.ones(len(present), dtype=bool)
        for column in VALUE_COLUMNS:
            unchanged_mask &= _same(present[column], before[column])
        unchanged_mask &= (before["partition_key"] == key).to_numpy()
        changed = present.loc[~unchanged_mask]
        changed_before = before.loc[~unchanged_mask]
        gone = existing.loc[(existing["partition_key"] == key) & ~existing.index.isin(rows.index)]

        _insert_new_rows(connection, new, key, load_id, now)
        if len(changed):
            update_columns = [*LABELLED_COLUMNS, "source_row"]
            connection.execute(
                update(products)
                .where(products.c.productid == bindparam("pid"))
                .values(
                    {name: bindparam(name) for name in VALUE_COLUMNS}
                    | {
                        "partition_key": key,
                        "source_row": bindparam("source_row"),
                        "updated_at": now,
                        "load_id": load_id,
                    }
                ),
                [
                    {"pid": row[0], **dict(zip(update_columns, row, strict=True))}
                    for row in _rows(changed, update_columns)
                ],
            )
        for chunk in _chunks(gone.index.to_numpy()):
            connection.execute(products.delete().where(products.c.productid.in_(chunk)))

        history = _change_history(changed, changed_before, gone, now, load_id, key)
        _bulk_insert(connection, products_history, HISTORY_COLUMNS, _rows(history, HISTORY_COLUMNS))

        # Only loads write `products`, one at a time: the last load's total plus this delta is
        # the row count, without scanning the table (counting grew with the table).
        total_rows = previous_total + len(new) - len(gone)
        completed = utcnow()
        result = LoadResult(
            load_id=int(load_id),
            partition_key=key,
            batch_name=batch_name(key),
            percentage=percentage,
            rows_added=len(new),
            rows_updated=len(changed),
            rows_deleted=len(gone),
            rows_unchanged=int(unchanged_mask.sum()),
            total_rows=int(total_rows),
            started_at=now,
            completed_at=completed,
        )
        connection.execute(
            update(data_loads)
            .where(data_loads.c.id == load_id)
            .values(
                rows_added=result.rows_added,
                rows_updated=result.rows_updated,
                rows_deleted=result.rows_deleted,
                rows_unchanged=result.rows_unchanged,
                total_rows=result.total_rows,
                completed_at=completed,
                status="completed",
            )
        )
    return result


def _change_history(
    changed: pd.DataFrame,
    changed_before: pd.DataFrame,
    gone: pd.DataFrame,
    at: datetime,
    load_id: int,
    key: str,
) -> pd.DataFrame:
    """History rows of UPDATEs (old and new values) and DELETEs (old values)."""

    def part(
        operation: str, ids: pd.DataFrame, old: pd.DataFrame, values: pd.DataFrame | None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "operation": operation,
                "productid": ids.index.to_numpy(dtype="int64"),
                "source_row": ids["source_row"].to_numpy(dtype="int64"),
            }
        )
        for column in VALUE_COLUMNS:
            frame[f"old_{column}"] = old[column].to_numpy(dtype=object)
            frame[f"new_{column}"] = (
                values[column].to_numpy(dtype=object) if values is not None else None
            )
        return frame

    history = pd.concat(
        [part("UPDATE", changed, changed_before, changed), part("DELETE", gone, gone, None)],
        ignore_index=True,
    )
    history["at"] = at
    history["load_id"] = load_id
    history["partition_key"] = key
    return history.astype(object).where(history.notna(), None)


__all__ = ["LoadRefused", "LoadResult", "load_partition", "loaded_partitions"]
