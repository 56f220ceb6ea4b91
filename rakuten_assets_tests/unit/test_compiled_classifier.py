"""The serving path without the server: the compiled classifier gives the pipeline's own
probabilities, on ordinary and edge listings, and a pipeline it cannot reproduce is served as
it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rakuten_assets.ml.inference import PROBES, CompiledClassifier, compile_pipeline
from rakuten_assets.ml.model import TrainingParams, TrainingResult, build_pipeline


def listings_of(frame: pd.DataFrame) -> list[tuple[str, str | None]]:
    descriptions = frame["description"].astype(object).where(frame["description"].notna(), None)
    return list(zip(frame["designation"], descriptions, strict=True))


def test_compiled_classifier_reproduces_the_pipeline(
    trained: TrainingResult, synth_frame: pd.DataFrame
) -> None:
    sample = synth_frame.sample(3_000, random_state=0)
    compiled = compile_pipeline(trained.pipeline)
    assert isinstance(compiled, CompiledClassifier)
    expected = trained.pipeline.predict_proba(sample[["designation", "description"]])
    actual = compiled.predict_proba(listings_of(sample))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert compiled.classes == tuple(int(c) for c in trained.pipeline.classes_)


def test_compiled_classifier_handles_edge_listings(trained: TrainingResult) -> None:
    compiled = compile_pipeline(trained.pipeline)
    edge = [("", None), ("!!!", "&amp; <br />"), ("a", "b"), ("é" * 5_000, None)]
    frame = pd.DataFrame(edge, columns=["designation", "description"])
    np.testing.assert_allclose(
        compiled.predict_proba(edge), trained.pipeline.predict_proba(frame), atol=1e-5
    )
    assert compiled.predict_proba(edge).sum(axis=1) == pytest.approx([1.0] * len(edge))


def test_pipelines_it_cannot_reproduce_are_served_as_they_are(trained: TrainingResult) -> None:
    # the default pipeline's shape with binary word counts, which the fast path does not do
    params = TrainingParams(min_df=1, classifier="logistic_regression")
    pipeline = build_pipeline(params).set_params(features__words__binary=True)
    frame = pd.DataFrame(list(PROBES), columns=["designation", "description"])
    pipeline.fit(frame, trained.pipeline.classes_[: len(PROBES)])
    served = compile_pipeline(pipeline)
    assert not served.compiled
    np.testing.assert_allclose(served.predict_proba(PROBES), pipeline.predict_proba(frame))
