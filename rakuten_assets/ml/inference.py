"""Fast inference for the serving path: the fitted pipeline's `predict_proba`, minus the
per-call overhead of pandas and scikit-learn's input validation.

`pipeline.predict_proba` on one listing costs ~1-3 ms, most of it building a DataFrame,
validating it, and generic tokenizing. `CompiledClassifier` reads the fitted parts (cleaner
options, vocabularies, idf, classifier weights) and computes the same numbers directly from
(designation, description) tuples.

It compiles the two shapes `build_pipeline` makes: clean -> tfidf (words) -> classifier, and
clean (two columns) -> features (ColumnTransformer: words of the text, `char_wb` n-grams of
the title) -> classifier; with a multinomial logistic regression or a sigmoid-calibrated
linear SVM (computed here), or any classifier with `predict_proba` (called on the features).
Word blocks are tokenized here (the default token pattern on cleaned text is "words of two
characters or more"); character blocks use the vectorizer's own analyzer. Anything else, and
any pipeline whose compiled output differs from `predict_proba` on a probe set, falls back to
the pipeline itself (`compile_pipeline` returns a wrapper either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from rakuten_assets.ml.text import ListingTextCleaner, clean_words, listing_texts

Listing = tuple[str, str | None]
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Probe listings: HTML, entities, mojibake, digits, accents, empty parts, other languages.
PROBES: tuple[Listing, ...] = (
    ("Piscine tubulaire ronde Intex 3,66 m avec pompe", "<p>Livr&eacute;e avec pompe.</p>"),
    ("Harry Potter Ã  l&#39;Ã©cole des sorciers - Tome 1", None),
    ("Jeu En Téléchargement PC", ""),
    ("Figurine Pop! Marvel N° 133 Du 28/09/2001", "Ã©dition limitÃ©e<br />Neuf"),
    ("Baby socks 0-6 months, cotton", "Kindersocken aus Baumwolle &amp; Elasthan"),
    ("a", "b"),
    ("Console PS4 Slim 500 Go + 2 manettes", "Bundle console avec jeux. " * 60),
    ("Dracaufeu 4/102 Holo Édition 1 ½", "Çà et là : œuvre n° 2²"),
)


class PipelineClassifier:
    """The uncompiled fallback: the pipeline itself, called with a DataFrame."""

    compiled = False

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.classes = tuple(int(c) for c in pipeline.classes_)

    def predict_proba(self, listings: Sequence[Listing]) -> np.ndarray:
        frame = pd.DataFrame(list(listings), columns=["designation", "description"])
        return np.asarray(self.pipeline.predict_proba(frame))


@dataclass(frozen=True)
class _Block:
    """One fitted TF-IDF vectorizer and the cleaned column it reads (0: text, 1: title)."""

    column: int
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear: bool
    terms: Callable[[str], list[str]] | None  # None: the word fast path
    min_n: int
    max_n: int

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer, column: int) -> _Block:
        words = vectorizer.analyzer == "word"
        return cls(
            column=column,
            vocabulary=vectorizer.vocabulary_,
            idf=np.asarray(vectorizer.idf_, dtype=np.float64),
            sublinear=bool(vectorizer.sublinear_tf),
            terms=None if words else vectorizer.build_analyzer(),
            min_n=vectorizer.ngram_range[0],
            max_n=vectorizer.ngram_range[1],
        )

    def term_ids(self, text: str) -> list[int]:
        lookup = self.vocabulary.get
        if self.terms is not None:
            return [j for j in map(lookup, self.terms(text)) if j is not None]
        # The default token pattern on cleaned text: its words of two characters or more;
        # then their n-grams, joined and looked up by C-level map/zip, not a Python loop.
        tokens = [word for word in text.split() if len(word) > 1]
        ids = [j for j in map(lookup, tokens) if j is not None] if self.min_n == 1 else []
        for n in range(max(self.min_n, 2), self.max_n + 1):
            grams = map(" ".join, zip(*(tokens[k:] for k in range(n)), strict=False))
            ids += [j for j in map(lookup, grams) if j is not None]
        return ids

    def matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows: counts (1 + log when sublinear) * idf, each row l2-normalized."""
        indices: list[int] = []
        indptr = [0]
        for text in texts:
            indices.extend(self.term_ids(text))
            indptr.append(len(indices))
        matrix = sp.csr_matrix(
            (
                np.ones(len(indices), dtype=np.float64),
                np.asarray(indices, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), len(self.idf)),
        )
        matrix.sum_duplicates()  # counts per (row, term)
        if self.sublinear:
            np.log(matrix.data, out=matrix.data)
            matrix.data += 1
        matrix.data *= self.idf[matrix.indices]
        squares = matrix.multiply(matrix).sum(axis=1).A1
        norms = np.sqrt(squares)
        norms[norms == 0] = 1.0
        matrix.data /= np.repeat(norms, np.diff(matrix.indptr))
        return matrix


class CompiledClassifier(PipelineClassifier):
    """Same probabilities as the pipeline, computed from the fitted parts (see module)."""

    compiled = True

    def __init__(self, pipeline: Pipeline):
        super().__init__(pipeline)
        cleaner: ListingTextCleaner = pipeline.steps[0][1]
        self.strip_accents, self.description_words, self.title_column = cleaner.options()
        self.legacy_cleaning = not any(cleaner.options())
        name, step = pipeline.steps[1]
        if name == "tfidf":
            self.blocks = [_Block.of(step, 0)]
            self.dtype = step.dtype
        else:
            self.blocks = [_Block.of(t, column) for _, t, column in step.transformers_]
            self.dtype = np.result_type(*(t.dtype for _, t, _ in step.transformers_))
        self.classifier = pipeline.steps[-1][1]
        self.score: Callable[[sp.csr_matrix], np.ndarray] = self._classifier_scores()

    def _classifier_scores(self) -> Callable[[sp.csr_matrix], np.ndarray]:
        classifier = self.classifier
        if isinstance(classifier, LogisticRegression) and len(self.classes) > 2:
            # multinomial: softmax of X @ coef.T + intercept
            weights = classifier.coef_.T.astype(np.float64)
            intercept = np.atleast_1d(classifier.intercept_).astype(np.float64)

            def softmax(features: sp.csr_matrix) -> np.ndarray:
                scores = features.astype(np.float64) @ weights + intercept
                scores -= scores.max(axis=1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=1, keepdims=True)
                return scores

            return softmax
        if _sigmoid_calibrated_svc(classifier, len(self.classes)):
            # every fold's SVM at once: one product with the stacked weights
            folds = classifier.calibrated_classifiers_
            weights = np.vstack([f.estimator.coef_ for f in folds]).T.astype(np.float64)
            n = len(self.classes)
            intercept = np.concatenate(  # 0.0, not an array, without fit_intercept
                [np.broadcast_to(np.atleast_1d(f.estimator.intercept_), (n,)) for f in folds]
            ).astype(np.float64)
            slopes = np.concatenate([[c.a_ for c in f.calibrators] for f in folds])
            offsets = np.concatenate([[c.b_ for c in f.calibrators] for f in folds])
            k = len(folds)

            def calibrated(features: sp.csr_matrix) -> np.ndarray:
                decision = features.astype(np.float64) @ weights + intercept
                proba = expit(-(slopes * decision + offsets)).reshape(-1, k, n)
                total = proba.sum(axis=2, keepdims=True)
                proba = np.divide(proba, total, out=np.full_like(proba, 1 / n), where=total != 0)
                return proba.mean(axis=1)

            return calibrated
        return lambda features: np.asarray(classifier.predict_proba(features))

    def texts(self, listings: Sequence[Listing]) -> list[tuple[str, str]]:
        if self.legacy_cleaning:  # models trained before the cleaner had options
            return [
                (" ".join(clean_words(f"{designation or ''} {description or ''}")), "")
                for designation, description in listings
            ]
        return [
            listing_texts(designation, description, self.strip_accents, self.description_words)
            for designation, description in listings
        ]

    def features(self, listings: Sequence[Listing]) -> sp.csr_matrix:
        texts = self.texts(listings)
        blocks = [block.matrix([t[block.column] for t in texts]) for block in self.blocks]
        matrix = blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")
        return matrix.astype(self.dtype)

    def predict_proba(self, listings: Sequence[Listing]) -> np.ndarray:
        return self.score(self.features(listings))


def _sigmoid_calibrated_svc(classifier: object, n_classes: int) -> bool:
    if not isinstance(classifier, CalibratedClassifierCV) or n_classes < 3:
        return False
    classes = list(classifier.classes_)
    return all(
        f.method == "sigmoid"
        and isinstance(f.estimator, LinearSVC)
        and list(f.estimator.classes_) == classes
        and len(f.calibrators) == n_classes
        for f in classifier.calibrated_classifiers_
    )


def _compilable_vectorizer(vectorizer: object, column: int) -> bool:
    if not isinstance(vectorizer, TfidfVectorizer):
        return False
    common = (
        vectorizer.tokenizer is None
        and vectorizer.preprocessor is None
        and vectorizer.stop_words is None
        and vectorizer.strip_accents is None
        and vectorizer.norm == "l2"
        and vectorizer.use_idf
        and not vectorizer.binary
    )
    if vectorizer.analyzer == "word":
        return common and vectorizer.token_pattern == DEFAULT_TOKEN_PATTERN
    return common and vectorizer.analyzer == "char_wb" and column == 1


def _compilable(pipeline: Pipeline) -> bool:
    steps = pipeline.steps
    if len(steps) != 3 or not isinstance(steps[0][1], ListingTextCleaner):
        return False
    if not hasattr(steps[-1][1], "predict_proba"):
        return False
    name, step = steps[1]
    title_column = steps[0][1].options()[2]
    if name == "tfidf":
        return not title_column and _compilable_vectorizer(step, 0)
    if name != "features" or not isinstance(step, ColumnTransformer) or not title_column:
        return False
    fitted = [(t, column) for _, t, column in step.transformers_ if t != "drop"]
    return (
        len(fitted) == len(step.transformers_)
        and all(isinstance(column, int) for _, column in fitted)
        and all(_compilable_vectorizer(t, column) for t, column in fitted)
    )


def compile_pipeline(
    pipeline: Pipeline, probes: Sequence[Listing] = PROBES, tolerance: float = 1e-5
) -> PipelineClassifier:
    """A CompiledClassifier when it reproduces `pipeline.predict_proba` on the probes within
    `tolerance`; otherwise the pipeline itself behind the same interface."""
    fallback = PipelineClassifier(pipeline)
    if not _compilable(pipeline):
        return fallback
    compiled = CompiledClassifier(pipeline)
    expected = fallback.predict_proba(probes)
    if np.abs(compiled.predict_proba(probes) - expected).max() > tolerance:
        return fallback
    return compiled
