"""The training data of one partition: a leak-free, stable split, then oversampling.

- The split comes first, before any resampling.
- A product's side is decided by a hash of its productid, so it never changes as partitions
  are added. Products whose normalized titles are identical go, all of them, to the side of
  the first one seen (the earliest in the audit trail), so no title is on both sides and no
  earlier product ever moves.
- Only the training side is oversampled (with replacement, seeded), up to a cap per class
  (default: the largest class). The oversampled set is kept as positions into the unique
  training rows; the model uses them as integer sample weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rakuten_assets.data.challenge_files import LABELLED_COLUMNS
from rakuten_assets.ml.text import normalized_title

_HASH_SPACE = float(2**64)


@dataclass(frozen=True)
class SplitParams:
    """How `balanced_dataset` splits and oversamples (the launchpad's `SplitConfig` is built
    from these fields)."""

    test_share: float = field(default=0.15, metadata={"description": "Share of products in test."})
    oversample_cap: int | None = field(
        default=None,
        metadata={"description": "Rows per class after oversampling; empty: the largest."},
    )
    seed: int = field(default=42, metadata={"description": "Seed of the oversampling draws."})
    min_test_rows_per_class: int = field(
        default=20,
        metadata={"description": "Threshold of the blocking check on test rows per class."},
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"test_share must be in (0, 1), got {self.test_share}")
        if self.oversample_cap is not None and self.oversample_cap < 1:
            raise ValueError("oversample_cap must be >= 1")
        if self.min_test_rows_per_class < 0:
            raise ValueError("min_test_rows_per_class must be >= 0")


@dataclass
class BalancedDataset:
    """The split and oversampled data of one partition, as of one load."""

    partition_key: str
    load_id: int
    data_hash: str
    params: SplitParams
    train: pd.DataFrame  # unique training rows, sorted by productid
    test: pd.DataFrame  # test rows, sorted by productid
    sample_positions: np.ndarray  # rows of `train` in the oversampled set (with repeats)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def sample_weights(self) -> np.ndarray:
        return np.bincount(self.sample_positions, minlength=len(self.train)).astype(float)

    def oversampled(self) -> pd.DataFrame:
        return self.train.iloc[self.sample_positions]

    def class_counts(self) -> pd.DataFrame:
        """Rows per class: train before and after oversampling, and test."""
        before = self.train["prdtypecode"].value_counts()
        after = self.oversampled()["prdtypecode"].value_counts()
        test = self.test["prdtypecode"].value_counts()
        frame = pd.DataFrame({"train_before": before, "train_after": after, "test": test})
        return frame.fillna(0).astype(int).sort_index().rename_axis("prdtypecode")


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the labelled rows, independent of their order."""
    ordered = frame.sort_values("productid")
    digest = hashlib.sha256()
    for column in LABELLED_COLUMNS:
        values = ordered[column].astype(object).where(ordered[column].notna(), "\x00")
        digest.update(column.encode())
        digest.update("\x1f".join(map(str, values)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def productid_fraction(productids: pd.Series) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per productid (BLAKE2b of its decimal form)."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(str(int(p)).encode(), digest_size=8).digest(), "big")
            / _HASH_SPACE
            for p in productids
        ]
    )


def split_sides(frame: pd.DataFrame, test_share: float) -> pd.Series:
    """True for the rows that belong to the test side (see the module docstring).

    `frame` needs `productid`, `designation` and `first_seen` (audit-trail order).
    """
    own_side = pd.Series(productid_fraction(frame["productid"]) < test_share, index=frame.index)
    titles = frame["designation"].map(normalized_title)
    order = frame.assign(_title=titles, _side=own_side).sort_values(["first_seen", "productid"])
    group_side = order.groupby("_title", sort=False)["_side"].transform("first")
    return group_side.reindex(frame.index)


def oversample_positions(labels: pd.Series, cap: int | None, seed: int) -> np.ndarray:
    """Positions into `labels` forming the oversampled set: every row once, plus draws with
    replacement in each class below the cap, up to the cap. Sorted."""
    rng = np.random.default_rng(seed)
    values = labels.to_numpy()
    counts = labels.value_counts().sort_index()
    target = cap if cap is not None else int(counts.max())
    positions = [np.arange(len(values))]
    for code, n in counts.items():
        if n < target:
            members = np.flatnonzero(values == code)
            positions.append(rng.choice(members, target - n, replace=True))
    return np.sort(np.concatenate(positions))


def build_balanced_dataset(
    snapshot: pd.DataFrame, partition_key: str, load_id: int, params: SplitParams
) -> BalancedDataset:
    """Split the snapshot of a load, then oversample its training side."""
    if snapshot.empty:
        raise ValueError(f"no labelled rows as of load {load_id} (partition {partition_key})")
    frame = snapshot.sort_values("productid").reset_index(drop=True)
    is_test = split_sides(frame, params.test_share)
    train = frame.loc[~is_test].reset_index(drop=True)
    test = frame.loc[is_test].reset_index(drop=True)
    positions = oversample_positions(train["prdtypecode"], params.oversample_cap, params.seed)
    return BalancedDataset(
        partition_key=partition_key,
        load_id=load_id,
        data_hash=data_hash(frame),
        params=params,
        train=train,
        test=test,
        sample_positions=positions,
    )


@dataclass(frozen=True)
class LeakReport:
    productids: list[int]
    titles: list[str]

    @property
    def leaked(self) -> bool:
        return bool(self.productids or self.titles)


def find_leaks(train: pd.DataFrame, test: pd.DataFrame) -> LeakReport:
    """Products or normalized titles found on both sides of a split."""
    ids = sorted(set(train["productid"]) & set(test["productid"]))
    titles = sorted(
        set(train["designation"].map(normalized_title))
        & set(test["designation"].map(normalized_title))
    )
    return LeakReport(productids=[int(p) for p in ids], titles=titles)


def rows_per_class_in_test(dataset: BalancedDataset, codes: tuple[int, ...]) -> pd.Series:
    """Test rows of every class (zero included), smallest first."""
    counts = dataset.test["prdtypecode"].value_counts().reindex(list(codes), fill_value=0)
    return counts.sort_values()
