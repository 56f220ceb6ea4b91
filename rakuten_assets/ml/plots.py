"""PNG charts for metadata and artifacts (matplotlib, no display)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rakuten_assets.data.categories import category_name
from rakuten_assets.ml.model import Evaluation


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown embedding a PNG (the Dagster UI renders it in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def class_counts_png(counts: pd.DataFrame) -> bytes:
    """Grouped bars of rows per class (one bar per column of `counts`)."""
    figure, axes = plt.subplots(figsize=(12, 4.5))
    positions = np.arange(len(counts))
    width = 0.8 / len(counts.columns)
    for i, column in enumerate(counts.columns):
        axes.bar(positions + i * width, counts[column], width, label=column)
    axes.set_xticks(positions + 0.4 - width / 2, [str(c) for c in counts.index], rotation=90)
    axes.set_ylabel("rows")
    axes.set_xlabel("prdtypecode")
    axes.legend()
    return _png(figure)


def confusion_matrix_png(evaluation: Evaluation) -> bytes:
    """The row-normalized confusion matrix."""
    matrix = evaluation.confusion.astype(float)
    totals = matrix.sum(axis=1, keepdims=True)
    matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    names = [f"{code} {category_name(code, 'en')[:22]}" for code in evaluation.labels]
    figure, axes = plt.subplots(figsize=(13, 11))
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix (row-normalized), weighted F1 {evaluation.weighted_f1:.3f}")
    figure.colorbar(image, ax=axes, fraction=0.04)
    return _png(figure)
