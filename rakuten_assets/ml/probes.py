"""What a trained model does with input unlike any listing: empty text and unfamiliar words.

A model that learned a shortcut of its training data sends such input to one class (with
the first generator, "unfamiliar names, no description" meant a used book: class 10 took it
with p ~ 0.30). On real listings, unfamiliar names belong to every class, so no class should
collect them: `probe` measures how sure the model is of its answers to such input (it should
be close to 1/27, "I do not know") and the share one class takes with some confidence.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

VOWELS = "aeiouy"
CONFIDENT = 0.5
CONSONANTS = "bcdfghjklmnpqrstvwxz"


def pseudo_word(rng: random.Random) -> str:
    """A pronounceable word that is in no vocabulary ("Korvanet", "Blisomu")."""
    syllables = rng.randint(2, 4)
    word = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables))
    if rng.random() < 0.5:
        word += rng.choice(CONSONANTS)
    return word.capitalize()


def unfamiliar_listings(count: int = 300, seed: int = 0) -> list[tuple[str, str | None]]:
    """`count` titles of one to four pseudo-words, without description."""
    rng = random.Random(seed)
    return [
        (" ".join(pseudo_word(rng) for _ in range(rng.randint(1, 4))), None) for _ in range(count)
    ]


@dataclass(frozen=True)
class ProbeResult:
    empty_class: int  # what the model answers for an empty listing
    empty_confidence: float
    unfamiliar_top_class: int  # the class that takes most unfamiliar titles
    unfamiliar_top_share: float  # and the share it takes
    unfamiliar_mean_confidence: float
    unfamiliar_confident_share: float  # answered with a probability >= CONFIDENT
    unfamiliar_shares: dict[int, float]


def probe(pipeline: Pipeline, count: int = 300, seed: int = 0) -> ProbeResult:
    classes = [int(c) for c in pipeline.classes_]
    empty = pd.DataFrame({"designation": [""], "description": [None]})
    empty_probabilities = np.asarray(pipeline.predict_proba(empty))[0]
    listings = unfamiliar_listings(count, seed)
    frame = pd.DataFrame(listings, columns=["designation", "description"])
    probabilities = np.asarray(pipeline.predict_proba(frame))
    predicted = Counter(classes[i] for i in probabilities.argmax(axis=1))
    top_class, top_count = predicted.most_common(1)[0]
    return ProbeResult(
        empty_class=classes[int(empty_probabilities.argmax())],
        empty_confidence=float(empty_probabilities.max()),
        unfamiliar_top_class=top_class,
        unfamiliar_top_share=top_count / count,
        unfamiliar_mean_confidence=float(probabilities.max(axis=1).mean()),
        unfamiliar_confident_share=float((probabilities.max(axis=1) >= CONFIDENT).mean()),
        unfamiliar_shares={code: n / count for code, n in predicted.most_common()},
    )


def probe_generated_data(
    listings: pd.DataFrame, labels: pd.Series, rows: int = 20_000, seed: int = 0
) -> ProbeResult:
    """Train the default model on a seeded sample of `rows` listings, then probe it."""
    from rakuten_assets.ml.model import TrainingParams, build_pipeline, fit_pipeline

    sample = listings.sample(min(rows, len(listings)), random_state=seed).index
    pipeline = fit_pipeline(
        build_pipeline(TrainingParams()),
        listings.loc[sample, ["designation", "description"]],
        labels.loc[sample],
    )
    return probe(pipeline, seed=seed)
