"""PNG charts for metadata and artifacts (matplotlib, no display), and the helpers every chart
of the project is built with (`new_figure`, `figure_png`, `grouped_bars_png`)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rakuten_assets.data.categories import category_name

if TYPE_CHECKING:
    from rakuten_assets.ml.model import Evaluation


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A bare Figure on the Agg canvas: no pyplot global state (nothing to close, no backend
    to select), so charts are safe in threads and worker processes."""
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, laid out tightly, 100 dpi."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown embedding a PNG (the Dagster UI renders it in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def grouped_bars_png(values: pd.DataFrame, ylabel: str, title: str | None = None) -> bytes:
    """Grouped bars of a value per class: one group per row (index: prdtypecode), one bar
    per column (its name is the legend)."""
    figure = new_figure((12, 4.5))
    axes = figure.subplots()
    positions = np.arange(len(values))
    width = 0.8 / len(values.columns)
    for i, column in enumerate(values.columns):
        axes.bar(positions + i * width, values[column], width, label=column)
    axes.set_xticks(positions + 0.4 - width / 2, [str(c) for c in values.index], rotation=90)
    axes.set_ylabel(ylabel)
    axes.set_xlabel("prdtypecode")
    if title:
        axes.set_title(title)
    axes.legend()
    return figure_png(figure)


def class_counts_png(counts: pd.DataFrame) -> bytes:
    """Grouped bars of rows per class (one bar per column of `counts`)."""
    return grouped_bars_png(counts, "rows")


def confusion_matrix_png(evaluation: Evaluation) -> bytes:
    """The row-normalized confusion matrix."""
    matrix = evaluation.confusion.astype(float)
    totals = matrix.sum(axis=1, keepdims=True)
    matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    names = [f"{code} {category_name(code, 'en')[:22]}" for code in evaluation.labels]
    figure = new_figure((13, 11))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix (row-normalized), weighted F1 {evaluation.weighted_f1:.3f}")
    figure.colorbar(image, ax=axes, fraction=0.04)
    return figure_png(figure)
