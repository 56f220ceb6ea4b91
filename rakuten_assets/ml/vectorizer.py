"""A TF-IDF vectorizer that saves its vocabulary compactly.

skops writes a dict as one JSON node per entry (and a numpy scalar value as a file of its
own): a 270,000-term `vocabulary_` made a 220 MB model file that took minutes to write. This
subclass saves the terms as one newline-separated string, in index order, and rebuilds the
dict on load; everything else is scikit-learn's TfidfVectorizer. Being a project type, it is
on the model loader's allow-list (ml.model_loader.TRUSTED_TYPES).
"""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer

_SEPARATOR = "\n"  # never inside a term: cleaned text holds no newline


class CompactTfidfVectorizer(TfidfVectorizer):
    def __getstate__(self) -> dict[str, Any]:
        # a copy: on Python 3.11+ the parent's state can be the live __dict__ itself
        state = dict(super().__getstate__())
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            if any(_SEPARATOR in term for term in terms):
                raise ValueError("a vocabulary term holds a newline; it cannot be saved")
            state["vocabulary_terms_"] = _SEPARATOR.join(terms)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        terms = state.pop("vocabulary_terms_", None)
        super().__setstate__(state)
        if terms is not None:
            self.vocabulary_ = {term: i for i, term in enumerate(terms.split(_SEPARATOR))}
