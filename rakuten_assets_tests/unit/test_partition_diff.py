"""`diff_partition` without a database: which source rows a load inserts, updates, deletes or
leaves alone, on frames shaped as the loader builds them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rakuten_assets.db.partition_diff import PartitionDiff, diff_partition
from rakuten_assets.db.schema import VALUE_COLUMNS

KEY = "043"


def source(*rows: tuple[int, str, str | None, int]) -> pd.DataFrame:
    """Source rows as `_prepared_rows` gives them: (productid, designation, description,
    prdtypecode), imageid = productid + 1, source_row = position; indexed by productid."""
    frame = pd.DataFrame(
        {
            "productid": np.array([r[0] for r in rows], dtype="int64"),
            "imageid": np.array([r[0] + 1 for r in rows], dtype="int64"),
            "designation": [r[1] for r in rows],
            "description": pd.Series([r[2] for r in rows], dtype=object),
            "prdtypecode": np.array([r[3] for r in rows], dtype="int64"),
            "source_row": np.arange(len(rows), dtype="int64"),
        }
    )
    return frame.set_index("productid", drop=False)


def stored(*rows: tuple[int, str, str | None, int, str]) -> pd.DataFrame:
    """Stored rows as `_existing_rows` reads them: (productid, designation, description,
    prdtypecode, partition_key), Python values as the database driver returns them."""
    columns = ["productid", "partition_key", "source_row", *VALUE_COLUMNS]
    records = [
        {
            "productid": r[0],
            "partition_key": r[4],
            "source_row": 1000 + i,
            "imageid": r[0] + 1,
            "designation": r[1],
            "description": r[2],
            "prdtypecode": r[3],
        }
        for i, r in enumerate(rows)
    ]
    return pd.DataFrame(records, columns=columns).set_index("productid")


def diff(new: pd.DataFrame, old: pd.DataFrame) -> PartitionDiff:
    return diff_partition(KEY, new, old, value_columns=VALUE_COLUMNS)


def ids(frame: pd.DataFrame) -> list[int]:
    return sorted(int(v) for v in frame.index)


def test_a_first_load_inserts_every_row() -> None:
    rows = source((1, "a", None, 10), (2, "b", "text", 40))
    result = diff(rows, stored())

    assert ids(result.inserts) == [1, 2]
    assert result.updates.empty and result.updated_from.empty and result.deletes.empty
    assert result.unchanged == 0
    # the inserted rows are the source's, every column kept (source_row included)
    pd.testing.assert_frame_equal(result.inserts, rows)


def test_a_reload_of_the_same_rows_changes_nothing() -> None:
    rows = source((1, "a", None, 10), (2, "b", "text", 40))
    result = diff(rows, stored((1, "a", None, 10, KEY), (2, "b", "text", 40, KEY)))

    assert result.inserts.empty and result.updates.empty and result.deletes.empty
    assert result.unchanged == 2


def test_missing_descriptions_are_equal_whatever_their_spelling() -> None:
    rows = source((1, "a", None, 10), (2, "b", None, 40))
    rows.loc[2, "description"] = np.nan  # pandas' missing value vs the driver's None
    result = diff(rows, stored((1, "a", None, 10, KEY), (2, "b", None, 40, KEY)))

    assert result.unchanged == 2 and result.updates.empty


def test_a_moved_source_row_alone_is_no_change() -> None:
    # source_row differs on every row (0, 1 vs 1000, 1001): it is carried, not compared
    result = diff(source((1, "a", "x", 10)), stored((1, "a", "x", 10, KEY)))
    assert result.unchanged == 1 and result.updates.empty


@pytest.mark.parametrize(
    ("change", "value"),
    [("designation", "new title"), ("description", "now described"), ("prdtypecode", 2583)],
)
def test_a_changed_value_is_an_update_with_the_stored_row_it_replaces(
    change: str, value: object
) -> None:
    rows = source((1, "a", None, 10), (2, "b", "text", 40))
    rows.loc[2, change] = value
    old = stored((1, "a", None, 10, KEY), (2, "b", "text", 40, KEY))
    result = diff(rows, old)

    assert ids(result.updates) == [2] and result.updates.loc[2, change] == value
    assert list(result.updated_from.index) == list(result.updates.index)
    pd.testing.assert_frame_equal(result.updated_from, old.loc[[2]])
    assert result.unchanged == 1 and result.inserts.empty and result.deletes.empty


def test_a_description_removed_from_the_source_is_an_update() -> None:
    result = diff(source((1, "a", None, 10)), stored((1, "a", "text", 10, KEY)))
    assert ids(result.updates) == [1] and result.updated_from.loc[1, "description"] == "text"


def test_a_row_stored_under_another_partition_moves_to_this_one() -> None:
    result = diff(source((1, "a", None, 10)), stored((1, "a", None, 10, "040")))

    assert ids(result.updates) == [1] and result.unchanged == 0
    assert result.updated_from.loc[1, "partition_key"] == "040"
    assert result.inserts.empty and result.deletes.empty


def test_rows_of_the_partition_that_left_the_source_are_deleted_others_are_not() -> None:
    old = stored(
        (1, "a", None, 10, KEY),
        (2, "gone", "text", 40, KEY),  # this partition's, no longer in the source: DELETE
        (3, "other", None, 50, "040"),  # another partition's: not this load's to delete
    )
    result = diff(source((1, "a", None, 10), (4, "new", None, 60)), old)

    assert ids(result.deletes) == [2]
    pd.testing.assert_frame_equal(result.deletes, old.loc[[2]])  # old values for the history
    assert ids(result.inserts) == [4] and result.unchanged == 1 and result.updates.empty


def test_an_empty_source_deletes_the_whole_partition() -> None:
    old = stored((1, "a", None, 10, KEY), (2, "b", None, 40, KEY))
    result = diff(source(), old)

    assert ids(result.deletes) == [1, 2]
    assert result.inserts.empty and result.updates.empty and result.unchanged == 0


def test_insert_update_delete_and_unchanged_together_add_up() -> None:
    rows = source((1, "a", None, 10), (2, "changed", None, 40), (5, "new", "x", 60))
    old = stored((1, "a", None, 10, KEY), (2, "b", None, 40, KEY), (3, "gone", None, 50, KEY))
    result = diff(rows, old)

    assert (ids(result.inserts), ids(result.updates), ids(result.deletes)) == ([5], [2], [3])
    assert len(result.inserts) + len(result.updates) + result.unchanged == len(rows)


def test_repeated_productids_are_refused() -> None:
    rows = pd.concat([source((1, "a", None, 10)), source((1, "b", None, 40))])
    with pytest.raises(ValueError, match=r"source rows repeat productid\(s\) \[1\]"):
        diff(rows, stored())
