"""Challenger replay: a candidate model scored on the requests production answered.

Before `production` moves, the challenger answers the last N logged production requests
(`db.queries.replay_requests`): how often it agrees with production's logged answer, how sure
each model is, and, on the requests a user corrected (`POST /feedback`), the accuracy of both.
A test set says which model is better on labelled data; the replay says how differently the
new one would answer the live traffic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from rakuten_assets.ml.model import listings

DEFAULT_REPLAY_ROWS = 5_000
# Rows scored per predict_proba call: one call is fast (5,000 rows ~1 s), batches bound the
# memory of the sparse features when a team replays far more requests.
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class ReplayResult:
    rows: int
    agreement: float | None  # share of requests where both models answer the same class
    champion_confidence: float | None  # mean logged confidence of production
    challenger_confidence: float | None  # mean top probability of the challenger
    feedback_rows: int  # replayed requests with a user correction
    champion_accuracy: float | None  # on those requests
    challenger_accuracy: float | None
    skipped: str | None = None  # why nothing was replayed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def mlflow_metrics(self) -> dict[str, float]:
        """The numbers, as `replay_*` metrics (those that exist)."""
        values = {
            "replay_rows": float(self.rows),
            "replay_agreement": self.agreement,
            "replay_champion_confidence": self.champion_confidence,
            "replay_challenger_confidence": self.challenger_confidence,
            "replay_feedback_rows": float(self.feedback_rows),
            "replay_champion_accuracy": self.champion_accuracy,
            "replay_challenger_accuracy": self.challenger_accuracy,
        }
        return {key: float(value) for key, value in values.items() if value is not None}

    def summary(self) -> str:
        if self.skipped:
            return f"replay skipped: {self.skipped}"
        text = (
            f"replayed {self.rows:,} production request(s): agreement {self.agreement:.3f}, "
            f"mean confidence {self.challenger_confidence:.3f} (challenger) vs "
            f"{self.champion_confidence:.3f} (production)"
        )
        if self.feedback_rows:
            text += (
                f"; on {self.feedback_rows:,} corrected: accuracy "
                f"{self.challenger_accuracy:.3f} vs {self.champion_accuracy:.3f}"
            )
        return text


def skipped(reason: str) -> ReplayResult:
    return ReplayResult(0, None, None, None, 0, None, None, skipped=reason)


def replay(challenger: Any, requests: pd.DataFrame, batch_rows: int = BATCH_ROWS) -> ReplayResult:
    """Score `challenger` (a fitted pipeline) on logged requests (`replay_requests` rows)."""
    if requests.empty:
        return skipped("no logged request of the production version")
    inputs = listings(requests)
    probabilities = np.vstack(
        [
            np.asarray(challenger.predict_proba(inputs.iloc[start : start + batch_rows]))
            for start in range(0, len(inputs), batch_rows)
        ]
    )
    classes = np.asarray(challenger.classes_)
    answers = classes[probabilities.argmax(axis=1)]
    logged = requests["predicted_class"].to_numpy(dtype=np.int64)
    corrected = requests["corrected_class"]
    has_feedback = corrected.notna().to_numpy()
    truth = corrected[has_feedback].to_numpy(dtype=np.int64)
    feedback_rows = int(has_feedback.sum())
    return ReplayResult(
        rows=len(requests),
        agreement=float((answers == logged).mean()),
        champion_confidence=float(requests["confidence"].mean()),
        challenger_confidence=float(probabilities.max(axis=1).mean()),
        feedback_rows=feedback_rows,
        champion_accuracy=float((logged[has_feedback] == truth).mean()) if feedback_rows else None,
        challenger_accuracy=(
            float((answers[has_feedback] == truth).mean()) if feedback_rows else None
        ),
    )
