"""Drift statistics and the traffic-shift generator, on a model trained on generated data.

The reference is the training data of the `trained` model; the windows are requests built by
`shifted_requests` from fresh generated listings (same distribution as training, other seed)
and predicted by that model, as the serving API would log them.
"""

from __future__ import annotations

import io
import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from rakuten_assets.data.categories import CODES
from rakuten_assets.data.synth.generator import SynthOptions, generate
from rakuten_assets.ml.dataset import SplitParams, build_balanced_dataset
from rakuten_assets.ml.model import TrainingResult
from rakuten_assets.monitoring.drift_plots import class_mix_png, length_histograms_png
from rakuten_assets.monitoring.drift_report import DriftReport, DriftThresholds, compute_drift
from rakuten_assets.monitoring.drift_statistics import (
    LENGTH_FEATURES,
    ReferenceProfile,
    js_distance,
    model_vocabulary,
    psi,
    reference_profile,
)
from rakuten_assets.monitoring.traffic import SHIFTS, WORD_MAP, shifted_requests

GAUGE_NAMES = {
    "rakuten_drift_detected",
    "rakuten_drift_psi_predicted_class",
    "rakuten_drift_js_predicted_class",
    "rakuten_drift_ks_statistic",
    "rakuten_drift_ks_pvalue",
    "rakuten_drift_wasserstein",
    "rakuten_drift_text_length_mean",
    "rakuten_drift_empty_description_share",
    "rakuten_drift_oov_rate",
    "rakuten_drift_class_share",
    "rakuten_drift_confidence_mean",
    "rakuten_drift_low_confidence_share",
    "rakuten_drift_window_predictions",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WINDOW = 2000


@pytest.fixture(scope="module")
def training_frame(synth_frame: pd.DataFrame) -> pd.DataFrame:
    """The unique training rows of the `trained` model (the same deterministic split)."""
    dataset = build_balanced_dataset(synth_frame, "100", 1, SplitParams(min_test_rows_per_class=0))
    return dataset.train


@pytest.fixture(scope="module")
def reference(training_frame: pd.DataFrame, trained: TrainingResult) -> ReferenceProfile:
    return reference_profile(training_frame, model_vocabulary(trained.pipeline))


@pytest.fixture(scope="module")
def fresh_listings() -> pd.DataFrame:
    """X_test-style listings the model has never seen, from the training distribution."""
    return generate(SynthOptions(rows=0, test_rows=3000, seed=99)).x_test


def served(pipeline: Pipeline, requests: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """The inference log of `requests` answered by `pipeline`."""
    frame = pd.DataFrame(requests)[["designation", "description"]].reset_index(drop=True)
    probabilities = pipeline.predict_proba(frame)
    frame["predicted_class"] = pipeline.classes_[probabilities.argmax(axis=1)]
    frame["confidence"] = probabilities.max(axis=1)
    frame["model_version"] = "3"
    frame["at"] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(
        np.arange(len(frame)), unit="s"
    )
    return frame


@pytest.fixture(scope="module")
def windows(trained: TrainingResult, fresh_listings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {
        shift: served(trained.pipeline, shifted_requests(fresh_listings, WINDOW, shift, seed=5))
        for shift in SHIFTS
    }


def reasons_about(report: DriftReport, prefix: str) -> list[str]:
    return [reason for reason in report.reasons if reason.startswith(prefix)]


# -- reference profile ----------------------------------------------------------------------


def test_model_vocabulary_is_the_unigrams_of_the_word_tfidf(trained: TrainingResult) -> None:
    vocabulary = model_vocabulary(trained.pipeline)
    # the default model: the "words" block of its "features" step (accents already folded)
    words = trained.pipeline.named_steps["features"].named_transformers_["words"]
    fitted = words.vocabulary_
    assert vocabulary and vocabulary <= set(fitted)
    assert vocabulary == {term for term in fitted if " " not in term}
    assert {"piscine", "livre"} <= vocabulary


def test_reference_profile_is_compact_and_serializable(
    reference: ReferenceProfile, training_frame: pd.DataFrame
) -> None:
    assert reference.rows == len(training_frame)
    assert reference.sample_rows == min(len(training_frame), 20_000)
    assert set(reference.lengths) == set(LENGTH_FEATURES)
    assert all(len(values) == reference.sample_rows for values in reference.lengths.values())
    assert set(reference.class_shares) == set(CODES)
    assert sum(reference.class_shares.values()) == pytest.approx(1.0)
    expected_empty = training_frame["description"].fillna("").str.strip().eq("").mean()
    assert reference.empty_description_share == pytest.approx(expected_empty)
    assert 0.0 < reference.oov_rate < 0.3

    text = json.dumps(reference.to_dict(), allow_nan=False)
    again = ReferenceProfile.from_dict(json.loads(text))
    assert again.vocabulary == reference.vocabulary
    assert again.class_shares == pytest.approx(reference.class_shares)
    for name in LENGTH_FEATURES:
        np.testing.assert_array_equal(again.lengths[name], reference.lengths[name])
    assert pickle.loads(pickle.dumps(reference)).oov_rate == reference.oov_rate


def test_reference_profile_subsamples_deterministically(
    training_frame: pd.DataFrame, trained: TrainingResult
) -> None:
    vocabulary = model_vocabulary(trained.pipeline)
    first = reference_profile(training_frame, vocabulary, sample_rows=1000, seed=3)
    second = reference_profile(training_frame, vocabulary, sample_rows=1000, seed=3)
    assert first.sample_rows == 1000
    np.testing.assert_array_equal(
        first.lengths["description_chars"], second.lengths["description_chars"]
    )
    assert first.oov_rate == second.oov_rate
    # Class and empty-description shares use every row, not the sample.
    assert first.class_shares == pytest.approx(
        reference_profile(training_frame, vocabulary, sample_rows=500, seed=4).class_shares
    )


# -- verdicts ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["training sample", "fresh listings"])
def test_traffic_like_the_training_data_shows_no_drift(
    source: str,
    reference: ReferenceProfile,
    trained: TrainingResult,
    training_frame: pd.DataFrame,
    windows: dict[str, pd.DataFrame],
) -> None:
    if source == "training sample":
        window = served(trained.pipeline, training_frame.sample(WINDOW, random_state=1))
    else:
        window = windows["none"]
    report = compute_drift(reference, window)
    assert report.verdict == "no_drift", report.reasons
    assert report.reasons == []
    assert report.window_predictions == WINDOW
    assert report.psi_predicted_class < 0.05
    assert report.js_predicted_class < 0.1
    assert all(f.ks_statistic < 0.05 for f in report.features.values())
    assert abs(report.current_oov_rate - report.reference_oov_rate) < 0.02
    assert report.confidence_mean > 0.7
    assert report.model_versions == {"3": WINDOW}
    assert report.window_start == "2026-03-01T00:00:00+00:00"
    assert not report.summary_table()["drifted"].any()


def test_length_shift_is_detected_by_the_ks_tests(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    report = compute_drift(reference, windows["length"])
    assert report.verdict == "drift"
    for feature in LENGTH_FEATURES:
        assert reasons_about(report, f"KS {feature}:"), report.reasons
        assert report.features[feature].wasserstein_normalized > 0.3
    assert (
        report.current_empty_description_share > reference.empty_description_share + 0.1
    )  # half of the descriptions are removed


def test_category_shift_is_detected_by_psi_and_js(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    report = compute_drift(reference, windows["category"])
    assert report.verdict == "drift"
    assert reasons_about(report, "PSI predicted_class"), report.reasons
    assert reasons_about(report, "JS predicted_class"), report.reasons
    assert report.psi_predicted_class > 1.0
    # Three families, a third of the window each: pool and spa, books, video games.
    families = (2583, 10, 2280, 2403, 2705, 40, 50, 60, 2462, 2905)
    share = sum(report.current_class_shares[code] for code in families)
    assert share > 0.8 > 2 * sum(reference.class_shares[code] for code in families)
    assert report.current_class_shares[2583] > 2 * reference.class_shares[2583]


def test_language_shift_is_detected_by_the_oov_rate(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    report = compute_drift(reference, windows["language"])
    assert report.verdict == "drift"
    assert reasons_about(report, "OOV rate"), report.reasons
    # German for the mapped French words: ~0.1 more unknown tokens, well over the threshold
    assert (
        report.current_oov_rate > report.reference_oov_rate + 1.5 * DriftThresholds().oov_increase
    )
    # Lengths barely move: a word for a word.
    assert not any(reason.startswith("KS") for reason in report.reasons)
    # The model is lost on foreign text.
    assert (
        report.low_confidence_share > compute_drift(reference, windows["none"]).low_confidence_share
    )


def test_below_min_samples_there_is_no_verdict(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    window = windows["language"].head(150)  # drifted, but too few predictions to say
    report = compute_drift(reference, window, DriftThresholds(min_samples=200))
    assert report.verdict == "not_enough_data"
    assert len(report.reasons) == 1 and "min_samples=200" in report.reasons[0]
    # Statistics are still computed.
    assert math.isfinite(report.psi_predicted_class)
    assert (
        report.current_oov_rate > report.reference_oov_rate + 1.5 * DriftThresholds().oov_increase
    )
    assert all(math.isfinite(f.ks_pvalue) for f in report.features.values())
    assert "oov_rate" in [k for k, reason in report.checks().items() if reason]
    assert not report.summary_table()["drifted"].any()
    assert [v for n, _, v in report.gauges() if n == "rakuten_drift_detected"] == [-1.0]
    # The same window is a drift once min_samples allows a verdict on it.
    assert compute_drift(reference, window, DriftThresholds(min_samples=100)).verdict == "drift"


def test_an_empty_window_has_no_verdict_and_stays_json_able(reference: ReferenceProfile) -> None:
    empty = pd.DataFrame(
        columns=["at", "designation", "description", "predicted_class", "confidence"]
    )
    report = compute_drift(reference, empty)
    assert report.verdict == "not_enough_data"
    assert report.window_predictions == 0
    assert math.isnan(report.psi_predicted_class)
    data = report.as_dict()
    json.dumps(data, allow_nan=False)
    assert data["current_oov_rate"] is None
    assert len(report.gauges()) == len(
        {(n, tuple(sorted(labels.items()))) for n, labels, _ in report.gauges()}
    )


def test_small_windows_are_not_flagged_by_sampling_noise_alone(
    reference: ReferenceProfile, trained: TrainingResult, fresh_listings: pd.DataFrame
) -> None:
    """With 27 classes, 200 predictions give a JS distance of ~0.15 by chance alone: the
    chi-square guard keeps such windows from being called drifted."""
    verdicts, unguarded = [], []
    for seed in range(10):
        window = served(trained.pipeline, shifted_requests(fresh_listings, 250, "none", seed))
        verdicts.append(compute_drift(reference, window).verdict)
        off = DriftThresholds(class_mix_pvalue=1.0)  # the guard turned off
        unguarded.append(compute_drift(reference, window, off).verdict)
    assert verdicts.count("drift") <= 1, verdicts
    assert unguarded.count("drift") >= 5, unguarded


def test_ks_effect_size_floor_ignores_trivial_differences_in_large_windows() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    base = rng.integers(20, 120, size=n)

    def frame(designation_lengths: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "designation": ["a" * k for k in designation_lengths],
                "description": ["mot " * 10] * len(designation_lengths),
                "prdtypecode": np.resize(np.array(CODES), len(designation_lengths)),
                "predicted_class": np.resize(np.array(CODES), len(designation_lengths)),
                "confidence": 0.9,
            }
        )

    reference = reference_profile(frame(base), {"mot"}, sample_rows=n)
    trivial = compute_drift(reference, frame(base + 3))  # +4% of the mean
    feature = trivial.features["designation_chars"]
    assert feature.ks_pvalue < 1e-6 and feature.ks_statistic < 0.1
    assert trivial.verdict == "no_drift", trivial.reasons
    assert trivial.psi_predicted_class == pytest.approx(0.0, abs=1e-9)
    real = compute_drift(reference, frame(base + 30))
    assert reasons_about(real, "KS designation_chars:")
    assert real.features["designation_chars"].wasserstein_normalized == pytest.approx(
        30 / base.mean(), rel=1e-6
    )


# -- statistics ----------------------------------------------------------------------------


def test_psi_and_js_of_identical_distributions_are_zero() -> None:
    shares = np.array([0.5, 0.3, 0.2, 0.0])
    assert psi(shares, shares) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(shares, shares) == pytest.approx(0.0, abs=1e-7)
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    # An empty bin is finite thanks to epsilon, and PSI is symmetric.
    assert math.isfinite(psi(np.array([0.5, 0.5]), np.array([1.0, 0.0])))
    p, q = np.array([0.6, 0.4]), np.array([0.3, 0.7])
    assert psi(p, q) == pytest.approx(psi(q, p))
    assert psi(p, q) == pytest.approx((0.3 - 0.6) * math.log(0.5) + (0.7 - 0.4) * math.log(1.75))


def test_predictions_in_the_training_mix_give_zero_psi(reference: ReferenceProfile) -> None:
    counts = {code: round(share * 100_000) for code, share in reference.class_shares.items()}
    predicted = np.repeat(list(counts), list(counts.values()))
    window = pd.DataFrame(
        {"designation": "piscine", "description": None, "predicted_class": predicted}
    )
    report = compute_drift(reference, window)
    assert report.psi_predicted_class == pytest.approx(0.0, abs=1e-6)
    assert report.js_predicted_class == pytest.approx(0.0, abs=1e-3)
    assert math.isnan(report.confidence_mean)  # no confidence column


# -- outputs -------------------------------------------------------------------------------


def test_gauges_have_the_exact_names_and_labels(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    report = compute_drift(reference, windows["category"])
    gauges = report.gauges()
    assert {name for name, _, _ in gauges} == GAUGE_NAMES
    keys = [(name, tuple(sorted(labels.items()))) for name, labels, _ in gauges]
    assert len(keys) == len(set(keys)), "a series is given twice"
    assert all(isinstance(value, float) for _, _, value in gauges)
    assert all(isinstance(v, str) for _, labels, _ in gauges for v in labels.values())

    def series(name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for n, labels, value in gauges if n == name]

    assert series("rakuten_drift_detected") == [({}, 1.0)]
    assert series("rakuten_drift_window_predictions") == [({}, float(WINDOW))]
    assert series("rakuten_drift_psi_predicted_class") == [({}, report.psi_predicted_class)]
    for name in (
        "rakuten_drift_ks_statistic",
        "rakuten_drift_ks_pvalue",
        "rakuten_drift_wasserstein",
    ):
        assert sorted(labels["feature"] for labels, _ in series(name)) == sorted(LENGTH_FEATURES)
    means = series("rakuten_drift_text_length_mean")
    assert {(labels["feature"], labels["window"]) for labels, _ in means} == {
        (feature, window) for feature in LENGTH_FEATURES for window in ("reference", "current")
    }
    for name in ("rakuten_drift_empty_description_share", "rakuten_drift_oov_rate"):
        assert sorted(labels["window"] for labels, _ in series(name)) == ["current", "reference"]
    shares = series("rakuten_drift_class_share")
    assert {(labels["predicted_class"], labels["window"]) for labels, _ in shares} == {
        (str(code), window) for code in CODES for window in ("reference", "current")
    }
    current = sum(value for labels, value in shares if labels["window"] == "current")
    assert current == pytest.approx(1.0)
    wasserstein = dict((labels["feature"], v) for labels, v in series("rakuten_drift_wasserstein"))
    assert wasserstein == {n: f.wasserstein_normalized for n, f in report.features.items()}
    no_drift = compute_drift(reference, windows["none"]).gauges()
    assert [v for n, _, v in no_drift if n == "rakuten_drift_detected"] == [0.0]


def test_report_dict_and_summary_table(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    report = compute_drift(reference, windows["language"])
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["verdict"] == "drift" and data["reasons"] == report.reasons
    assert set(data["current_class_shares"]) == {str(code) for code in CODES}
    assert data["thresholds"]["psi"] == 0.2 and data["thresholds"]["min_samples"] == 200
    assert data["oov_sample_rows"] == WINDOW  # below the 5,000-row OOV sample
    table = report.summary_table()
    assert list(table.columns) == [
        "statistic",
        "reference",
        "current",
        "value",
        "threshold",
        "drifted",
    ]
    flagged = set(table.loc[table["drifted"], "statistic"])
    assert "oov_rate" in flagged
    assert not any(name.startswith("ks_") for name in flagged)
    # the class mix is flagged in the table of a window that moves it
    category = compute_drift(reference, windows["category"]).summary_table()
    assert {"psi_predicted_class", "js_predicted_class"} <= set(
        category.loc[category["drifted"], "statistic"]
    )


def test_oov_is_computed_on_a_bounded_seeded_sample(
    reference: ReferenceProfile, windows: dict[str, pd.DataFrame]
) -> None:
    window = windows["none"]
    sampled = compute_drift(reference, window, oov_sample_rows=500, seed=1)
    assert sampled.oov_sample_rows == 500
    assert (
        sampled.current_oov_rate
        == compute_drift(reference, window, oov_sample_rows=500, seed=1).current_oov_rate
    )
    everything = compute_drift(reference, window, oov_sample_rows=None)
    assert everything.oov_sample_rows == WINDOW
    assert sampled.current_oov_rate == pytest.approx(everything.current_oov_rate, abs=0.02)


def test_plots_are_png(reference: ReferenceProfile, windows: dict[str, pd.DataFrame]) -> None:
    import matplotlib.image

    report = compute_drift(reference, windows["length"])
    for png, (height, width) in (
        (length_histograms_png(reference, windows["length"]), (800, 1200)),
        (class_mix_png(report), (450, 1200)),
    ):
        assert png.startswith(PNG_MAGIC)
        image = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert image.shape[:2] == (height, width)
        assert image.std() > 0  # something is drawn
    empty = pd.DataFrame(columns=["designation", "description"])
    assert length_histograms_png(reference, empty).startswith(PNG_MAGIC)


# -- traffic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", SHIFTS)
def test_shifted_requests_are_deterministic_and_valid(
    shift: str, fresh_listings: pd.DataFrame
) -> None:
    requests = shifted_requests(fresh_listings, 300, shift, seed=4)
    assert requests == shifted_requests(fresh_listings, 300, shift, seed=4)
    assert requests != shifted_requests(fresh_listings, 300, shift, seed=5)
    assert len(requests) == 300
    for request in requests:
        assert set(request) == {"designation", "description"}
        assert request["designation"].strip()
        assert len(request["designation"]) <= 10_000
        assert request["description"] is None or 0 < len(request["description"]) <= 10_000


def test_shifted_requests_beyond_the_frame_draw_with_replacement(
    fresh_listings: pd.DataFrame,
) -> None:
    small = fresh_listings.head(50)
    requests = shifted_requests(small, 120, "none", seed=0)
    assert len(requests) == 120
    assert {r["designation"] for r in requests} <= set(small["designation"])
    with pytest.raises(ValueError, match="unknown shift"):
        shifted_requests(small, 10, "weather")


def test_no_shift_keeps_the_listings_as_they_are(fresh_listings: pd.DataFrame) -> None:
    original = {
        (d, s if isinstance(s, str) else None)
        for d, s in zip(fresh_listings["designation"], fresh_listings["description"], strict=True)
    }
    unlimited = shifted_requests(fresh_listings, 3000, "none", seed=0, max_chars=10**9)
    assert {(r["designation"], r["description"]) for r in unlimited} == original
    # With the API's limit, the few pasted manuals are cut at a space, never emptied.
    limited = shifted_requests(fresh_listings, 3000, "none", seed=0)
    cut = 0
    for full, request in zip(unlimited, limited, strict=True):
        if full != request:
            cut += 1
            assert len(full["description"]) > 10_000 >= len(request["description"]) > 5_000
            assert full["description"].startswith(request["description"])
    assert cut < 0.01 * len(limited)


def test_language_shift_translates_french_words(fresh_listings: pd.DataFrame) -> None:
    requests = shifted_requests(fresh_listings, 500, "language", seed=0)
    words = " ".join(f"{r['designation']} {r['description'] or ''}" for r in requests).split()
    french = sum(word.lower() in WORD_MAP for word in words)
    original = shifted_requests(fresh_listings, 500, "none", seed=0)
    before = " ".join(f"{r['designation']} {r['description'] or ''}" for r in original).split()
    assert french < 0.2 * sum(word.lower() in WORD_MAP for word in before)
    text = " ".join(words)
    assert " and " in text or " und " in text
