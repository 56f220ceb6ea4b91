"""What a load of one partition changes: a pure comparison of two frames (no database).

`diff_partition` compares the rows a partition should hold (its source rows) with the rows
stored that the load may touch (those of the partition, and those with one of its
productids), and tells which rows to INSERT, UPDATE and DELETE. The loader
(`rakuten_assets.db.loader`) applies the result inside its transaction, with the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PartitionDiff:
    """The changes a load makes, each frame indexed by productid.

    `inserts` and `updates` are rows of the source (all its columns); `updated_from` holds
    the stored rows `updates` replace, in the same order; `deletes` the stored rows of the
    partition that left the source. `unchanged`: source rows already stored as they are.
    """

    inserts: pd.DataFrame
    updates: pd.DataFrame
    updated_from: pd.DataFrame
    deletes: pd.DataFrame
    unchanged: int


def same_values(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values (None, NaN) are equal."""
    both_missing = left.isna().to_numpy() & right.isna().to_numpy()
    equal = left.astype(object).to_numpy() == right.astype(object).to_numpy()
    return both_missing | equal


def _require_unique(frame: pd.DataFrame, name: str) -> None:
    repeated = frame.index[frame.index.duplicated()]
    if len(repeated):
        raise ValueError(f"{name} repeat productid(s) {sorted(set(repeated.tolist()))[:5]}")


def diff_partition(
    key: str, source: pd.DataFrame, stored: pd.DataFrame, *, value_columns: Sequence[str]
) -> PartitionDiff:
    """The INSERTs, UPDATEs and DELETEs that make partition `key` hold the rows of `source`.

    `source`: the partition's rows, indexed by productid, with `value_columns`. `stored`: the
    stored rows the load may touch, indexed by productid, with `value_columns` and
    `partition_key`. A source row is unchanged when its stored row has the same values
    (missing equals missing) and belongs to `key`; otherwise it is updated, which moves a row
    stored under another partition to this one. Other columns (such as the row's position in
    the source file) are carried along but not compared: they change nothing on their own.
    A stored row of another partition that the source lacks is not this load's to delete.
    """
    _require_unique(source, "the source rows")
    _require_unique(stored, "the stored rows")
    known = source.index.isin(stored.index)
    present = source.loc[known]
    before = stored.loc[present.index]
    unchanged = (before["partition_key"] == key).to_numpy()
    for column in value_columns:
        unchanged &= same_values(present[column], before[column])
    return PartitionDiff(
        inserts=source.loc[~known],
        updates=present.loc[~unchanged],
        updated_from=before.loc[~unchanged],
        deletes=stored.loc[(stored["partition_key"] == key) & ~stored.index.isin(source.index)],
        unchanged=int(unchanged.sum()),
    )
