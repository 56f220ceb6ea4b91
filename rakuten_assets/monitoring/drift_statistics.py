"""The statistics of drift detection, with no threshold and no verdict (`drift_report` judges).

A `ReferenceProfile` is computed once, when a model is trained: a seeded sample of text
lengths, the share of empty descriptions, the share of tokens outside the model's vocabulary
(OOV) and the class mix of the training labels. A window of the inference log is compared
with it:

- text lengths (designation and description, in characters and in words): two-sample
  Kolmogorov-Smirnov test and Wasserstein distance (also divided by the reference mean, so it
  is unit-free and comparable across features), `length_shift`;
- share of empty descriptions; OOV rate (tokens of the model's own cleaning, `clean_text`),
  `oov_counts`;
- predicted-class mix against the training class mix: PSI, Jensen-Shannon distance and a
  chi-square test of the difference;
- live accuracy: the share of the window's predictions that users corrected (POST /feedback)
  whose answer was right. Not a drift rule: it is measured on the predictions someone chose
  to correct (real users confirm right answers less often than they fix wrong ones), so it
  is a trend to watch, not an unbiased estimate of the model's accuracy.

Lengths are raw (HTML included), as the requests arrive; words are whitespace-separated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from rakuten_assets.data.categories import CODES
from rakuten_assets.ml.text import fold_accents, listing_text

LENGTH_FEATURES: tuple[str, ...] = (
    "designation_chars",
    "designation_words",
    "description_chars",
    "description_words",
)
# TfidfVectorizer's default token_pattern, the one the model's TF-IDF step uses: a token has
# at least two word characters, so single letters and digits are neither in the vocabulary
# nor counted as out of it.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


# -- features ------------------------------------------------------------------------------


def _texts(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        return [""] * len(frame)
    return [value if isinstance(value, str) else "" for value in frame[column].tolist()]


def text_lengths(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The four length features of each row (a missing description has length 0)."""
    lengths: dict[str, np.ndarray] = {}
    for column in ("designation", "description"):
        texts = _texts(frame, column)
        lengths[f"{column}_chars"] = np.fromiter(map(len, texts), np.int64, len(texts))
        # str.split in a comprehension: 4x faster than pandas .str.split().str.len()
        lengths[f"{column}_words"] = np.fromiter(
            (len(text.split()) for text in texts), np.int64, len(texts)
        )
    return lengths


def oov_counts(frame: pd.DataFrame, vocabulary: frozenset[str] | set[str]) -> tuple[int, int]:
    """(tokens, tokens not in `vocabulary`) of the listings, cleaned as the model cleans them
    (accents folded on both sides: the default model folds them, the seed's does not)."""
    tokens = unknown = 0
    contains = vocabulary.__contains__
    for designation, description in zip(
        _texts(frame, "designation"), _texts(frame, "description"), strict=True
    ):
        words = fold_accents(_TOKEN.findall(listing_text(designation, description)))
        tokens += len(words)
        unknown += len(words) - sum(map(contains, words))
    return tokens, unknown


def sample_positions(total: int, rows: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of at most `rows` of `total` rows (None: all)."""
    if rows is None or total <= rows:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))


def class_counts(codes: Iterable[object]) -> dict[int, int]:
    """Rows of each of the 27 codes; values that are not one of them are ignored."""
    values = pd.to_numeric(pd.Series(list(codes), dtype=object), errors="coerce")
    counts = values.value_counts()
    return {code: int(counts.get(code, 0)) for code in CODES}


def count_shares(counts: dict[int, int]) -> dict[int, float]:
    """Each count over their total (all 0.0 when the total is 0)."""
    total = sum(counts.values())
    return {code: (n / total if total else 0.0) for code, n in counts.items()}


def class_shares(codes: Iterable[object]) -> dict[int, float]:
    """Share of each of the 27 codes; values that are not one of them are ignored."""
    return count_shares(class_counts(codes))


def model_vocabulary(pipeline: Any) -> frozenset[str]:
    """The unigram terms of the fitted word TF-IDF of a model: step "tfidf" of
    `build_pipeline`, or the "words" block of its "features" step.

    Bigrams are left out: OOV is measured on single tokens.
    """
    steps = getattr(pipeline, "named_steps", {})
    vectorizer = steps.get("tfidf")
    if vectorizer is None and "features" in steps:
        vectorizer = steps["features"].named_transformers_.get("words")
    if vectorizer is None:
        vectorizer = next(
            (step for step in steps.values() if hasattr(step, "vocabulary_")), pipeline
        )
    if not hasattr(vectorizer, "vocabulary_"):
        raise ValueError("the pipeline has no fitted TF-IDF step (no `vocabulary_`)")
    return frozenset(fold_accents([term for term in vectorizer.vocabulary_ if " " not in term]))


# -- reference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceProfile:
    """What drift detection keeps of the training data of a model (pickle or `to_dict`)."""

    rows: int  # training rows the profile describes
    sample_rows: int  # rows of the seeded sample behind `lengths` and `oov_rate`
    lengths: dict[str, np.ndarray] = field(repr=False)  # LENGTH_FEATURES -> sample values
    empty_description_share: float  # over all rows
    oov_rate: float  # over the sample's tokens
    class_shares: dict[int, float]  # training labels, the 27 codes
    vocabulary: frozenset[str] = field(repr=False)  # the model's unigram terms
    seed: int = 0

    def length_means(self) -> dict[str, float]:
        return {name: mean_or_nan(values) for name, values in self.lengths.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (lists and plain numbers); `from_dict` reads it back."""
        return {
            "rows": self.rows,
            "sample_rows": self.sample_rows,
            "lengths": {name: values.tolist() for name, values in self.lengths.items()},
            "empty_description_share": self.empty_description_share,
            "oov_rate": self.oov_rate,
            "class_shares": {str(code): share for code, share in self.class_shares.items()},
            "vocabulary": sorted(self.vocabulary),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        return cls(
            rows=int(data["rows"]),
            sample_rows=int(data["sample_rows"]),
            lengths={
                name: np.asarray(values, dtype=np.int64) for name, values in data["lengths"].items()
            },
            empty_description_share=float(data["empty_description_share"]),
            oov_rate=float(data["oov_rate"]),
            class_shares={int(code): float(s) for code, s in data["class_shares"].items()},
            vocabulary=frozenset(data["vocabulary"]),
            seed=int(data.get("seed", 0)),
        )


def reference_profile(
    frame: pd.DataFrame,
    vocabulary: Iterable[str],
    *,
    sample_rows: int = 20_000,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the training data of a model (`designation`, `description`, `prdtypecode`).

    `vocabulary`: the model's unigram terms (`model_vocabulary(pipeline)`). Lengths and the
    OOV rate come from a seeded sample of at most `sample_rows` rows, which keeps the profile
    small and KS tests fast; shares of empty descriptions and classes use every row.
    """
    if frame.empty:
        raise ValueError("cannot profile an empty training frame")
    vocabulary = frozenset(vocabulary)
    lengths = text_lengths(frame)
    positions = sample_positions(len(frame), sample_rows, seed)
    tokens, unknown = oov_counts(frame.iloc[positions], vocabulary)
    return ReferenceProfile(
        rows=len(frame),
        sample_rows=len(positions),
        lengths={name: values[positions] for name, values in lengths.items()},
        empty_description_share=float(np.mean(lengths["description_words"] == 0)),
        oov_rate=unknown / tokens if tokens else 0.0,
        class_shares=class_shares(frame["prdtypecode"]),
        vocabulary=vocabulary,
        seed=seed,
    )


# -- statistics ----------------------------------------------------------------------------


def mean_or_nan(values: np.ndarray) -> float:
    """The mean, NaN for no value (an empty window has no mean, not a warning)."""
    return float(values.mean()) if len(values) else math.nan


def length_shift(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float, float]:
    """(KS statistic, KS p-value, Wasserstein distance, that distance over the reference mean)
    of two samples of a length feature; all NaN when either sample is empty."""
    if len(reference) == 0 or len(current) == 0:
        return math.nan, math.nan, math.nan, math.nan
    test = ks_2samp(reference, current)
    distance = float(wasserstein_distance(reference, current))
    reference_mean = mean_or_nan(reference)
    if reference_mean > 0:
        normalized = distance / reference_mean
    else:  # an always-empty reference field: any text at all is an infinite change
        normalized = 0.0 if distance == 0 else math.inf
    return float(test.statistic), float(test.pvalue), distance, normalized


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index of two distributions over the same bins.

    Empty bins get `epsilon` (then both sides are renormalized): PSI is infinite otherwise.
    """
    e = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=float), epsilon, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 identical, 1 disjoint)."""
    return float(jensenshannon(expected, actual, base=2))


def chi2_pvalue(expected: np.ndarray, counts: np.ndarray, epsilon: float = 1e-4) -> float:
    """p-value of a chi-square goodness-of-fit test of `counts` against the shares `expected`
    (a class absent from the reference gets `epsilon`): is the difference more than chance?"""
    counts = np.asarray(counts, dtype=float)
    shares = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    return float(chisquare(counts, shares / shares.sum() * counts.sum()).pvalue)


def live_accuracy(current: pd.DataFrame, feedback: pd.DataFrame) -> tuple[int, int]:
    """(predictions of `current` with a correction in `feedback`, how many were right).

    `current`: prediction_id, predicted_class; `feedback`: prediction_id, prdtypecode (the
    correct class). Corrections of predictions outside the window are ignored."""
    if "prediction_id" not in current.columns or current.empty or feedback.empty:
        return 0, 0
    corrected = current[["prediction_id", "predicted_class"]].dropna(subset=["prediction_id"])
    merged = corrected.merge(
        feedback[["prediction_id", "prdtypecode"]].drop_duplicates("prediction_id", keep="last"),
        on="prediction_id",
    )
    right = pd.to_numeric(merged["predicted_class"]) == pd.to_numeric(merged["prdtypecode"])
    return len(merged), int(right.sum())
