"""The realism report's measures (data/synth/realism.py), on hand-made listings where the
answer is known, and on generated data against the figures of real listings that generator
v2 must approach (issue 12) and the shortcuts of generator v1 it must not bring back."""

from __future__ import annotations

import pandas as pd
import pytest

from rakuten_assets.data.synth import vocab
from rakuten_assets.data.synth.generator import SynthOptions, generate
from rakuten_assets.data.synth.realism import (
    language_of,
    measure,
    real_figures,
    typical_words,
)


def figures(listings: pd.DataFrame, labels: list[int]) -> dict[str, float]:
    padding = list(vocab.common_slots()["seller_padding"])
    return {f.key: f.generated for f in measure(listings, labels, padding)}


def test_language_of_a_title() -> None:
    assert language_of("Harry Potter And The Chamber Of Secrets") == "en"
    assert language_of("Le Comte De Monte-Cristo Pour Les Nuls") == "fr"
    assert language_of("Die Welle Und Das Meer") == "de"
    assert language_of("Fifa 13") is None


def test_typical_words_ignore_function_words_and_need_a_lift() -> None:
    titles = [["les", "piscine", "intex"]] * 5 + [["les", "livre", "poche"]] * 5
    labels = [2583] * 5 + [10] * 5
    typical = typical_words(titles, labels)
    assert set(typical[2583]) == {"piscine", "intex"}
    assert "les" not in typical[10]


def test_measures_on_hand_made_listings() -> None:
    listings = pd.DataFrame(
        {
            "designation": ["Piscine Intex - Neuf", "Piscine Bestway", "Le Petit Prince", "Zola"],
            "description": [
                "Piscine Intex - Neuf. Livrée avec pompe. Livrée avec pompe.",
                None,
                "<p>Un conte.</p><p>Un conte.</p>",
                None,
            ],
        }
    )
    result = figures(listings, [2583, 2583, 10, 10])
    assert result["empty_description_share"] == 0.5
    assert result["seller_padding_title_share"] == 0.25  # "Neuf"
    assert result["html_description_share"] == 0.5
    assert result["description_starts_with_title_share"] == 0.5
    assert result["accented_title_share"] == 0.0


@pytest.fixture(scope="module")
def generated() -> dict[str, float]:
    data = generate(SynthOptions(rows=20_000, test_rows=0, seed=3))
    return figures(data.x_train, data.y_train["prdtypecode"].tolist())


def test_generated_data_is_near_what_is_known_of_the_real_set(
    generated: dict[str, float],
) -> None:
    real = {key: float(value["value"]) for key, value in real_figures().items()}
    assert generated["class_share_gap"] < 0.004
    assert abs(generated["empty_description_share"] - real["empty_description_share"]) < 0.04
    assert abs(generated["accented_title_share"] - real["accented_title_share"]) < 0.1
    assert abs(generated["seller_padding_title_share"] - real["seller_padding_title_share"]) < 0.02
    assert 0.2 <= generated["description_starts_with_title_share"] <= 0.4
    assert 0.05 <= generated["mostly_english_title_share"] <= 0.2
    assert 45 <= generated["title_chars_mean"] <= 80


def test_generator_v1_shortcuts_are_gone(generated: dict[str, float]) -> None:
    # generator v1: padding in 26-45% of titles at class-dependent rates, 89% of titles
    # holding a typical word of their class, 22% of description sentences distinct
    assert generated["seller_padding_class_spread"] < 0.08
    assert generated["typical_word_title_share"] < 0.7
    # sellers paste the same boilerplate in real listings too: a third distinct, not all
    assert generated["distinct_sentence_share"] > 0.3
    assert generated["distinct_title_words"] > 12_000
