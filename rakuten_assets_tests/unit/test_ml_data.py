"""Cleaning and the training data: stable leak-free split, oversampling of train only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rakuten_assets.data.categories import CODES
from rakuten_assets.ml.dataset import (
    SplitParams,
    build_balanced_dataset,
    data_hash,
    find_leaks,
    oversample_positions,
    rows_per_class_in_test,
)
from rakuten_assets.ml.text import ListingTextCleaner, clean_text, normalized_title


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Piscine livrÃ©e avec Ã©chelle", "piscine livrée avec échelle"),
        ("<p>Table <b>Basse</b></p><br />Chêne", "table basse chêne"),
        ("L&#39;&eacute;t&eacute; &amp; co", "l été co"),
        ("L&amp;#39;été", "l été"),  # escaped twice, as marketplaces do
        ("N° 133 Du 28/09/2001", "n 000 du 00 00 0000"),
        ("  DRONE   4K  ", "drone 0k"),
        (None, ""),
    ],
)
def test_clean_text(raw: str | None, clean: str) -> None:
    assert clean_text(raw) == clean


def test_cleaner_step_joins_designation_and_description() -> None:
    frame = pd.DataFrame(
        {"designation": ["Tapis <b>Rouge</b>", "Stylo"], "description": ["Laine", None]}
    )
    assert list(ListingTextCleaner().fit_transform(frame)) == ["tapis rouge laine", "stylo"]
    without = frame[["designation"]]
    assert list(ListingTextCleaner().transform(without)) == ["tapis rouge", "stylo"]
    with pytest.raises(ValueError, match="designation"):
        ListingTextCleaner().transform(pd.DataFrame({"title": ["x"]}))


def test_split_is_stable_as_the_data_grows(synth_frame: pd.DataFrame) -> None:
    early = synth_frame.iloc[:6000]
    small = build_balanced_dataset(early, "040", 1, SplitParams())
    large = build_balanced_dataset(synth_frame, "100", 2, SplitParams())
    early_ids = set(early["productid"])
    assert set(small.test["productid"]) == set(large.test["productid"]) & early_ids
    assert set(small.train["productid"]) == set(large.train["productid"]) & early_ids


def test_split_share_and_no_leak(synth_frame: pd.DataFrame) -> None:
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(test_share=0.2))
    assert 0.17 < len(dataset.test) / len(synth_frame) < 0.23
    assert not find_leaks(dataset.train, dataset.test).leaked
    # the generator duplicates titles on purpose: they must stay together
    titles = synth_frame["designation"].map(normalized_title)
    assert titles.duplicated().sum() > 100


def test_duplicate_titles_follow_the_first_seen_product() -> None:
    frame = pd.DataFrame(
        {
            "productid": range(1, 201),
            "imageid": range(1, 201),
            "designation": ["Même Titre"] * 100 + [f"Titre {i}" for i in range(100)],
            "description": None,
            "prdtypecode": 10,
            "first_seen": range(200),
        }
    )
    dataset = build_balanced_dataset(frame, "040", 1, SplitParams(test_share=0.5))
    same = {p for p in range(1, 101)}
    assert same <= set(dataset.train["productid"]) or same <= set(dataset.test["productid"])
    assert not find_leaks(dataset.train, dataset.test).leaked


def test_leak_detection_finds_ids_and_titles() -> None:
    train = pd.DataFrame({"productid": [1, 2], "designation": ["Chaise <b>Bois</b>", "Lampe"]})
    test = pd.DataFrame({"productid": [2, 3], "designation": ["Autre", "chaise bois"]})
    leaks = find_leaks(train, test)
    assert leaks.productids == [2]
    assert leaks.titles == ["chaise bois"]


def test_oversampling_touches_only_train_and_reaches_the_cap(synth_frame: pd.DataFrame) -> None:
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(seed=3))
    counts = dataset.class_counts()
    assert (counts["train_after"] == counts["train_before"].max()).all()
    assert counts["test"].sum() == len(dataset.test)
    assert set(dataset.oversampled()["productid"]) == set(dataset.train["productid"])
    assert not set(dataset.oversampled()["productid"]) & set(dataset.test["productid"])
    weights = dataset.sample_weights
    assert weights.min() >= 1 and weights.sum() == len(dataset.sample_positions)

    capped = build_balanced_dataset(synth_frame, "100", 1, SplitParams(oversample_cap=300))
    after = capped.class_counts()
    assert (after["train_after"] == np.maximum(after["train_before"], 300)).all()


def test_oversampling_is_seeded() -> None:
    labels = pd.Series([10] * 50 + [40] * 5 + [50] * 12)
    first = oversample_positions(labels, None, seed=1)
    assert np.array_equal(first, oversample_positions(labels, None, seed=1))
    assert not np.array_equal(first, oversample_positions(labels, None, seed=2))
    assert np.bincount(labels.iloc[first].map({10: 0, 40: 1, 50: 2})).tolist() == [50, 50, 50]


def test_data_hash_ignores_order_and_sees_changes(synth_frame: pd.DataFrame) -> None:
    sample = synth_frame.head(500)
    shuffled = sample.sample(frac=1, random_state=0)
    assert data_hash(sample) == data_hash(shuffled)
    changed = sample.copy()
    changed.loc[changed.index[0], "description"] = "autre texte"
    assert data_hash(changed) != data_hash(sample)


def test_rows_per_class_in_test_lists_every_code(synth_frame: pd.DataFrame) -> None:
    dataset = build_balanced_dataset(synth_frame.head(300), "040", 1, SplitParams())
    counts = rows_per_class_in_test(dataset, CODES)
    assert list(counts.index) != [] and set(counts.index) == set(CODES)
    assert counts.sum() == len(dataset.test)


def test_split_params_are_validated() -> None:
    with pytest.raises(ValueError, match="test_share"):
        SplitParams(test_share=1.0)
    with pytest.raises(ValueError, match="oversample_cap"):
        SplitParams(oversample_cap=0)
