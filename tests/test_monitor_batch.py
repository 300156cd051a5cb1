"""observe_batch(): counts equal numpy's on the same data, and equal observe() row by row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor, Profile
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}
N = 2000


def make(profile: Profile | None = None) -> tuple[ModelMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    profile = profile or Profile.from_dict(sample_profile_dict())
    return ModelMonitor.from_profile(profile, registry, clock=lambda: 1e6,
                                     multiproc_directory=None), registry


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect() if m.name.startswith("mlmon_") for s in m.samples
            if "timestamp" not in s.name}


@pytest.fixture
def data() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    age = rng.normal(40, 25, N)  # some values fall outside the allowed range [10.8, 97.2]
    age[rng.random(N) < 0.05] = np.nan
    age[:3] = [25.0, 35.0, 50.0]  # exactly on edges: le semantics
    age[3:5] = [np.inf, -np.inf]
    income = rng.integers(0, 12_000, N).astype(float)
    cities = np.array(["paris", "rome", "berlin", "madrid", "tokyo", "oslo"], dtype=object)
    city = cities[rng.integers(0, len(cities), N)]
    city[rng.random(N) < 0.03] = None
    words = np.array(["the", "good", "food", "bad", "great", "xyz"])
    review = [" ".join(rng.choice(words, rng.integers(0, 6))) for _ in range(N)]
    pred = rng.normal(0, 1.2, N)
    return {"age": age, "income": income, "city": city, "review": review, "pred": pred}


def test_bucket_and_category_counts_equal_numpy(data):
    monitor, registry = make()
    features = {k: data[k] for k in ("age", "income", "city", "review")}
    assert monitor.observe_batch(features, data["pred"]).rows == N
    age = data["age"]
    for le, edge in (("25.0", 25.0), ("35.0", 35.0), ("50.0", 50.0), ("+Inf", np.inf)):
        expected = int(np.sum(np.isfinite(age) & (age <= edge)))
        assert registry.get_sample_value("mlmon_feature_value_bucket",
                                         {**M, "feature": "age", "le": le}) == expected
    finite = age[np.isfinite(age)]
    assert registry.get_sample_value("mlmon_feature_value_sum", {**M, "feature": "age"}) == (
        pytest.approx(float(finite.sum())))
    # a NaN is missing in a column, as in one record and in the profile
    assert registry.get_sample_value("mlmon_feature_missing_total", {**M, "feature": "age"}) == (
        int(np.isnan(age).sum()))
    assert registry.get_sample_value(
        "mlmon_feature_invalid_total", {**M, "feature": "age", "reason": "nan"}) is None
    assert registry.get_sample_value(
        "mlmon_feature_invalid_total", {**M, "feature": "age", "reason": "out_of_range"}) == (
        int(np.sum((finite < 10.8) | (finite > 97.2))))
    city = data["city"]
    for category, members in (("paris", ["paris"]), ("rome", ["rome"]),
                              ("__other__", ["berlin", "madrid"]),
                              ("__unseen__", ["tokyo", "oslo"])):
        assert registry.get_sample_value(
            "mlmon_feature_category_total", {**M, "feature": "city", "category": category}) == (
            int(np.isin(city, members).sum()))
    pred = data["pred"]
    assert registry.get_sample_value("mlmon_prediction_value_bucket", {**M, "le": "0.0"}) == (
        int(np.sum(pred <= 0.0)))
    assert registry.get_sample_value("mlmon_prediction_window_max", M) == float(pred.max())


def test_batch_and_single_observations_agree(data):
    batch_monitor, batch_registry = make()
    single_monitor, single_registry = make()
    features = {k: data[k] for k in ("age", "income", "city", "review")}
    batch_monitor.observe_batch(features, data["pred"])
    for i in range(N):
        row = {k: features[k][i] for k in features}  # numpy scalars, NaN included, as given
        single_monitor.observe(row, data["pred"][i])
    batch, single = samples(batch_registry), samples(single_registry)
    assert batch.keys() == single.keys()
    for key, v in single.items():
        assert batch[key] == pytest.approx(v, rel=1e-9), key


def test_dataframe_2d_array_and_rows_inputs_agree(data):
    frame = pd.DataFrame({"age": data["age"], "income": data["income"]})
    results = []
    for features, kwargs in ((frame, {}),
                             (frame.to_numpy(), {"columns": ["age", "income"]}),
                             (frame.to_dict("records"), {})):
        monitor, registry = make()
        monitor.observe_batch(features, data["pred"], **kwargs)
        results.append(samples(registry))
    # NaN is `nan` in a column and in a record alike, so all three count the same (sums up to
    # the order of addition)
    assert results[0] == results[1]
    assert results[2].keys() == results[0].keys()
    for key, v in results[0].items():
        assert results[2][key] == pytest.approx(v, rel=1e-9), key


def test_object_columns_classify_each_value():
    monitor, registry = make()
    monitor.observe_batch({"age": [30.0, "x", None, True, 10**400, np.float32(60)],
                           "city": ["paris", 3, True, {"a": 1}, None, "rome"]})
    get = registry.get_sample_value
    assert get("mlmon_feature_invalid_total", {**M, "feature": "age",
                                                "reason": "wrong_type"}) == 2.0
    assert get("mlmon_feature_invalid_total", {**M, "feature": "age", "reason": "inf"}) == 1.0
    assert get("mlmon_feature_value_count", {**M, "feature": "age"}) == 2.0
    assert get("mlmon_feature_invalid_total", {**M, "feature": "city",
                                                "reason": "wrong_type"}) == 1.0
    assert get("mlmon_feature_category_total", {**M, "feature": "city",
                                                 "category": "__unseen__"}) == 2.0


@pytest.mark.parametrize("features, predictions, reason", [
    ({"age": [1.0, 2.0], "income": [1.0]}, None, "batch_length_mismatch"),
    ({"age": [1.0, 2.0]}, [0.1], "batch_length_mismatch"),
    ({"age": 3.0}, None, "bad_batch"),
    ("age", None, "bad_batch"),
    (np.zeros((3, 7)), None, "bad_batch"),
])
def test_unusable_batches_are_rejected_and_counted(features, predictions, reason):
    monitor, registry = make()
    result = monitor.observe_batch(features, predictions)
    assert result.rejected == reason and result.rows == 0
    assert registry.get_sample_value("mlmon_rejected_total", {**M, "reason": reason}) == 1.0
    assert registry.get_sample_value("mlmon_observations_total", M) == 0.0


def test_classification_batch_with_score_matrix():
    monitor, registry = make(Profile.from_dict(sample_profile_dict(True)))
    labels = np.array(["yes", "no", "maybe", "yes"], dtype=object)
    scores = np.array([[0.3, 0.7], [0.95, 0.05], [0.5, 0.5], [0.1, 0.9]])
    monitor.observe_batch({}, labels, scores=scores)
    get = registry.get_sample_value
    assert get("mlmon_prediction_class_total", {**M, "class": "yes"}) == 2.0
    assert get("mlmon_prediction_class_total", {**M, "class": "__unseen__"}) == 1.0
    assert get("mlmon_prediction_score_count", M) == 3.0
    assert get("mlmon_prediction_score_bucket", {**M, "le": "0.8"}) == 1.0
    assert get("mlmon_prediction_score_sum", M) == pytest.approx(0.7 + 0.95 + 0.9)


@pytest.mark.parametrize("features, predictions", [
    ({"age": np.ones((3, 3)) * 30}, None),              # a 2-D column: rows are ambiguous
    ({"age": [30.0, 31.0]}, np.ones((2, 2))),           # 2 rows, but 4 predictions
    ({"age": np.ones((2, 1))}, None),                   # features are never (n, 1)
    ({"age": [30.0, 31.0]}, np.float64(1.0) * np.ones((2, 1, 1))),
    ({"age": [30.0, 31.0]}, pd.DataFrame({"a": [0.1, 0.2], "b": [0.3, 0.4]})),
    (pd.DataFrame([[30.0, 40.0], [31.0, 41.0]], columns=["age", "age"]), None),
    (np.ones((2, 2)) * 30, None),  # with columns=["age", "age"] below
])
def test_odd_shapes_are_rejected_as_bad_batch(features, predictions):
    monitor, registry = make()
    columns = ["age", "age"] if isinstance(features, np.ndarray) else None
    result = monitor.observe_batch(features, predictions, columns=columns)
    assert (result.rejected, result.rows) == ("bad_batch", 0)
    get = registry.get_sample_value
    assert get("mlmon_rejected_total", {**M, "reason": "bad_batch"}) == 1.0
    assert get("mlmon_observations_total", M) == 0.0
    assert get("mlmon_feature_value_count", {**M, "feature": "age"}) == 0.0
    assert get("mlmon_prediction_value_count", M) == 0.0


@pytest.mark.parametrize("as_column", [
    lambda y: pd.DataFrame({"prediction": y}),
    lambda y: np.asarray(y).reshape(-1, 1),
    lambda y: pd.Series(y),
])
def test_predictions_as_one_column_are_counted(as_column):
    monitor, registry = make()
    ys = [-2.0, 0.5, 0.5, 3.0]
    result = monitor.observe_batch({"age": [30.0] * 4}, as_column(ys))
    assert (result.rejected, result.rows) == (None, 4)
    get = registry.get_sample_value
    assert get("mlmon_prediction_value_count", M) == 4.0
    assert get("mlmon_prediction_value_sum", M) == 2.0
    assert get("mlmon_prediction_value_bucket", {**M, "le": "1.0"}) == 3.0
    assert get("mlmon_prediction_invalid_total", {**M, "reason": "wrong_type"}) == 0.0


def test_classification_predictions_as_one_column_dataframe():
    monitor, registry = make(Profile.from_dict(sample_profile_dict(True)))
    monitor.observe_batch({}, pd.DataFrame({"label": ["yes", "no", "yes"]}))
    get = registry.get_sample_value
    assert get("mlmon_prediction_class_total", {**M, "class": "yes"}) == 2.0
    assert get("mlmon_prediction_invalid_total", {**M, "reason": "wrong_type"}) == 0.0


def test_scores_of_odd_shape_are_bad_scores():
    monitor, registry = make(Profile.from_dict(sample_profile_dict(True)))
    monitor.observe_batch({}, ["yes", "no"], scores=np.full((2, 1, 1), 0.5))
    get = registry.get_sample_value
    assert get("mlmon_rejected_total", {**M, "reason": "bad_score"}) == 2.0
    assert get("mlmon_prediction_score_count", M) == 0.0
    assert get("mlmon_prediction_class_total", {**M, "class": "yes"}) == 1.0
