"""Small labelled listings, partitioned the loader's way, for database and Dagster tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from rakuten_assets.data.categories import CODES
from rakuten_assets.data.partitions import partition_rows
from rakuten_assets.db.loader import load_partition

N = 400
HASHES = {"X_train_update.csv": "aa", "Y_train_CVw08PX.csv": "bb"}


def listings(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Labelled listings indexed by challenge row, with missing descriptions and big ids."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "productid": rng.choice(4_000_000_000, n, replace=False).astype("int64"),
            "imageid": rng.integers(1, 1_300_000_000, n),
            "designation": [f"Produit N° {i} &eacute; <b>Ã©</b>" for i in range(n)],
            "description": [None if i % 3 == 0 else f"<p>Description {i}</p>" for i in range(n)],
            "prdtypecode": rng.choice(CODES, n),
        }
    )


def delta(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of `frame` that partition `key` adds."""
    return frame.iloc[partition_rows(key, len(frame))]


def load_partitions(engine: Engine, *keys: str) -> None:
    """Load partitions of generated listings into the project database (the loader's way)."""
    frame = listings()
    for key in keys:
        load_partition(engine, key, delta(frame, key), HASHES)
