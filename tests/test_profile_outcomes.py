"""The profile's side of outcomes and unreasonable outputs: baseline metrics against the target
(equal to scikit-learn's and numpy's), residual edges, the allowed prediction range and its
`out_of_range` verdict in observe(), observe_batch() and the record; old profiles still load."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

import mlmon.names as N
from mlmon.cli import main
from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.profile import RegressionPrediction, widened_range
from mlmon.log_shipper.record import RecordBuilder
from mlmon.profiling import ProfilingError, profile_data
from tests.profiles import sample_profile_dict

MODEL = {"model_name": "price", "model_version": "1"}
M = {"model": "churn", "model_version": "3"}


def regression_data(n: int = 2000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    x = rng.normal(10, 3, n)
    truth = 2 * x + rng.normal(0, 1, n)
    predicted = 2 * x + 0.3  # a biased model
    return pd.DataFrame({"x": x}), predicted, truth


def test_regression_baselines_equal_numpy_and_residual_edges_are_error_quantiles() -> None:
    frame, predicted, truth = regression_data()
    profile = profile_data(frame, **MODEL, predictions=predicted, targets=truth, bins=8)
    errors = predicted - truth
    metrics = profile.baseline_metrics
    assert math.isclose(metrics["mae"], mean_absolute_error(truth, predicted), rel_tol=1e-12)
    assert math.isclose(metrics["rmse"], root_mean_squared_error(truth, predicted),
                        rel_tol=1e-12)
    assert math.isclose(metrics["bias"], errors.mean(), rel_tol=1e-9)
    pred = profile.prediction
    assert isinstance(pred, RegressionPrediction)
    expected = np.unique(np.quantile(errors, np.arange(1, 8) / 8, method="inverted_cdf"))
    assert pred.residual_edges == tuple(expected.tolist())
    assert pred.error_edges() == pred.residual_edges
    # the monitor's error histogram is on those edges
    registry = CollectorRegistry()
    monitor = ModelMonitor(profile, registry, multiproc_directory=None)
    monitor.observe_outcomes(predicted, truth)
    labels = {"model": "price", "model_version": "1"}
    for edge in expected:
        le = repr(float(edge))
        got = registry.get_sample_value(N.OUTCOME_ERROR.bucket, {**labels, "le": le})
        assert got == np.count_nonzero(errors <= edge), le


def test_classifier_accuracy_equals_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    truth = rng.choice(["a", "b", "c"], 1500)
    predicted = np.where(rng.random(1500) < 0.7, truth, rng.choice(["a", "b", "c"], 1500))
    profile = profile_data({"x": rng.random(1500)}, **MODEL, predictions=predicted,
                           targets=truth)
    assert math.isclose(profile.baseline_metrics["accuracy"], accuracy_score(truth, predicted),
                        rel_tol=1e-12)


def test_without_a_target_there_are_no_baselines_nor_residual_edges() -> None:
    frame, predicted, _ = regression_data()
    profile = profile_data(frame, **MODEL, predictions=predicted)
    assert profile.baseline_metrics == {}
    assert profile.prediction.residual_edges is None  # type: ignore[union-attr]


def test_default_prediction_range_is_the_reference_range_widened_like_features() -> None:
    frame, predicted, _ = regression_data()
    profile = profile_data(frame, **MODEL, predictions=predicted, range_margin=0.2)
    low, high = predicted.min(), predicted.max()
    assert profile.prediction_range() == widened_range(low, high, 0.2)
    assert profile.prediction.allowed_range == widened_range(  # type: ignore[union-attr]
        low, high, 0.2)
    # features use the same margin
    assert profile.feature("x").allowed_range == widened_range(  # type: ignore[union-attr]
        frame["x"].min(), frame["x"].max(), 0.2)


def test_an_open_prediction_range_is_stored_with_null_and_read_back_as_infinite() -> None:
    frame, predicted, _ = regression_data()
    profile = profile_data(frame, **MODEL, predictions=predicted, prediction_range=(0.0, None))
    assert json.loads(profile.dumps())["prediction"]["allowed_range"] == [0.0, None]
    assert Profile.loads(profile.dumps()).prediction_range() == (0.0, math.inf)


def test_a_prediction_range_for_a_classifier_is_an_error() -> None:
    with pytest.raises(ProfilingError, match="prediction_range is for regression"):
        profile_data({"x": [1.0, 2.0]}, **MODEL, predictions=["a", "b"],
                     prediction_range=(0.0, 1.0))


def test_an_old_profile_loads_with_documented_defaults_and_keeps_its_bytes() -> None:
    old = sample_profile_dict()  # no residual_edges, no allowed_range: written before them
    profile = Profile.from_dict(old)
    pred = profile.prediction
    assert isinstance(pred, RegressionPrediction)
    assert pred.residual_edges is None and pred.allowed_range is None
    # edges at multiples of the predictions' std (1.0 here) either side of 0
    assert pred.error_edges() == (-3.0, -2.0, -1.0, -0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1,
                                  0.25, 0.5, 1.0, 2.0, 3.0)
    assert profile.prediction_range() == (-3.6, 3.6)  # [-3, 3] widened by 0.1 * 6 each side
    written = json.loads(profile.dumps())["prediction"]
    assert "residual_edges" not in written and "allowed_range" not in written


@pytest.mark.parametrize("bad, message", [
    ({"allowed_range": [1.0]}, "expected [low, high]"),
    ({"allowed_range": [2.0, 1.0]}, "low 2.0 is above high 1.0"),
    ({"allowed_range": ["a", None]}, "expected a finite number"),
    ({"residual_edges": [1.0, 1.0]}, "strictly increasing"),
    ({"residual_edges": "x"}, "expected a list of numbers"),
])
def test_bad_new_fields_are_profile_errors(bad, message) -> None:
    data = sample_profile_dict()
    data["prediction"].update(bad)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Profile.from_dict(data)


def ranged_profile() -> Profile:
    data = sample_profile_dict()
    data["prediction"]["allowed_range"] = [0.0, None]
    return Profile.from_dict(data)


def test_out_of_range_predictions_are_counted_flagged_and_still_in_the_histogram() -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor(ranged_profile(), registry, multiproc_directory=None)
    assert monitor.observe({"age": 30.0}, -0.5).prediction_invalid == "out_of_range"
    assert monitor.observe({"age": 30.0}, 1e300).prediction_invalid is None  # open above
    assert monitor.observe({"age": 30.0}, 0.0).prediction_invalid is None  # ends included
    assert monitor.observe({"age": 30.0}, -2).prediction_invalid == "out_of_range"  # an int
    assert monitor.observe({"age": 30.0}, math.nan).prediction_invalid == "nan"
    monitor.observe_batch({"age": [30.0] * 4}, np.array([-1.0, 0.5, -3.0, math.inf]))

    def get(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {**M, **labels})

    assert get(N.PREDICTION_INVALID.sample, reason="out_of_range") == 4
    assert get(N.PREDICTION_INVALID.sample, reason="inf") == 1
    assert get(N.PREDICTION_VALUE.count) == 7  # out of range, yet counted in the histogram


def test_the_default_range_flags_what_the_reference_never_came_close_to() -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor(Profile.from_dict(sample_profile_dict()), registry,
                           multiproc_directory=None)
    assert monitor.observe({}, 3.5).prediction_invalid is None  # within [-3.6, 3.6]
    assert monitor.observe({}, 3.7).prediction_invalid == "out_of_range"


def test_the_record_carries_out_of_range_with_the_value() -> None:
    builder = RecordBuilder(model="churn", model_version="3", service_name="s",
                            environment="test", profile=ranged_profile())
    assert builder.build({}, -0.5)["prediction"] == {"value": -0.5, "invalid": "out_of_range"}
    assert builder.build({}, 0.5)["prediction"] == {"value": 0.5}


def test_cli_prediction_range_with_an_open_end(tmp_path, capsys) -> None:
    frame, predicted, truth = regression_data(300)
    frame["y_hat"], frame["y"] = predicted, truth
    data = tmp_path / "train.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "p.json"
    assert main(["profile", str(data), "--model", "price", "--model-version", "1",
                 "--prediction-column", "y_hat", "--target-column", "y",
                 "--prediction-range", "0:", "-o", str(out)]) == 0
    profile = Profile.load(out)
    assert profile.prediction_range() == (0.0, math.inf)
    assert set(profile.baseline_metrics) == {"mae", "rmse", "bias"}


@pytest.mark.parametrize("typed, message", [
    ("0", "--prediction-range: expected LOW:HIGH with finite numbers, an end left empty when "
          "open (e.g. 0:), got '0'"),
    ("a:1", "got 'a:1'"),
    ("inf:", "got 'inf:'"),
    ("5:1", "--prediction-range: low 5 is above high 1 in '5:1'"),
])
def test_cli_bad_prediction_range_is_one_line_naming_what_was_typed(tmp_path, capsys, typed,
                                                                      message) -> None:
    data = tmp_path / "train.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y_hat": [1.0, 2.0]}).to_csv(data, index=False)
    code = main(["profile", str(data), "--model", "m", "--model-version", "1",
                 "--prediction-column", "y_hat", "--prediction-range", typed,
                 "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_cli_prediction_range_for_a_classifier_names_the_flag(tmp_path, capsys) -> None:
    data = tmp_path / "train.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y_hat": ["a", "b"]}).to_csv(data, index=False)
    code = main(["profile", str(data), "--model", "m", "--model-version", "1",
                 "--prediction-column", "y_hat", "--prediction-range", "0:1",
                 "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--prediction-range is for regression" in err
