"""Charts of a drift report for the asset's metadata, built with the helpers of `ml.plots`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rakuten_assets.data.categories import CODES
from rakuten_assets.ml.plots import figure_png, grouped_bars_png, new_figure
from rakuten_assets.monitoring.drift_report import DriftReport
from rakuten_assets.monitoring.drift_statistics import (
    LENGTH_FEATURES,
    ReferenceProfile,
    text_lengths,
)


def length_histograms_png(reference: ReferenceProfile, current: pd.DataFrame) -> bytes:
    """2x2 histograms (density) of the four length features, reference vs current window."""
    lengths = text_lengths(current)
    figure = new_figure((12, 8))
    for ax, name in zip(figure.subplots(2, 2).flat, LENGTH_FEATURES, strict=True):
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
    return figure_png(figure)


def class_mix_png(report: DriftReport) -> bytes:
    """Grouped bars of the share of each class: training labels vs predictions of the window."""
    shares = (
        pd.DataFrame(
            {
                "reference (training labels)": report.reference_class_shares,
                "current (predictions)": report.current_class_shares,
            }
        )
        .reindex(list(CODES))
        .fillna(0.0)
    )
    title = (
        f"Class mix: PSI {report.psi_predicted_class:.3f}, "
        f"JS {report.js_predicted_class:.3f} ({report.verdict})"
    )
    return grouped_bars_png(shares, "share", title)
