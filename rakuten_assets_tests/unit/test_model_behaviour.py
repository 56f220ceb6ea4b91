"""Behavioural tests of the default model trained on generated data (Made-With-ML style):
listings written by the team to look like real marketplace listings
(fixtures/behaviour/listings.csv: name-only titles, card numbers, bare game names,
machine-translated strings, all-caps parts, press, English titles...; never taken from the
challenge data), invariance to what does not change a product (accents, case, a trailing
stock code), and no shortcut that sends unfamiliar input to one class."""

from __future__ import annotations

import pandas as pd
import pytest

from rakuten_assets.data.categories import CODES
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.ml.probes import probe
from rakuten_assets.ml.text import fold_accents
from rakuten_assets_tests.support import FIXTURES

LISTINGS = FIXTURES / "behaviour" / "listings.csv"


@pytest.fixture(scope="module")
def listings() -> pd.DataFrame:
    frame = pd.read_csv(LISTINGS, keep_default_na=False, dtype={"description": str})
    frame["description"] = frame["description"].where(frame["description"] != "", None)
    return frame


def predictions(result: TrainingResult, frame: pd.DataFrame) -> pd.Series:
    return pd.Series(
        result.pipeline.predict(frame[["designation", "description"]]), index=frame.index
    )


def test_the_listings_file_covers_every_class_and_kind(listings: pd.DataFrame) -> None:
    assert set(listings["prdtypecode"]) == set(CODES)
    assert listings["prdtypecode"].value_counts().min() >= 20
    assert not listings["designation"].duplicated().any()
    assert {"name_only", "card_number", "bare_game", "machine_translated", "all_caps"} <= set(
        listings["kind"]
    )


def test_a_model_trained_on_generated_data_classifies_real_looking_listings(
    trained: TrainingResult, listings: pd.DataFrame
) -> None:
    # `trained`: the default model on 15,000 generated rows. Measured: 0.84 (0.87 with the
    # 34,000 rows of partition 040); the seed configuration on those 34,000 rows: 0.70.
    correct = predictions(trained, listings) == listings["prdtypecode"]
    assert correct.mean() >= 0.70, correct.groupby(listings["kind"]).mean().to_dict()
    # and no kind of listing is left behind
    by_kind = correct.groupby(listings["kind"]).mean()
    assert by_kind.min() >= 0.5, by_kind.to_dict()


def test_accents_and_case_do_not_change_the_class(
    trained: TrainingResult, listings: pd.DataFrame
) -> None:
    expected = predictions(trained, listings)
    for change in (
        lambda text: " ".join(fold_accents(text.split())),
        str.upper,
        str.lower,
    ):
        changed = listings.assign(designation=listings["designation"].map(change))
        assert (predictions(trained, changed) == expected).all()


def test_a_trailing_stock_code_rarely_changes_the_class(
    trained: TrainingResult, listings: pd.DataFrame
) -> None:
    expected = predictions(trained, listings)
    codes = ["_Xc2391", " - Ref 40117", " Hmn482", " #5589", " Sku 120934"]
    for code in codes:
        changed = listings.assign(designation=listings["designation"] + code)
        same = (predictions(trained, changed) == expected).mean()
        assert same >= 0.9, (code, same)


def test_no_class_collects_empty_or_unfamiliar_input(trained: TrainingResult) -> None:
    result = probe(trained.pipeline)
    # The first generator taught models that unfamiliar titles are used books (class 10
    # took 95% of them, p ~ 0.3). Now the model says it does not know: its answers to
    # pseudo-word titles and to an empty listing are close to uniform (1/27 = 0.04), and
    # almost none is given with a probability of 0.5 or more, whichever class wins the argmax.
    assert result.unfamiliar_mean_confidence < 0.2, result
    assert result.unfamiliar_confident_share <= 0.05, result
    assert result.empty_confidence < 0.2, result
