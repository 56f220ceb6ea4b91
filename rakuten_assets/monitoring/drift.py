"""Drift of the served traffic against the training data of the production model.

A `ReferenceProfile` is computed once, when a model is trained: a seeded sample of text
lengths, the share of empty descriptions, the share of tokens outside the model's vocabulary
(OOV) and the class mix of the training labels. `compute_drift` compares a window of the
inference log with it:

- text lengths (designation and description, in characters and in words): two-sample
  Kolmogorov-Smirnov test and Wasserstein distance (also divided by the reference mean, so it
  is unit-free and comparable across features);
- share of empty descriptions; OOV rate (tokens of the model's own cleaning, `clean_text`);
- predicted-class mix against the training class mix: PSI and Jensen-Shannon distance;
- mean confidence and share of low-confidence predictions; volume of the window;
- live accuracy: the share of the window's predictions that users corrected (POST /feedback)
  whose answer was right. Not a drift rule: it is measured on the predictions someone chose
  to correct (real users confirm right answers less often than they fix wrong ones), so it
  is a trend to watch, not an unbiased estimate of the model's accuracy.

Verdict: "not_enough_data" below `min_samples` predictions (statistics are still computed),
otherwise "drift" when one of these fires, else "no_drift":
- PSI or JS of the class mix above its threshold, the difference being significant (a
  chi-square test, `class_mix_pvalue`: in a window of a few hundred predictions, sampling
  noise alone takes the JS distance over 27 classes above 0.1);
- a KS test both significant and large enough (`ks_min_statistic`: with 100,000 rows even
  trivial differences have tiny p-values);
- the OOV rate above the reference's by more than `oov_increase`.

Lengths are raw (HTML included), as the requests arrive; words are whitespace-separated.
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from rakuten_assets.data.categories import CODES
from rakuten_assets.ml.text import fold_accents, listing_text

Verdict = Literal["drift", "no_drift", "not_enough_data"]
Gauge = tuple[str, dict[str, str], float]

LENGTH_FEATURES: tuple[str, ...] = (
    "designation_chars",
    "designation_words",
    "description_chars",
    "description_words",
)
VERDICT_GAUGE: dict[str, float] = {"drift": 1.0, "no_drift": 0.0, "not_enough_data": -1.0}
# TfidfVectorizer's default token_pattern, the one the model's TF-IDF step uses: a token has
# at least two word characters, so single letters and digits are neither in the vocabulary
# nor counted as out of it.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True)
class DriftThresholds:
    """When a window counts as drifted; the defaults are the usual rules of thumb."""

    psi: float = 0.2  # predicted-class PSI above this: drift ...
    js: float = 0.1  # ... or Jensen-Shannon distance (base 2) above this: drift ...
    # ... provided a chi-square test of the predicted counts against the reference mix is
    # significant at this level. Sampling noise alone gives a JS distance of ~2.2/sqrt(n)
    # over 27 classes (0.15 at 200 predictions) and a PSI of ~26/n: without this guard small
    # windows are flagged by chance. 1.0 turns the guard off.
    class_mix_pvalue: float = 0.01
    ks_pvalue: float = 0.01  # a KS test below this p-value ...
    ks_min_statistic: float = 0.1  # ... and above this statistic (effect size): drift
    oov_increase: float = 0.05  # OOV rate above the reference's by more than this: drift
    min_samples: int = 200  # fewer predictions in the window: no verdict
    low_confidence: float = 0.5  # a prediction below this confidence is "low confidence"
    psi_epsilon: float = 1e-4  # share given to an empty class in PSI (avoids log(0))


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


def _sample_positions(total: int, rows: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of at most `rows` of `total` rows (None: all)."""
    if rows is None or total <= rows:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))


def class_counts(codes: Iterable[object]) -> dict[int, int]:
    """Rows of each of the 27 codes; values that are not one of them are ignored."""
    values = pd.to_numeric(pd.Series(list(codes), dtype=object), errors="coerce")
    counts = values.value_counts()
    return {code: int(counts.get(code, 0)) for code in CODES}


def _shares(counts: dict[int, int]) -> dict[int, float]:
    total = sum(counts.values())
    return {code: (n / total if total else 0.0) for code, n in counts.items()}


def class_shares(codes: Iterable[object]) -> dict[int, float]:
    """Share of each of the 27 codes; values that are not one of them are ignored."""
    return _shares(class_counts(codes))


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
        return {name: _mean(values) for name, values in self.lengths.items()}

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
    positions = _sample_positions(len(frame), sample_rows, seed)
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


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


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


@dataclass(frozen=True)
class FeatureDrift:
    """One length feature: reference vs current window."""

    feature: str
    reference_mean: float
    current_mean: float
    ks_statistic: float
    ks_pvalue: float
    wasserstein: float  # in the feature's unit (characters or words)
    wasserstein_normalized: float  # divided by the reference mean
    drifted: bool


@dataclass
class DriftReport:
    """The statistics of one window and the verdict; `as_dict`, `summary_table`, `gauges`."""

    verdict: Verdict
    reasons: list[str]
    thresholds: DriftThresholds
    window_predictions: int
    features: dict[str, FeatureDrift]
    reference_empty_description_share: float
    current_empty_description_share: float
    reference_oov_rate: float
    current_oov_rate: float
    oov_sample_rows: int  # rows of the window the current OOV rate was computed on
    psi_predicted_class: float
    js_predicted_class: float
    chi2_pvalue_predicted_class: float  # the guard of PSI and JS (`class_mix_pvalue`)
    reference_class_shares: dict[int, float]
    current_class_shares: dict[int, float]
    confidence_mean: float
    low_confidence_share: float
    model_versions: dict[str, int] = field(default_factory=dict)  # predictions per version
    window_start: str | None = None  # ISO time of the first and last prediction
    window_end: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    # Predictions of the window with a user correction (None: corrections not measured), how
    # many of them the model had right, and the share (NaN without any correction).
    feedback_corrected: int | None = None
    feedback_correct: int = 0
    feedback_accuracy: float = math.nan

    @property
    def drifted(self) -> bool:
        return self.verdict == "drift"

    def checks(self) -> dict[str, str | None]:
        """Each drift rule -> the reason it fires (None when it does not), whatever the
        window size; the verdict is "drift" when one fires in a window of min_samples+."""
        t = self.thresholds
        significant = (
            t.class_mix_pvalue >= 1 or self.chi2_pvalue_predicted_class < t.class_mix_pvalue
        )
        guard = (
            f" (chi-square p-value {self.chi2_pvalue_predicted_class:.2g} < {t.class_mix_pvalue:g})"
            if t.class_mix_pvalue < 1
            else ""
        )
        checks: dict[str, str | None] = {
            "psi_predicted_class": (
                f"PSI predicted_class = {self.psi_predicted_class:.3f} > {t.psi:g}{guard}"
                if significant and _above(self.psi_predicted_class, t.psi)
                else None
            ),
            "js_predicted_class": (
                f"JS predicted_class = {self.js_predicted_class:.3f} > {t.js:g}{guard}"
                if significant and _above(self.js_predicted_class, t.js)
                else None
            ),
        }
        for name, f in self.features.items():
            checks[f"ks[{name}]"] = (
                f"KS {name}: statistic {f.ks_statistic:.3f} > {t.ks_min_statistic:g} with "
                f"p-value {f.ks_pvalue:.2g} < {t.ks_pvalue:g} "
                f"(mean {f.reference_mean:.1f} -> {f.current_mean:.1f})"
                if f.drifted
                else None
            )
        change = self.current_oov_rate - self.reference_oov_rate
        checks["oov_rate"] = (
            f"OOV rate {self.current_oov_rate:.3f} vs {self.reference_oov_rate:.3f} in "
            f"reference: +{change:.3f} > {t.oov_increase:g}"
            if _above(change, t.oov_increase)
            else None
        )
        return checks

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (NaN becomes None, class codes become strings)."""
        data = asdict(self)
        for key in ("reference_class_shares", "current_class_shares"):
            data[key] = {str(code): share for code, share in data[key].items()}
        return _json_safe(data)

    def summary_table(self) -> pd.DataFrame:
        """One row per statistic: statistic, reference, current, value, threshold, drifted.

        `drifted` says whether the statistic's rule fires (always False without a verdict).
        """
        t = self.thresholds
        fired = {key: reason is not None for key, reason in self.checks().items()}
        nan = math.nan
        n = float(self.window_predictions)
        rows: list[tuple[str, float, float, float, float, bool]] = [
            ("window_predictions", nan, n, n, t.min_samples, False),
            ("psi_predicted_class", nan, nan, self.psi_predicted_class, t.psi,
             fired["psi_predicted_class"]),
            ("js_predicted_class", nan, nan, self.js_predicted_class, t.js,
             fired["js_predicted_class"]),
            ("chi2_pvalue_predicted_class", nan, nan, self.chi2_pvalue_predicted_class,
             t.class_mix_pvalue,
             fired["psi_predicted_class"] or fired["js_predicted_class"]),
        ]  # fmt: skip
        for name, f in self.features.items():
            rows += [
                (f"ks_statistic[{name}]", f.reference_mean, f.current_mean, f.ks_statistic,
                 t.ks_min_statistic, fired[f"ks[{name}]"]),
                (f"ks_pvalue[{name}]", f.reference_mean, f.current_mean, f.ks_pvalue,
                 t.ks_pvalue, fired[f"ks[{name}]"]),
                (f"wasserstein_normalized[{name}]", f.reference_mean, f.current_mean,
                 f.wasserstein_normalized, nan, False),
            ]  # fmt: skip
        rows += [
            ("empty_description_share", self.reference_empty_description_share,
             self.current_empty_description_share,
             self.current_empty_description_share - self.reference_empty_description_share,
             nan, False),
            ("oov_rate", self.reference_oov_rate, self.current_oov_rate,
             self.current_oov_rate - self.reference_oov_rate, t.oov_increase,
             fired["oov_rate"]),
            ("confidence_mean", nan, self.confidence_mean, self.confidence_mean, nan, False),
            ("low_confidence_share", nan, self.low_confidence_share, self.low_confidence_share,
             t.low_confidence, False),
        ]  # fmt: skip
        if self.feedback_corrected is not None:
            corrected = float(self.feedback_corrected)
            rows += [
                ("feedback_corrected", nan, corrected, corrected, nan, False),
                ("feedback_accuracy", nan, self.feedback_accuracy, self.feedback_accuracy, nan,
                 False),
            ]  # fmt: skip
        table = pd.DataFrame(
            rows, columns=["statistic", "reference", "current", "value", "threshold", "drifted"]
        )
        if self.verdict == "not_enough_data":
            table["drifted"] = False
        return table

    def gauges(self) -> list[Gauge]:
        """(metric name, labels, value) for Prometheus; the names are a contract with the
        dashboards and alerts, do not rename them."""
        gauges: list[Gauge] = [
            ("rakuten_drift_detected", {}, VERDICT_GAUGE[self.verdict]),
            ("rakuten_drift_psi_predicted_class", {}, self.psi_predicted_class),
            ("rakuten_drift_js_predicted_class", {}, self.js_predicted_class),
        ]
        for name, f in self.features.items():
            labels = {"feature": name}
            gauges += [
                ("rakuten_drift_ks_statistic", labels, f.ks_statistic),
                ("rakuten_drift_ks_pvalue", dict(labels), f.ks_pvalue),
                ("rakuten_drift_wasserstein", dict(labels), f.wasserstein_normalized),
                ("rakuten_drift_text_length_mean", {**labels, "window": "reference"},
                 f.reference_mean),
                ("rakuten_drift_text_length_mean", {**labels, "window": "current"},
                 f.current_mean),
            ]  # fmt: skip
        for window, empty, oov, shares in (
            ("reference", self.reference_empty_description_share, self.reference_oov_rate,
             self.reference_class_shares),
            ("current", self.current_empty_description_share, self.current_oov_rate,
             self.current_class_shares),
        ):  # fmt: skip
            gauges += [
                ("rakuten_drift_empty_description_share", {"window": window}, empty),
                ("rakuten_drift_oov_rate", {"window": window}, oov),
            ]
            gauges += [
                ("rakuten_drift_class_share", {"predicted_class": str(code), "window": window},
                 share)
                for code, share in shares.items()
            ]  # fmt: skip
        gauges += [
            ("rakuten_drift_confidence_mean", {}, self.confidence_mean),
            ("rakuten_drift_low_confidence_share", {}, self.low_confidence_share),
            ("rakuten_drift_window_predictions", {}, float(self.window_predictions)),
        ]
        if self.feedback_corrected is not None:
            gauges.append(("rakuten_feedback_corrected", {}, float(self.feedback_corrected)))
            if self.feedback_corrected:  # no correction: no accuracy (absent, not NaN)
                gauges.append(("rakuten_feedback_accuracy", {}, self.feedback_accuracy))
        return [(name, labels, float(value)) for name, labels, value in gauges]


def _above(value: float, threshold: float) -> bool:
    return bool(np.isfinite(value) and value > threshold)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _feature_drift(
    name: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    reference_mean, current_mean = _mean(reference), _mean(current)
    if len(reference) == 0 or len(current) == 0:
        return FeatureDrift(name, reference_mean, current_mean, *(math.nan,) * 4, False)
    test = ks_2samp(reference, current)
    statistic, pvalue = float(test.statistic), float(test.pvalue)
    distance = float(wasserstein_distance(reference, current))
    if reference_mean > 0:
        normalized = distance / reference_mean
    else:  # an always-empty reference field: any text at all is an infinite change
        normalized = 0.0 if distance == 0 else math.inf
    drifted = pvalue < thresholds.ks_pvalue and statistic > thresholds.ks_min_statistic
    return FeatureDrift(
        name, reference_mean, current_mean, statistic, pvalue, distance, normalized, drifted
    )


def _window_bounds(current: pd.DataFrame) -> tuple[str | None, str | None]:
    column = next((c for c in ("at", "timestamp") if c in current.columns), None)
    if column is None or current.empty:
        return None, None
    times = pd.to_datetime(current[column], errors="coerce", utc=True).dropna()
    if times.empty:
        return None, None
    return times.min().isoformat(), times.max().isoformat()


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


def compute_drift(
    reference: ReferenceProfile,
    current: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    *,
    oov_sample_rows: int | None = 5_000,
    seed: int = 0,
    feedback: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare a window of the inference log with the reference profile of its model.

    `current`: columns designation, description, predicted_class, confidence (and optionally
    at/timestamp, model_version). Every statistic uses every row of the window except the OOV
    rate: cleaning is the model's own, per row in Python (~60 µs a listing), so it runs on a
    seeded sample of at most `oov_sample_rows` rows (None: all rows); the size used is in
    `oov_sample_rows` of the report. 5,000 listings are ~500,000 tokens: the rate is known to
    well under a percentage point.

    `feedback`: users' corrections (prediction_id, prdtypecode), for the live accuracy of the
    window (`live_accuracy`); None leaves it unmeasured (no feedback gauges).
    """
    thresholds = thresholds or DriftThresholds()
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    n = len(current)
    lengths = text_lengths(current)
    lap("lengths")
    features = {
        name: _feature_drift(name, reference.lengths[name], lengths[name], thresholds)
        for name in LENGTH_FEATURES
    }
    empty_share = float(np.mean(lengths["description_words"] == 0)) if n else math.nan
    lap("ks_wasserstein")

    sample = current.iloc[_sample_positions(n, oov_sample_rows, seed)]
    tokens, unknown = oov_counts(sample, reference.vocabulary)
    oov_rate = unknown / tokens if tokens else math.nan
    lap("oov")

    predicted = current["predicted_class"] if "predicted_class" in current.columns else []
    counts = class_counts(predicted)
    current_shares = _shares(counts)
    expected = np.array([reference.class_shares.get(code, 0.0) for code in CODES])
    observed = np.array([counts[code] for code in CODES])
    if observed.sum() > 0:
        actual = observed / observed.sum()
        psi_value = psi(expected, actual, thresholds.psi_epsilon)
        js_value = js_distance(expected, actual)
        chi2_p = chi2_pvalue(expected, observed, thresholds.psi_epsilon)
    else:
        psi_value = js_value = chi2_p = math.nan
    confidence = (
        pd.to_numeric(current["confidence"], errors="coerce").dropna().to_numpy()
        if "confidence" in current.columns
        else np.array([])
    )
    confidence_mean = _mean(confidence)
    low_share = (
        float(np.mean(confidence < thresholds.low_confidence)) if len(confidence) else math.nan
    )
    versions = (
        current["model_version"].astype(str).value_counts().to_dict()
        if "model_version" in current.columns
        else {}
    )
    window_start, window_end = _window_bounds(current)
    lap("classes_confidence")

    report = DriftReport(
        verdict="no_drift",
        reasons=[],
        thresholds=thresholds,
        window_predictions=n,
        features=features,
        reference_empty_description_share=reference.empty_description_share,
        current_empty_description_share=empty_share,
        reference_oov_rate=reference.oov_rate,
        current_oov_rate=oov_rate,
        oov_sample_rows=len(sample),
        psi_predicted_class=psi_value,
        js_predicted_class=js_value,
        chi2_pvalue_predicted_class=chi2_p,
        reference_class_shares=dict(reference.class_shares),
        current_class_shares=current_shares,
        confidence_mean=confidence_mean,
        low_confidence_share=low_share,
        model_versions={str(k): int(v) for k, v in versions.items()},
        window_start=window_start,
        window_end=window_end,
        timings=timings,
    )
    if feedback is not None:
        corrected, right = live_accuracy(current, feedback)
        report.feedback_corrected = corrected
        report.feedback_correct = right
        report.feedback_accuracy = right / corrected if corrected else math.nan
    if n < thresholds.min_samples:
        report.verdict = "not_enough_data"
        report.reasons = [
            f"window has {n} predictions, fewer than min_samples={thresholds.min_samples}: "
            "no verdict"
        ]
    else:
        report.reasons = [reason for reason in report.checks().values() if reason]
        report.verdict = "drift" if report.reasons else "no_drift"
    timings["total"] = time.perf_counter() - started
    return report


# -- plots ---------------------------------------------------------------------------------


def _png(figure: Any) -> bytes:
    # A bare Figure on the Agg canvas: no pyplot global state, safe in threads and workers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def length_histograms_png(reference: ReferenceProfile, current: pd.DataFrame) -> bytes:
    """2x2 histograms (density) of the four length features, reference vs current window."""
    from matplotlib.figure import Figure

    lengths = text_lengths(current)
    figure = Figure(figsize=(12, 8))
    axes = figure.subplots(2, 2)
    for ax, name in zip(axes.flat, LENGTH_FEATURES, strict=True):
        ref, cur = reference.lengths[name], lengths[name]
        both = np.concatenate([ref, cur])
        top = float(np.percentile(both, 99)) if len(both) else 1.0
        bins = np.linspace(0, max(top, 1.0), 41)
        for values, label in ((ref, "reference"), (cur, "current")):
            if len(values):
                ax.hist(
                    np.clip(values, 0, bins[-1]),
                    bins=bins,
                    density=True,
                    alpha=0.5,
                    label=f"{label} (mean {values.mean():.0f}, n={len(values):,})",
                )
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("characters" if name.endswith("chars") else "words")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    figure.suptitle("Text lengths, reference vs current window (last bin: 99th percentile +)")
    return _png(figure)


def class_mix_png(report: DriftReport) -> bytes:
    """Grouped bars of the share of each class: training labels vs predictions of the window."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5))
    ax = figure.subplots()
    positions = np.arange(len(CODES))
    width = 0.4
    for offset, shares, label in (
        (0.0, report.reference_class_shares, "reference (training labels)"),
        (width, report.current_class_shares, "current (predictions)"),
    ):
        ax.bar(positions + offset, [shares.get(code, 0.0) for code in CODES], width, label=label)
    ax.set_xticks(positions + width / 2, [str(code) for code in CODES], rotation=90)
    ax.set_xlabel("prdtypecode")
    ax.set_ylabel("share")
    ax.set_title(
        f"Class mix: PSI {report.psi_predicted_class:.3f}, "
        f"JS {report.js_predicted_class:.3f} ({report.verdict})"
    )
    ax.legend()
    return _png(figure)
