"""The drift report of one window: thresholds, verdict, table, and the gauges it pushes.

`compute_drift` compares a window of the inference log with the reference profile of its
model (the statistics are in `drift_statistics`), then judges. Verdict: "not_enough_data"
below `min_samples` predictions (statistics are still computed), otherwise "drift" when one
of these fires, else "no_drift":
- PSI or JS of the class mix above its threshold, the difference being significant (a
  chi-square test, `class_mix_pvalue`: in a window of a few hundred predictions, sampling
  noise alone takes the JS distance over 27 classes above 0.1);
- a KS test both significant and large enough (`ks_min_statistic`: with 100,000 rows even
  trivial differences have tiny p-values);
- the OOV rate above the reference's by more than `oov_increase`.

`DriftThresholds` is the one definition of these parameters (no Dagster import): the
launchpad's `DriftConfig` is built from its fields.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from rakuten_assets.data.categories import CODES
from rakuten_assets.monitoring.drift_statistics import (
    LENGTH_FEATURES,
    ReferenceProfile,
    chi2_pvalue,
    class_counts,
    count_shares,
    js_distance,
    length_shift,
    live_accuracy,
    mean_or_nan,
    oov_counts,
    psi,
    sample_positions,
    text_lengths,
)

Verdict = Literal["drift", "no_drift", "not_enough_data"]
Gauge = tuple[str, dict[str, str], float]

VERDICT_GAUGE: dict[str, float] = {"drift": 1.0, "no_drift": 0.0, "not_enough_data": -1.0}


def _described(default: float, description: str) -> Any:
    # The description is what the launchpad shows next to the field (`DriftConfig`).
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class DriftThresholds:
    """When a window counts as drifted; the defaults are the usual rules of thumb."""

    psi: float = _described(0.2, "PSI of the predicted-class mix above this: drift.")
    js: float = _described(0.1, "Jensen-Shannon distance (base 2) of the class mix above: drift.")
    # Sampling noise alone gives a JS distance of ~2.2/sqrt(n) over 27 classes (0.15 at 200
    # predictions) and a PSI of ~26/n: without this guard small windows are flagged by chance.
    class_mix_pvalue: float = _described(
        0.01,
        "PSI and JS count only when a chi-square test of the predicted counts against the "
        "reference mix is significant at this level; 1.0 turns the guard off.",
    )
    ks_pvalue: float = _described(0.01, "A KS test below this p-value (with effect): drift.")
    ks_min_statistic: float = _described(0.1, "Smallest KS statistic (effect size) that counts.")
    oov_increase: float = _described(0.05, "OOV rate above the reference's by more: drift.")
    min_samples: int = _described(200, "Fewer predictions in the window: 'not enough data'.")
    low_confidence: float = _described(0.5, "A prediction below this confidence is 'low'.")
    psi_epsilon: float = _described(1e-4, "Share given to an empty class in PSI (no log(0)).")

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")
        for name in ("class_mix_pvalue", "ks_pvalue"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a p-value, in [0, 1], got {getattr(self, name)}")
        if self.psi_epsilon <= 0:
            raise ValueError(f"psi_epsilon must be > 0, got {self.psi_epsilon}")


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
    statistic, pvalue, distance, normalized = length_shift(reference, current)
    drifted = pvalue < thresholds.ks_pvalue and statistic > thresholds.ks_min_statistic
    return FeatureDrift(
        name,
        mean_or_nan(reference),
        mean_or_nan(current),
        statistic,
        pvalue,
        distance,
        normalized,
        drifted,
    )


def _window_bounds(current: pd.DataFrame) -> tuple[str | None, str | None]:
    column = next((c for c in ("at", "timestamp") if c in current.columns), None)
    if column is None or current.empty:
        return None, None
    times = pd.to_datetime(current[column], errors="coerce", utc=True).dropna()
    if times.empty:
        return None, None
    return times.min().isoformat(), times.max().isoformat()


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

    sample = current.iloc[sample_positions(n, oov_sample_rows, seed)]
    tokens, unknown = oov_counts(sample, reference.vocabulary)
    oov_rate = unknown / tokens if tokens else math.nan
    lap("oov")

    predicted = current["predicted_class"] if "predicted_class" in current.columns else []
    counts = class_counts(predicted)
    current_shares = count_shares(counts)
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
    confidence_mean = mean_or_nan(confidence)
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
