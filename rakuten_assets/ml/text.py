"""Text cleaning, the first step of the model (it runs again at serving time).

designation + description -> HTML entities unescaped (twice: listings are often escaped
twice), tags removed, mojibake repaired with ftfy, lower case, punctuation and symbols to
spaces, every digit to "0" (numbers of one length share a token), whitespace collapsed.

Options of the default model (`ListingTextCleaner`): accents folded ("é" -> "e": half of real
titles are typed without them), the description cut to its first words (the title carries
most of the signal; long pasted descriptions mostly add noise and time), and the cleaned title
as a second column for the character n-grams.
"""

from __future__ import annotations

import html
import re
import unicodedata
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


def fold_accents(words: list[str]) -> list[str]:
    """Cleaned words without accents; what decomposition leaves that is not a letter or a
    digit (a fraction slash, say) becomes a space, as cleaning would have made it."""
    text = " ".join(words)
    if text.isascii():
        return words
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _PUNCTUATION.sub(" ", folded.replace("_", " ")).split()


def listing_texts(
    designation: str | None,
    description: str | None,
    strip_accents: bool = False,
    description_words: int = 0,
) -> tuple[str, str]:
    """(designation + description, designation) cleaned, as the model's two text features
    see them; `description_words` > 0 keeps only that many words of the description."""
    title = clean_words(designation)
    body = clean_words(description)
    if description_words:
        body = body[:description_words]
    if strip_accents:
        title, body = fold_accents(title), fold_accents(body)
    return " ".join(title + body), " ".join(title)


def listing_text(designation: str | None, description: str | None) -> str:
    """The cleaned text of a listing: designation then description."""
    return clean_text(f"{designation or ''} {description or ''}")


def normalized_title(designation: str | None) -> str:
    """The designation as the leak check compares it (two listings, one title)."""
    return clean_text(designation)


def _as_frame(listings: pd.DataFrame | Iterable[dict]) -> pd.DataFrame:
    return listings if isinstance(listings, pd.DataFrame) else pd.DataFrame(list(listings))


class ListingTextCleaner(TransformerMixin, BaseEstimator):
    """scikit-learn step: a frame with `designation` and `description` -> cleaned texts.

    With the defaults (the seed configuration, and every model trained before the options
    existed), one column: `clean_text(designation + " " + description)`. With `title_column`,
    two: that text and the cleaned designation alone (see `listing_texts`).
    """

    def __init__(
        self,
        strip_accents: bool = False,
        description_words: int = 0,
        title_column: bool = False,
    ):
        self.strip_accents = strip_accents
        self.description_words = description_words
        self.title_column = title_column

    def fit(self, X: pd.DataFrame, y: object = None) -> ListingTextCleaner:
        return self

    def options(self) -> tuple[bool, int, bool]:
        """(strip_accents, description_words, title_column); models saved before these
        options existed have none of the attributes and mean the defaults."""
        return (
            bool(getattr(self, "strip_accents", False)),
            int(getattr(self, "description_words", 0)),
            bool(getattr(self, "title_column", False)),
        )

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
        strip_accents, description_words, title_column = self.options()
        if not (strip_accents or description_words or title_column):
            joined = (designation + " " + description).tolist()
            return np.asarray([clean_text(text) for text in joined], dtype=object)
        texts = [
            listing_texts(title, body, strip_accents, description_words)
            for title, body in zip(designation.tolist(), description.tolist(), strict=True)
        ]
        columns = np.empty((len(texts), 2), dtype=object)
        columns[:] = texts
        return columns if title_column else columns[:, 0]
