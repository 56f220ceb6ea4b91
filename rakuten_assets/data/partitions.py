"""Percentage partitions: which training rows each data load brings.

The training table is shuffled once with a fixed seed (42). Partition "040" takes shuffle
positions [0, floor(N * 0.40)); partition P > 40 takes [floor(N * (P - 3) / 100),
floor(N * P / 100)). So the 21 keys "040", "043", ..., "100" cover every row exactly once,
and a given file always splits the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rakuten_assets.data.challenge_files import TrainingSet

FIRST_PERCENTAGE = 40
STEP = 3
LAST_PERCENTAGE = 100
SHUFFLE_SEED = 42
PARTITION_KEYS: tuple[str, ...] = tuple(
    f"{p:03d}" for p in range(FIRST_PERCENTAGE, LAST_PERCENTAGE + 1, STEP)
)


@dataclass(frozen=True)
class PartitionSlice:
    key: str
    percentage: int
    start: int  # first shuffle position (inclusive)
    end: int  # last shuffle position (exclusive)

    @property
    def rows(self) -> int:
        return self.end - self.start


def percentage_of(key: str) -> int:
    if key not in PARTITION_KEYS:
        raise ValueError(
            f"unknown partition {key!r}; partitions are {PARTITION_KEYS[0]}..{PARTITION_KEYS[-1]} "
            f"in steps of {STEP} ({', '.join(PARTITION_KEYS)})"
        )
    return int(key)


def partition_slice(key: str, total_rows: int) -> PartitionSlice:
    """Shuffle positions of the rows partition `key` adds to a table of `total_rows` rows."""
    percentage = percentage_of(key)
    end = total_rows * percentage // 100
    start = 0 if percentage == FIRST_PERCENTAGE else total_rows * (percentage - STEP) // 100
    return PartitionSlice(key=key, percentage=percentage, start=start, end=end)


def shuffled_positions(total_rows: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """The one seeded shuffle of row positions that all partitions are cut from."""
    return np.random.default_rng(seed).permutation(total_rows)


def partition_rows(key: str, total_rows: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """Row positions (into the training table in file order) of partition `key`, sorted."""
    part = partition_slice(key, total_rows)
    return np.sort(shuffled_positions(total_rows, seed)[part.start : part.end])


def batch_name(key: str) -> str:
    """`initial` for 040, then `week_N` with N = (P - 40) / 3 + 1."""
    percentage = percentage_of(key)
    if percentage == FIRST_PERCENTAGE:
        return "initial"
    return f"week_{(percentage - FIRST_PERCENTAGE) // STEP + 1}"


def predecessors(key: str) -> tuple[str, ...]:
    """Partitions that must be loaded before `key`."""
    percentage_of(key)
    return PARTITION_KEYS[: PARTITION_KEYS.index(key)]


def next_partition(loaded: set[str] | frozenset[str]) -> str | None:
    """The first partition not loaded yet, or None when all are."""
    return next((key for key in PARTITION_KEYS if key not in loaded), None)


def latest_partition(loaded: set[str] | frozenset[str]) -> str | None:
    """The highest loaded partition, or None before the first load."""
    return next((key for key in reversed(PARTITION_KEYS) if key in loaded), None)


@dataclass(frozen=True)
class PartitionDelta:
    """The rows one partition adds, as read from the challenge files."""

    key: str
    frame: pd.DataFrame  # labelled listings, indexed by the challenge row index
    total_rows: int  # rows of the whole training table
    source_hashes: dict[str, str]

    @property
    def slice(self) -> PartitionSlice:
        return partition_slice(self.key, self.total_rows)


def partition_delta(training: TrainingSet, key: str) -> PartitionDelta:
    """Cut partition `key` out of the training table."""
    positions = partition_rows(key, len(training))
    return PartitionDelta(
        key=key,
        frame=training.frame.iloc[positions],
        total_rows=len(training),
        source_hashes=dict(training.source_hashes),
    )
