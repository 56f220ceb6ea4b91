"""The audited loader on SQLite and PostgreSQL: idempotency, history, refusal, concurrency,
rollback, point-in-time snapshots, the blocking rules applied before anything is written, and
the revert of a load whose blocking check fails after the commit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

from rakuten_assets.data import quality
from rakuten_assets.data.partitions import PARTITION_KEYS, next_partition
from rakuten_assets.db import loader
from rakuten_assets.db.loader import (
    LoadRefused,
    enforce_blocking_rule,
    load_partition,
    loaded_partitions,
    revert_load,
)
from rakuten_assets.db.queries import (
    current_products,
    latest_load_id,
    load_history,
    load_status,
    snapshot,
)
from rakuten_assets.db.schema import data_loads, products, products_history
from rakuten_assets_tests.support.listings import HASHES, N, delta, listings


def count(engine: Engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        query = select(func.count()).select_from(table)
        for condition in where:
            query = query.where(condition)
        return int(connection.execute(query).scalar_one())


def table_state(engine: Engine) -> tuple[int, int, int]:
    return count(engine, products), count(engine, products_history), count(engine, data_loads)


def test_first_load_inserts_rows_with_audit_trail(engine: Engine) -> None:
    frame = listings()
    result = load_partition(engine, "040", delta(frame, "040"), HASHES, dagster_run_id="run-1")

    assert (result.rows_added, result.rows_updated, result.rows_deleted) == (160, 0, 0)
    assert result.total_rows == 160
    assert result.batch_name == "initial"
    assert count(engine, products_history, products_history.c.operation == "INSERT") == 160
    history = load_history(engine)
    assert history.loc[0, "status"] == "completed"
    assert history.loc[0, "dagster_run_id"] == "run-1"
    assert history.loc[0, "source_hashes"] == HASHES
    assert history.loc[0, "completed_at"] >= history.loc[0, "started_at"]
    stored = current_products(engine).set_index("productid")
    expected = delta(frame, "040").set_index("productid")
    assert stored.loc[expected.index, "designation"].tolist() == expected["designation"].tolist()
    assert stored["description"].isna().sum() == expected["description"].isna().sum()


def test_reloading_a_partition_is_idempotent(engine: Engine) -> None:
    frame = listings()
    load_partition(engine, "040", delta(frame, "040"), HASHES)
    before = table_state(engine)
    again = load_partition(engine, "040", delta(frame, "040"), HASHES)

    assert (again.rows_added, again.rows_updated, again.rows_deleted) == (0, 0, 0)
    assert again.rows_unchanged == 160
    after = table_state(engine)
    assert after[:2] == before[:2]  # no product, no history row added
    assert after[2] == before[2] + 1  # the load itself is recorded


def test_changed_and_removed_source_rows_become_update_and_delete(engine: Engine) -> None:
    frame = listings()
    rows = delta(frame, "040").copy()
    load_partition(engine, "040", rows, HASHES)
    changed = rows.copy()
    first, second = changed.index[:2]
    changed.loc[first, "designation"] = "Nouveau titre"
    changed.loc[second, "description"] = None
    removed = changed.index[-1]
    result = load_partition(engine, "040", changed.drop(index=removed), HASHES)

    assert (result.rows_added, result.rows_updated, result.rows_deleted) == (0, 2, 1)
    assert result.total_rows == count(engine, products) == 159
    with engine.connect() as connection:
        updates = connection.execute(
            select(products_history).where(products_history.c.operation == "UPDATE")
        ).all()
        deletes = connection.execute(
            select(products_history).where(products_history.c.operation == "DELETE")
        ).all()
    by_id = {row.productid: row for row in updates}
    row = by_id[int(rows.loc[first, "productid"])]
    assert (row.old_designation, row.new_designation) == (
        rows.loc[first, "designation"],
        "Nouveau titre",
    )
    row = by_id[int(rows.loc[second, "productid"])]
    assert row.old_description == rows.loc[second, "description"]
    assert row.new_description is None
    assert [d.productid for d in deletes] == [int(rows.loc[removed, "productid"])]
    assert deletes[0].new_designation is None
    assert deletes[0].old_designation == rows.loc[removed, "designation"]
    assert count(engine, products) == 159


def test_missing_predecessors_are_refused_by_name(engine: Engine) -> None:
    frame = listings()
    with pytest.raises(LoadRefused, match=r"earlier partition\(s\) 040, 043 are not loaded"):
        load_partition(engine, "046", delta(frame, "046"), HASHES)
    assert table_state(engine) == (0, 0, 0)
    load_partition(engine, "040", delta(frame, "040"), HASHES)
    with pytest.raises(LoadRefused, match=r"partition\(s\) 043 are"):
        load_partition(engine, "046", delta(frame, "046"), HASHES)


def test_all_partitions_load_to_the_full_table(engine: Engine) -> None:
    frame = listings()
    for key in PARTITION_KEYS:
        result = load_partition(engine, key, delta(frame, key), HASHES)
        assert result.total_rows == N * int(key) // 100 == count(engine, products)
    assert load_history(engine)["batch_name"].tolist()[-1] == "week_21"
    # no foreign keys on the big tables: every load_id must still name a committed load
    with engine.connect() as connection:
        load_ids = set(connection.execute(select(data_loads.c.id)).scalars())
        for table in (products, products_history):
            assert set(connection.execute(select(table.c.load_id).distinct()).scalars()) <= (
                load_ids
            )


def test_failure_mid_load_leaves_the_database_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = listings()
    load_partition(engine, "040", delta(frame, "040"), HASHES)
    before = table_state(engine)
    snapshot_before = current_products(engine)
    original = loader._bulk_insert

    def fail_on_history(connection, table, columns, rows):  # type: ignore[no-untyped-def]
        if table is products_history:
            raise RuntimeError("disk full while writing the history")
        original(connection, table, columns, rows)

    monkeypatch.setattr(loader, "_bulk_insert", fail_on_history)
    with pytest.raises(RuntimeError, match="disk full"):
        load_partition(engine, "043", delta(frame, "043"), HASHES)
    changed = delta(frame, "040").copy()
    changed["designation"] = "changé"
    with pytest.raises(RuntimeError, match="disk full"):
        load_partition(engine, "040", changed, HASHES)

    assert table_state(engine) == before
    pd.testing.assert_frame_equal(current_products(engine), snapshot_before)


def test_concurrent_loads_of_the_same_partition_do_not_duplicate(engine: Engine) -> None:
    frame = listings(1_000)
    rows = delta(frame, "040")
    barrier = threading.Barrier(4)
    results, failures = [], []

    def load() -> None:
        barrier.wait()
        try:
            results.append(load_partition(engine, "040", rows, HASHES))
        except Exception as error:  # collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(r.rows_added for r in results) == [0, 0, 0, 400]
    assert {r.total_rows for r in results} == {400}
    assert count(engine, products) == 400
    assert count(engine, products_history) == 400
    assert count(engine, data_loads) == 4
    ids = sorted(r.load_id for r in results)
    adding = next(r for r in results if r.rows_added)
    assert adding.load_id == ids[0]  # load ids follow the order of the lock


def test_snapshot_returns_rows_as_of_a_load_with_their_old_values(engine: Engine) -> None:
    frame = listings()
    first = load_partition(engine, "040", delta(frame, "040"), HASHES)
    second = load_partition(engine, "043", delta(frame, "043"), HASHES)
    as_of_second = snapshot(engine, load_id=second.load_id)

    changed = delta(frame, "040").copy()
    target = changed.index[0]
    changed.loc[target, "prdtypecode"] = 10 if changed.loc[target, "prdtypecode"] != 10 else 40
    changed.loc[target, "designation"] = "Titre corrigé"
    gone = changed.index[1]
    third = load_partition(engine, "040", changed.drop(index=gone), HASHES)
    load_partition(engine, "046", delta(frame, "046"), HASHES)

    again = snapshot(engine, load_id=second.load_id)
    pd.testing.assert_frame_equal(again, as_of_second)
    assert len(snapshot(engine, load_id=first.load_id)) == 160
    assert len(again) == 172
    pid = int(frame.loc[target, "productid"])
    old = again.set_index("productid").loc[pid]
    assert old["designation"] == frame.loc[target, "designation"]
    assert int(frame.loc[gone, "productid"]) in set(again["productid"])

    after_fix = snapshot(engine, load_id=third.load_id).set_index("productid")
    assert after_fix.loc[pid, "designation"] == "Titre corrigé"
    assert int(frame.loc[gone, "productid"]) not in after_fix.index
    assert len(after_fix) == 171

    now = snapshot(engine).drop(columns=["partition_key", "first_seen"]).reset_index(drop=True)
    table = current_products(engine).drop(columns="partition_key").reset_index(drop=True)
    pd.testing.assert_frame_equal(now, table, check_dtype=False)
    assert latest_load_id(engine, "040") == third.load_id


def test_snapshot_as_of_a_timestamp(engine: Engine) -> None:
    frame = listings()
    first = load_partition(engine, "040", delta(frame, "040"), HASHES)
    second = load_partition(engine, "043", delta(frame, "043"), HASHES)
    assert len(snapshot(engine, at=first.completed_at)) == 160
    assert len(snapshot(engine, at=second.completed_at)) == 172
    assert snapshot(engine, at=first.started_at - timedelta(seconds=1)).empty


def _load_in_process(url: str, barrier, queue) -> None:  # type: ignore[no-untyped-def]
    from rakuten_assets.db.engine import make_engine

    engine = make_engine(url)
    barrier.wait()
    try:
        result = load_partition(engine, "040", delta(listings(1_000), "040"), HASHES)
        queue.put(result.rows_added)
    except Exception as error:  # reported to the parent
        queue.put(repr(error))
    finally:
        engine.dispose()


def test_concurrent_loads_from_separate_processes(engine: Engine, database_url: str) -> None:
    """Two Dagster runs of one partition are two processes: the lock must hold across them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_load_in_process, args=(database_url, barrier, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    outcomes = sorted(queue.get(timeout=5) for _ in workers)
    assert outcomes == [0, 400]
    assert count(engine, products) == 400
    assert count(engine, products_history) == 400


# -- blocking rules before the commit, and the revert of a load after it -------------------


def full_table(engine: Engine) -> pd.DataFrame:
    """Every column of `products` (times, load ids, source rows included), by productid."""
    with engine.connect() as connection:
        rows = connection.execute(select(products).order_by(products.c.productid)).all()
    return pd.DataFrame(rows, columns=[c.name for c in products.columns])


def loaded(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return loaded_partitions(connection)


def _empty_designations(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[int], int | None]:
    rows.loc[rows.index[3], "designation"] = ""
    rows.loc[rows.index[7], "designation"] = "   "
    return rows, [int(rows.loc[rows.index[i], "productid"]) for i in (3, 7)], None


def _label_outside_codes(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[int], int | None]:
    rows.loc[rows.index[5], "prdtypecode"] = 11
    return rows, [int(rows.loc[rows.index[5], "productid"])], None


def _repeated_productid(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[int], int | None]:
    rows.loc[rows.index[2], "productid"] = rows.loc[rows.index[1], "productid"]
    return rows, [int(rows.loc[rows.index[1], "productid"])] * 2, None


def _short_partition(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[int], int | None]:
    return rows, [], len(rows) + 1


@pytest.mark.parametrize(
    ("rule", "spoil", "failing"),
    [
        ("no_empty_designation", _empty_designations, 2),
        ("labels_within_codes", _label_outside_codes, 1),
        ("productid_unique", _repeated_productid, 2),
        ("row_count_matches_partition", _short_partition, 1),
    ],
)
def test_rows_breaking_a_blocking_rule_refuse_the_load_and_write_nothing(
    engine: Engine, rule: str, spoil, failing: int
) -> None:  # type: ignore[no-untyped-def]
    frame = listings()
    load_partition(engine, "040", delta(frame, "040"), HASHES, expected_rows=160)
    before, table, loads = table_state(engine), full_table(engine), load_history(engine)

    for key in ("043", "040"):  # a new partition, and a reload of a loaded one
        rows, examples, expected_rows = spoil(delta(frame, key).copy())
        with pytest.raises(LoadRefused) as refused:
            load_partition(engine, key, rows, HASHES, "run-x", expected_rows=expected_rows)
        error = refused.value
        assert error.rule == rule
        assert error.failing_rows == failing
        assert error.examples == examples
        message = str(error)
        assert f"partition {key}" in message and rule in message
        assert all(str(pid) in message for pid in examples)
        assert "nothing was written" in message

        assert table_state(engine) == before
        pd.testing.assert_frame_equal(full_table(engine), table)
        pd.testing.assert_frame_equal(load_history(engine), loads)
    assert loaded(engine) == {"040"}


def test_reverting_a_load_restores_every_row_it_changed(engine: Engine) -> None:
    frame = listings()
    first = load_partition(engine, "040", delta(frame, "040"), HASHES)
    second = load_partition(engine, "043", delta(frame, "043"), HASHES)
    table, as_of_second = full_table(engine), snapshot(engine)

    rows = delta(frame, "040").copy()
    renamed, emptied, removed = rows.index[0], rows.index[1], rows.index[2]
    rows.loc[renamed, "designation"] = "Nouveau titre"
    rows.loc[emptied, "description"] = None if rows.loc[emptied, "description"] else "ajout"
    rows = rows.drop(index=removed)
    added = pd.DataFrame(
        {
            "productid": [4_100_000_000],
            "imageid": [7],
            "designation": ["Produit ajouté"],
            "description": [None],
            "prdtypecode": [2583],
        },
        index=[N + 1],
    )
    third = load_partition(engine, "040", pd.concat([rows, added]), HASHES)
    assert (third.rows_added, third.rows_updated, third.rows_deleted) == (1, 2, 1)
    with engine.connect() as connection:
        changes = {
            row.productid: row
            for row in connection.execute(
                select(products_history).where(products_history.c.load_id == third.load_id)
            )
        }

    result = revert_load(engine, third.load_id, "blocking check test failed")

    assert (result.rows_deleted, result.rows_restored, result.rows_reinserted) == (1, 2, 1)
    assert result.rows_kept == 0 and not result.already_reverted
    pd.testing.assert_frame_equal(full_table(engine), table)  # every column, times included
    with engine.connect() as connection:
        reverts = connection.execute(
            select(products_history).where(products_history.c.reverts_id.is_not(None))
        ).all()
    assert len(reverts) == 4
    assert {r.load_id for r in reverts} == {third.load_id}
    assert {r.reverts_id: r.operation for r in reverts} == {
        changes[4_100_000_000].id: "DELETE",
        changes[int(frame.loc[renamed, "productid"])].id: "UPDATE",
        changes[int(frame.loc[emptied, "productid"])].id: "UPDATE",
        changes[int(frame.loc[removed, "productid"])].id: "INSERT",
    }
    undo = next(r for r in reverts if r.productid == int(frame.loc[renamed, "productid"]))
    assert (undo.old_designation, undo.new_designation) == (
        "Nouveau titre",
        frame.loc[renamed, "designation"],
    )
    status = load_status(engine, third.load_id)
    assert status is not None
    assert (status.status, status.reason) == ("reverted", "blocking check test failed")
    assert load_history(engine).set_index("id").loc[third.load_id, "reverted_at"] is not None

    # The reverted load never happened, for every reader.
    assert latest_load_id(engine, "040") == first.load_id
    assert loaded(engine) == {"040", "043"}
    pd.testing.assert_frame_equal(snapshot(engine), as_of_second)
    pd.testing.assert_frame_equal(snapshot(engine, load_id=third.load_id), as_of_second)
    pd.testing.assert_frame_equal(snapshot(engine, load_id=second.load_id), as_of_second)

    # Idempotent; and the next load counts the rows the revert left.
    again = revert_load(engine, third.load_id, "again")
    assert again.already_reverted and again.reason == "blocking check test failed"
    assert count(engine, products_history, products_history.c.reverts_id.is_not(None)) == 4
    fourth = load_partition(engine, "046", delta(frame, "046"), HASHES)
    assert fourth.total_rows == count(engine, products) == 184


def test_a_reverted_load_leaves_its_partition_unloaded(engine: Engine) -> None:
    frame = listings()
    first = load_partition(engine, "040", delta(frame, "040"), HASHES)
    second = load_partition(engine, "043", delta(frame, "043"), HASHES)
    result = revert_load(engine, second.load_id, "blocking check no_empty_designation failed")

    assert result.rows_deleted == 12
    assert count(engine, products) == 160
    assert current_products(engine, "043").empty
    assert latest_load_id(engine, "043") is None
    assert loaded(engine) == {"040"}
    assert next_partition(loaded(engine)) == "043"  # what `rakuten load-data` loads next
    pd.testing.assert_frame_equal(
        snapshot(engine, load_id=second.load_id), snapshot(engine, load_id=first.load_id)
    )
    with pytest.raises(LoadRefused, match=r"partition\(s\) 043 are not loaded"):
        load_partition(engine, "046", delta(frame, "046"), HASHES)

    again = load_partition(engine, "043", delta(frame, "043"), HASHES)
    assert (again.rows_added, again.total_rows) == (12, 172)
    assert latest_load_id(engine, "043") == again.load_id
    now = snapshot(engine).drop(columns=["partition_key", "first_seen"])
    table = current_products(engine).drop(columns="partition_key")
    pd.testing.assert_frame_equal(now, table, check_dtype=False)


def test_a_revert_keeps_rows_that_a_later_load_changed_again(engine: Engine) -> None:
    frame = listings()
    first = load_partition(engine, "040", delta(frame, "040"), HASHES)
    rows = delta(frame, "040").copy()
    rows.loc[rows.index[0], "designation"] = "Corrigé depuis"
    load_partition(engine, "040", rows, HASHES)

    result = revert_load(engine, first.load_id, "test")

    assert (result.rows_deleted, result.rows_kept) == (159, 1)
    table = current_products(engine)
    assert table["designation"].tolist() == ["Corrigé depuis"]
    now = snapshot(engine).drop(columns=["partition_key", "first_seen"])
    pd.testing.assert_frame_equal(now, table.drop(columns="partition_key"), check_dtype=False)


def test_a_failed_blocking_rule_after_the_commit_reverts_the_load(engine: Engine) -> None:
    """Data changed under a committed load: the check reverts it; later checks see it reverted."""
    frame = listings()
    load = load_partition(engine, "040", delta(frame, "040"), HASHES, dagster_run_id="run-1")

    def designations(connection):  # type: ignore[no-untyped-def]
        return quality.no_empty_designation(current_products(connection, "040"))

    passed = enforce_blocking_rule(engine, "040", "run-1", "no_empty_designation", designations)
    assert passed.outcome.passed and passed.revert is None and passed.load_id == load.load_id
    assert count(engine, products) == 160

    spoiled = int(delta(frame, "040")["productid"].iloc[4])
    with engine.begin() as connection:  # outside the loader: no history row
        connection.execute(
            update(products).where(products.c.productid == spoiled).values(designation=" ")
        )
    history_rows = count(engine, products_history)

    failed = enforce_blocking_rule(engine, "040", "run-1", "no_empty_designation", designations)

    assert not failed.outcome.passed and failed.outcome.examples == [spoiled]
    assert failed.revert is not None and failed.revert.rows_deleted == 160
    assert count(engine, products) == 0
    assert count(engine, products_history) == history_rows + 160
    status = load_status(engine, load.load_id)
    assert status is not None and status.status == "reverted"
    assert status.reason is not None
    assert "no_empty_designation" in status.reason and str(spoiled) in status.reason
    assert loaded(engine) == set()
    assert snapshot(engine).empty

    def labels(connection):  # type: ignore[no-untyped-def]
        return quality.labels_within_codes(current_products(connection, "040"))

    later = enforce_blocking_rule(engine, "040", "run-1", "labels_within_codes", labels)
    assert not later.outcome.passed and later.revert is None
    assert f"load {load.load_id} of partition 040 was reverted" in later.outcome.description
    assert count(engine, products_history) == history_rows + 160
