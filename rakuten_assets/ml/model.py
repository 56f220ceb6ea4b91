"""The model: text cleaning -> TF-IDF -> a linear classifier, trained and evaluated.

Two named configurations (`PRESETS`), both recorded in MLflow as the `preset` param:
- "default": word (1, 2)-grams of designation + the start of the description, and character
  n-grams (`char_wb`) of the designation, both TF-IDF with sublinear tf on accent-folded
  text, then a linear SVM with calibrated probabilities. Real titles are often bare names
  (a book, a game, a card, a figurine line) seen in no training row: character n-grams
  recognise their morphology, word features alone do not.
- "seed": the seed project's model, TF-IDF (5,000 words, (1, 2)-grams) and a logistic
  regression (C=1.0).
Two deliberate differences from the seed's training, both measured by `make bench-train`:
- the oversampled copies are given to the classifier as integer sample weights on the
  unique rows (for a linear model, the same objective, on 3x fewer rows);
- TF-IDF is fitted on the unique training rows, so oversampled copies do not inflate
  document frequencies.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import joblib
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from rakuten_assets.data.categories import CODES, category_name
from rakuten_assets.ml.dataset import BalancedDataset
from rakuten_assets.ml.text import ListingTextCleaner
from rakuten_assets.ml.vectorizer import CompactTfidfVectorizer

Classifier = Literal["logistic_regression", "linear_svc"]
CLASSIFIERS: tuple[str, ...] = ("logistic_regression", "linear_svc")
INPUT_COLUMNS: tuple[str, ...] = ("designation", "description")


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters of `build_pipeline`. The defaults are the "default" preset."""

    preset: str = field(default="default", metadata={"description": "default or seed."})
    max_features: int = field(default=150_000, metadata={"description": "Word TF-IDF vocabulary."})
    ngram_range: tuple[int, int] = field(
        default=(1, 2), metadata={"description": "[min_n, max_n] of words."}
    )
    char_max_features: int = field(
        default=120_000, metadata={"description": "Character n-grams of the title; 0: none."}
    )
    char_ngram_range: tuple[int, int] = field(
        default=(3, 5), metadata={"description": "[min_n, max_n] of the character n-grams."}
    )
    sublinear_tf: bool = field(default=True, metadata={"description": "1 + log(tf) instead of tf."})
    min_df: int = field(default=2, metadata={"description": "Documents a term needs to count."})
    strip_accents: bool = field(default=True, metadata={"description": "Fold accents in cleaning."})
    description_words: int = field(
        default=100, metadata={"description": "Words of the description kept; 0: all."}
    )
    C: float = field(default=0.5, metadata={"description": "Inverse regularization strength."})
    # No intercept: an empty or unfamiliar text then pushes to no class (with one, the class
    # whose rows the features explain least, used books, took most of such input); the
    # calibration still learns each class's prior.
    fit_intercept: bool = field(
        default=False, metadata={"description": "Fit an intercept per class."}
    )
    max_iter: int = field(default=1000, metadata={"description": "Iterations of the solver."})
    classifier: Classifier = field(
        default="linear_svc", metadata={"description": "logistic_regression or linear_svc."}
    )
    class_weight: Literal["balanced"] | None = field(
        default=None, metadata={"description": "'balanced' or 'none'."}
    )
    seed: int = field(default=42, metadata={"description": "Seed of the solver and calibration."})

    def __post_init__(self) -> None:
        for name in ("ngram_range", "char_ngram_range"):
            pair = tuple(getattr(self, name))
            if len(pair) != 2 or not 1 <= pair[0] <= pair[1]:
                raise ValueError(f"{name} must be (min, max) with 1 <= min <= max, got {pair}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.classifier!r}")
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r} (one of {', '.join(PRESET_NAMES)})")
        if min(self.max_features, self.min_df, self.max_iter) < 1:
            raise ValueError("max_features, min_df and max_iter must be >= 1")
        if self.char_max_features < 0 or self.description_words < 0:
            raise ValueError("char_max_features and description_words must be >= 0")

    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> TrainingParams:
        """A named configuration, with some values changed."""
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown preset {name!r} (one of {', '.join(PRESET_NAMES)})")
        return dataclasses.replace(PRESETS[name], **overrides)  # type: ignore[arg-type]

    def as_mlflow_params(self) -> dict[str, str]:
        values = asdict(self)
        for name in ("ngram_range", "char_ngram_range"):
            low, high = getattr(self, name)
            values[name] = f"{low}-{high}"
        return {key: str(value) for key, value in values.items()}

    @classmethod
    def from_mlflow_params(cls, params: dict[str, str]) -> TrainingParams:
        """The params of a logged run; a run logged before a param existed used the seed
        configuration's value of it (that was the only model then)."""
        legacy = SEED_PARAMS

        def get(name: str) -> str:
            return params.get(name, str(getattr(legacy, name)))

        def pair(name: str) -> tuple[int, int]:
            if name not in params:
                return getattr(legacy, name)
            low, high = (int(v) for v in params[name].split("-"))
            return low, high

        return cls(
            preset=get("preset"),
            max_features=int(get("max_features")),
            ngram_range=pair("ngram_range"),
            char_max_features=int(get("char_max_features")),
            char_ngram_range=pair("char_ngram_range"),
            sublinear_tf=get("sublinear_tf") == "True",
            min_df=int(get("min_df")),
            strip_accents=get("strip_accents") == "True",
            description_words=int(get("description_words")),
            C=float(get("C")),
            fit_intercept=get("fit_intercept") == "True",
            max_iter=int(get("max_iter")),
            classifier=get("classifier"),  # type: ignore[arg-type]
            class_weight=None if get("class_weight") in ("None", "") else "balanced",
            seed=int(get("seed")),
        )


PRESET_NAMES: tuple[str, ...] = ("default", "seed")
# The seed project's configuration: word TF-IDF only, logistic regression.
SEED_PARAMS = TrainingParams(
    preset="seed",
    max_features=5000,
    char_max_features=0,
    sublinear_tf=False,
    min_df=1,
    strip_accents=False,
    description_words=0,
    C=1.0,
    fit_intercept=True,
    classifier="logistic_regression",
)
PRESETS: dict[str, TrainingParams] = {"default": TrainingParams(), "seed": SEED_PARAMS}


def _classifier(params: TrainingParams) -> object:
    if params.classifier == "logistic_regression":
        return LogisticRegression(
            C=params.C,
            max_iter=params.max_iter,
            class_weight=params.class_weight,
            fit_intercept=params.fit_intercept,
            random_state=params.seed,
        )
    return CalibratedClassifierCV(
        LinearSVC(
            C=params.C,
            fit_intercept=params.fit_intercept,
            max_iter=params.max_iter,
            class_weight=params.class_weight,
            random_state=params.seed,
        ),
        # Two folds, fitted in parallel (threads, see `fit`): on the full data as good as
        # three in half the time, and a model a third smaller.
        cv=2,
        n_jobs=2,
    )


def _words(params: TrainingParams) -> TfidfVectorizer:
    return CompactTfidfVectorizer(
        max_features=params.max_features,
        ngram_range=params.ngram_range,
        sublinear_tf=params.sublinear_tf,
        min_df=params.min_df,
        dtype=np.float32,
    )


def build_pipeline(params: TrainingParams) -> Pipeline:
    """clean -> tfidf (words) -> classifier, or, with character n-grams,
    clean (two columns) -> features (words of the text, characters of the title) -> classifier."""
    cleaner = ListingTextCleaner(
        strip_accents=params.strip_accents,
        description_words=params.description_words,
        title_column=params.char_max_features > 0,
    )
    if params.char_max_features == 0:
        return Pipeline(
            [("clean", cleaner), ("tfidf", _words(params)), ("classifier", _classifier(params))]
        )
    characters = CompactTfidfVectorizer(
        analyzer="char_wb",
        ngram_range=params.char_ngram_range,
        max_features=params.char_max_features,
        sublinear_tf=params.sublinear_tf,
        min_df=params.min_df,
        dtype=np.float32,
    )
    features = ColumnTransformer(
        [("words", _words(params), 0), ("chars", characters, 1)], sparse_threshold=1.0
    )
    return Pipeline(
        [("clean", cleaner), ("features", features), ("classifier", _classifier(params))]
    )


def listings(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns of a frame of listings."""
    return frame.loc[:, list(INPUT_COLUMNS)].reset_index(drop=True)


@dataclass
class Evaluation:
    accuracy: float
    weighted_f1: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    per_class: pd.DataFrame  # index prdtypecode; f1, precision, recall, support, category
    confusion: np.ndarray
    labels: list[int]
    report: str

    def headline(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "weighted_f1": self.weighted_f1,
            "macro_f1": self.macro_f1,
            "weighted_precision": self.weighted_precision,
            "weighted_recall": self.weighted_recall,
        }

    def mlflow_metrics(self) -> dict[str, float]:
        metrics = dict(self.headline())
        for code, row in self.per_class.iterrows():
            metrics[f"f1_{code}"] = float(row["f1"])
            metrics[f"precision_{code}"] = float(row["precision"])
            metrics[f"recall_{code}"] = float(row["recall"])
        return metrics

    def weakest(self, n: int = 5) -> pd.DataFrame:
        return self.per_class.sort_values("f1").head(n)


def evaluate(truth: pd.Series, predicted: np.ndarray) -> Evaluation:
    labels = [code for code in CODES if code in set(truth) | set(predicted)]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    weighted = precision_recall_fscore_support(
        truth, predicted, labels=labels, average="weighted", zero_division=0
    )
    per_class = pd.DataFrame(
        {
            "category": [category_name(code) for code in labels],
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "support": support,
        },
        index=pd.Index(labels, name="prdtypecode"),
    )
    return Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        weighted_f1=float(weighted[2]),
        macro_f1=float(f1.mean()),
        weighted_precision=float(weighted[0]),
        weighted_recall=float(weighted[1]),
        per_class=per_class,
        confusion=confusion_matrix(truth, predicted, labels=labels),
        labels=labels,
        report=classification_report(
            truth,
            predicted,
            labels=labels,
            target_names=[f"{code} {category_name(code)}" for code in labels],
            zero_division=0,
            digits=3,
        ),
    )


@dataclass
class TrainingResult:
    pipeline: Pipeline
    params: TrainingParams
    evaluation: Evaluation
    test_predictions: pd.DataFrame  # productid, prdtypecode, predicted
    timings: dict[str, float] = field(default_factory=dict)


def fit_pipeline(pipeline: Pipeline, X: pd.DataFrame, y: object, **fit_params: object) -> Pipeline:
    """`pipeline.fit`, with threads rather than processes for the calibration folds:
    liblinear releases the GIL, and worker processes would outlive the fit (a process that
    started them, a Dagster run or a benchmark child, then waits minutes to exit)."""
    with joblib.parallel_config(backend="threading"):
        return pipeline.fit(X, y, **fit_params)


def fit(dataset: BalancedDataset, params: TrainingParams) -> Pipeline:
    """Fit on the unique training rows, weighted by how often oversampling drew them."""
    return fit_pipeline(
        build_pipeline(params),
        listings(dataset.train),
        dataset.train["prdtypecode"].to_numpy(),
        classifier__sample_weight=dataset.sample_weights,
    )


def fit_seed_configuration(dataset: BalancedDataset, params: TrainingParams) -> Pipeline:
    """The seed project's way: every oversampled copy is a row (for comparison only)."""
    oversampled = dataset.oversampled()
    return fit_pipeline(
        build_pipeline(params), listings(oversampled), oversampled["prdtypecode"].to_numpy()
    )


def predict_test(pipeline: Pipeline, dataset: BalancedDataset) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "productid": dataset.test["productid"].to_numpy(),
            "prdtypecode": dataset.test["prdtypecode"].to_numpy(),
            "predicted": pipeline.predict(listings(dataset.test)),
        }
    )


def train(dataset: BalancedDataset, params: TrainingParams) -> TrainingResult:
    started = time.perf_counter()
    pipeline = fit(dataset, params)
    fitted = time.perf_counter()
    predictions = predict_test(pipeline, dataset)
    evaluation = evaluate(predictions["prdtypecode"], predictions["predicted"].to_numpy())
    return TrainingResult(
        pipeline=pipeline,
        params=params,
        evaluation=evaluation,
        test_predictions=predictions,
        timings={"fit_s": fitted - started, "evaluate_s": time.perf_counter() - fitted},
    )


def model_card(
    result: TrainingResult, dataset: BalancedDataset, data_version: dict[str, object]
) -> str:
    """A Markdown model card: data version, metrics by class, weak classes, limits."""
    evaluation = result.evaluation
    lines = [
        "# Model card: Rakuten product-type classifier",
        "",
        "## Data",
        "",
        *(f"- {key}: `{value}`" for key, value in data_version.items()),
        f"- training rows: {len(dataset.train):,} unique, "
        f"{len(dataset.sample_positions):,} after oversampling",
        f"- test rows: {len(dataset.test):,} (products chosen by a hash of their productid)",
        "",
        "## Model",
        "",
        "Text cleaning (HTML, entities, mojibake, case, punctuation, digits) -> TF-IDF -> "
        f"{result.params.classifier} (preset `{result.params.preset}`).",
        "",
        *(f"- {key}: `{value}`" for key, value in result.params.as_mlflow_params().items()),
        "",
        "## Metrics on the test set",
        "",
        *(f"- {key}: {value:.4f}" for key, value in evaluation.headline().items()),
        "",
        "| prdtypecode | category | F1 | precision | recall | support |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {code} | {row.category} | {row.f1:.3f} | {row.precision:.3f} | "
            f"{row.recall:.3f} | {int(row.support)} |"
            for code, row in evaluation.per_class.iterrows()
        ),
        "",
        "## Known weak classes",
        "",
        *(
            f"- {code} {row.category}: F1 {row.f1:.3f}"
            for code, row in evaluation.weakest().iterrows()
        ),
        "",
        "## Limits",
        "",
        "- Text only: the product images are not used.",
        "- French-first vocabulary; listings in other languages are rarer in training.",
        "- Books (10, 2403, 2705), games (40, 2905, 2462) and toys (1280, 1281, 1300) overlap: "
        "expect most confusions among them.",
        "- Probabilities are those of the linear model, not calibrated for decisions "
        "(except with linear_svc, calibrated by cross-validation).",
        "- Trained on the data as of the load above; listings unlike it (new product types, "
        "other marketplaces) need monitoring for drift.",
    ]
    return "\n".join(lines) + "\n"
