"""Text cleaning, the first step of the model (it runs again at serving time).

designation + description -> HTML entities unescaped (twice: listings are often escaped
twice), tags removed, mojibake repaired with ftfy, lower case, punctuation and symbols to
spaces, every digit to "0" (numbers of one length share a token), whitespace collapsed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import ftfy
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

_TAG = re.compile(r"<[^>]*>")
_PUNCTUATION = re.compile(r"[^\w\s]")  # and "_", replaced before (one class is faster)
_DIGIT = re.compile(r"\d")


def clean_text(text: str | None) -> str:
    """Clean one text (see the module docstring)."""
    return " ".join(clean_words(text))


def clean_words(text: str | None) -> list[str]:
    """The words of the cleaned text (what `clean_text` joins with single spaces)."""
    if not text or not isinstance(text, str):
        return []
    if "&" in text:
        text = html.unescape(html.unescape(text))
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "Ã" in text or "Â" in text or "â€" in text:  # UTF-8 read as Windows-1252
        text = ftfy.fix_encoding(text)
    return _DIGIT.sub("0", _PUNCTUATION.sub(" ", text.lower().replace("_", " "))).split()


def listing_text(designation: str | None, description: str | None) -> str:
    """The cleaned text of a listing: designation then description."""
    return clean_text(f"{designation or ''} {description or ''}")


def normalized_title(designation: str | None) -> str:
    """The designation as the leak check compares it (two listings, one title)."""
    return clean_text(designation)


def _as_frame(listings: pd.DataFrame | Iterable[dict]) -> pd.DataFrame:
    return listings if isinstance(listings, pd.DataFrame) else pd.DataFrame(list(listings))


class ListingTextCleaner(TransformerMixin, BaseEstimator):
    """scikit-learn step: a frame with `designation` and `description` -> cleaned texts."""

    def fit(self, X: pd.DataFrame, y: object = None) -> ListingTextCleaner:
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        frame = _as_frame(X)
        if "designation" not in frame.columns:
            raise ValueError("listings need a 'designation' column")
        designation = frame["designation"].fillna("").astype(str)
        description = (
            frame["description"].fillna("").astype(str)
            if "description" in frame.columns
            else pd.Series("", index=frame.index)
        )
        joined = (designation + " " + description).tolist()
        return np.asarray([clean_text(text) for text in joined], dtype=object)
