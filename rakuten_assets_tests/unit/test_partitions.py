"""The partition arithmetic: 21 keys, 40% then +3%, every row in exactly one partition."""

from __future__ import annotations

import numpy as np
import pytest

from rakuten_assets.data.categories import REAL_TRAIN_ROWS
from rakuten_assets.data.partitions import (
    PARTITION_KEYS,
    batch_name,
    next_partition,
    partition_rows,
    partition_slice,
    percentage_of,
    predecessors,
    shuffled_positions,
)


def test_keys() -> None:
    assert len(PARTITION_KEYS) == 21
    assert PARTITION_KEYS[:3] == ("040", "043", "046")
    assert PARTITION_KEYS[-1] == "100"


def test_real_size_arithmetic() -> None:
    n = REAL_TRAIN_ROWS
    first = partition_slice("040", n)
    assert (first.start, first.end, first.rows) == (0, 33_966, 33_966)
    second = partition_slice("043", n)
    assert (second.start, second.end) == (n * 40 // 100, n * 43 // 100) == (33_966, 36_513)
    increments = [partition_slice(key, n).rows for key in PARTITION_KEYS[1:]]
    assert min(increments) >= 2_547 and max(increments) <= 2_548
    assert partition_slice("100", n).end == n


@pytest.mark.parametrize("n", [1, 9, 100, 3_000, REAL_TRAIN_ROWS])
def test_partitions_cover_every_row_exactly_once(n: int) -> None:
    rows = np.concatenate([partition_rows(key, n) for key in PARTITION_KEYS])
    assert len(rows) == n
    assert np.array_equal(np.sort(rows), np.arange(n))
    cumulative = 0
    for key in PARTITION_KEYS:
        cumulative += len(partition_rows(key, n))
        assert cumulative == n * int(key) // 100


def test_shuffle_is_seeded_and_stable() -> None:
    assert np.array_equal(shuffled_positions(1000), shuffled_positions(1000))
    assert not np.array_equal(shuffled_positions(1000), np.arange(1000))
    assert not np.array_equal(shuffled_positions(1000, seed=1), shuffled_positions(1000))


def test_batch_names() -> None:
    assert batch_name("040") == "initial"
    assert batch_name("043") == "week_2"  # N = (P - 40) / 3 + 1
    assert batch_name("100") == "week_21"


def test_predecessors_and_next() -> None:
    assert predecessors("040") == ()
    assert predecessors("049") == ("040", "043", "046")
    assert next_partition(set()) == "040"
    assert next_partition({"040", "043"}) == "046"
    assert next_partition({"040", "046"}) == "043"
    assert next_partition(set(PARTITION_KEYS)) is None


@pytest.mark.parametrize("key", ["41", "40", "103", "abc", "037"])
def test_unknown_key_is_rejected_with_the_valid_keys(key: str) -> None:
    with pytest.raises(ValueError, match=r"partitions are 040\.\.100"):
        percentage_of(key)
