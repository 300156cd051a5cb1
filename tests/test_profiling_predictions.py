"""Kind inference, predictions, scores and baseline metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from mlmon.exporter.profile import ClassificationPrediction, RegressionPrediction
from mlmon.profiling import ProfilingError, profile_data

MODEL = {"model_name": "churn", "model_version": "3"}
RNG = np.random.default_rng(7)
SENTENCES = [f"the customer number {i} said the service was fine" for i in range(40)]
SHORT_PHRASES = [f"w{i} x" for i in range(40)]  # short, distinct, with spaces: free text


@pytest.mark.parametrize(
    "values, kind",
    [
        (np.arange(50), "numeric"),
        (RNG.normal(size=50), "numeric"),
        (pd.Series([1, 2.5, None], dtype=object), "numeric"),
        (RNG.random(50) > 0.5, "categorical"),
        (RNG.choice(["paris", "rome", "new york"], 50), "categorical"),
        (SENTENCES, "text"),
        (SHORT_PHRASES, "text"),
        (SHORT_PHRASES[:19] * 2, "categorical"),  # only 19 distinct values: a category
        (["x" * 31, "y" * 31], "text"),  # long strings are text whatever their count
    ],
)
def test_kind_inference(values, kind) -> None:
    profile = profile_data({"c": values}, **MODEL)
    assert profile.feature("c").kind == kind


def test_overrides_beat_inference() -> None:
    data = {"n": [1, 2, 3], "s": SENTENCES[:3], "k": ["1", "2", "3"]}
    profile = profile_data(data, **MODEL, categorical=["n"], text=["k"])
    assert profile.feature("n").kind == "categorical"
    assert profile.feature("k").kind == "text"
    assert profile_data(data, **MODEL, numeric=["k"]).feature("k").kind == "numeric"


@pytest.mark.parametrize(
    "predictions, kind",
    [
        (RNG.choice(["no", "yes"], 100), "classification"),
        (RNG.random(100) > 0.5, "classification"),
        (RNG.integers(0, 3, 100), "classification"),
        (np.arange(100), "regression"),  # 100 distinct integers: a quantity, not classes
        (RNG.normal(size=100), "regression"),
    ],
)
def test_prediction_kind_inference(predictions, kind) -> None:
    profile = profile_data({"x": np.arange(100.0)}, **MODEL, predictions=predictions)
    assert profile.prediction.kind == kind


def test_prediction_kind_override() -> None:
    profile = profile_data({"x": np.arange(100.0)}, **MODEL, predictions=RNG.integers(0, 3, 100),
                           prediction_kind="regression")
    assert isinstance(profile.prediction, RegressionPrediction)


def test_classification_shares_match_counter_and_columns_are_not_features() -> None:
    labels = list(RNG.choice(["a", "b", "c"], 500)) + [None]
    frame = pd.DataFrame({"x": np.arange(501.0), "label": labels, "truth": labels[::-1]})
    profile = profile_data(frame, **MODEL, prediction_column="label", target_column="truth")
    counts = Counter(v for v in labels if v)
    assert [f.name for f in profile.features] == ["x"]
    assert isinstance(profile.prediction, ClassificationPrediction)
    assert profile.prediction.classes == ("a", "b", "c")
    assert profile.prediction.class_shares == tuple(counts[c] / 500 for c in "abc")
    assert profile.prediction.count == 500
    assert profile.prediction.score is None
    pairs = [(p, t) for p, t in zip(labels, labels[::-1], strict=True) if p and t]
    assert profile.baseline_metrics == {"accuracy": sum(p == t for p, t in pairs) / len(pairs)}


def test_regression_prediction_matches_numpy_and_gives_mae_rmse() -> None:
    y = RNG.normal(10, 2, 1000)
    truth = y + RNG.normal(0, 0.5, 1000)
    profile = profile_data({"x": y}, **MODEL, predictions=y, targets=truth,
                           baseline_metrics={"r2": 0.9, "mae": 1.0})
    edges = np.unique(np.quantile(y, np.arange(1, 10) / 10, method="inverted_cdf"))
    assert profile.prediction.binned.edges == tuple(edges)
    assert profile.prediction.binned.mean == pytest.approx(np.mean(y), rel=1e-12)
    # Explicit metrics win over computed ones; the others are computed from the target.
    assert profile.baseline_metrics["mae"] == 1.0
    assert profile.baseline_metrics["r2"] == 0.9
    assert profile.baseline_metrics["rmse"] == pytest.approx(np.sqrt(np.mean((y - truth) ** 2)))


def test_score_is_the_probability_of_the_predicted_class() -> None:
    # The predicted class is not always the argmax (a tuned threshold), so the score must
    # follow the prediction, not the row maximum.
    probabilities = RNG.dirichlet([1, 1, 1], 400)
    classes = np.array(["a", "b", "c"])
    predictions = classes[RNG.integers(0, 3, 400)]
    expected = probabilities[np.arange(400), np.searchsorted(classes, predictions)]
    assert not np.array_equal(expected, probabilities.max(axis=1))
    profile = profile_data({"x": np.arange(400.0)}, **MODEL, predictions=predictions,
                           probabilities=probabilities, probability_classes=list(classes))
    score = profile.prediction.score
    edges = np.unique(np.quantile(expected, np.arange(1, 10) / 10, method="inverted_cdf"))
    assert score.edges == tuple(edges)
    assert (score.min, score.max) == (expected.min(), expected.max())
    as_frame = profile_data({"x": np.arange(400.0)}, **MODEL, predictions=predictions,
                            probabilities=pd.DataFrame(probabilities, columns=classes))
    assert as_frame.dumps() == profile.dumps()


def test_probabilities_without_classes_score_the_row_maximum() -> None:
    probabilities = RNG.dirichlet([1, 1], 300)
    predictions = probabilities.argmax(axis=1)
    profile = profile_data({"x": np.arange(300.0)}, **MODEL, predictions=predictions,
                           probabilities=probabilities)
    assert profile.prediction.score.min == probabilities.max(axis=1).min()


def test_score_column_and_probability_columns() -> None:
    frame = pd.DataFrame({"x": np.arange(200.0), "label": RNG.choice(["no", "yes"], 200),
                          "p_yes": RNG.random(200)})
    frame["p_no"] = 1 - frame["p_yes"]
    frame["score"] = np.where(frame["label"] == "yes", frame["p_yes"], frame["p_no"])
    by_score = profile_data(frame.drop(columns=["p_yes", "p_no"]), **MODEL,
                            prediction_column="label", score_column="score")
    by_columns = profile_data(frame.drop(columns=["score"]), **MODEL, prediction_column="label",
                              probability_columns={"yes": "p_yes", "no": "p_no"})
    assert by_score.prediction.score == by_columns.prediction.score
    assert [f.name for f in by_columns.features] == ["x"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"predictions": RNG.normal(size=3), "scores": [0.1, 0.2, 0.3]}, "classifiers only"),
        ({"predictions": ["a", "b", "z"], "probabilities": np.ones((3, 2)),
          "probability_classes": ["a", "b"]}, "class 'z' has no probability column"),
        ({"predictions": ["a", "b", "a"], "probabilities": np.ones((3, 3)),
          "probability_classes": ["a", "b"]}, "3 columns for 2 classes"),
        ({"probabilities": np.ones((3, 2))}, "need predictions"),
        ({"predictions": [None, None, None]}, "every prediction is null"),
    ],
)
def test_bad_prediction_options(options, message) -> None:
    with pytest.raises(ProfilingError, match=message):
        profile_data({"x": [1.0, 2.0, 3.0]}, **MODEL, **options)
