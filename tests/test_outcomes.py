"""Outcome counting: confusion counts equal scikit-learn's, regression sums equal numpy's, every
label that is not counted is counted by its exact reason, and one label and a batch agree."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString
from sklearn.metrics import confusion_matrix

import mlmon.names as N
from mlmon.exporter import ModelMonitor, OutcomeMonitor, Profile
from mlmon.exporter.layout import LABEL_DELAY_BUCKETS, OUTCOME_REJECTED_REASONS
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}
CLASSES = ["no", "yes"]


def profile(classification: bool, **prediction: Any) -> Profile:
    data = sample_profile_dict(classification)
    data["prediction"].update(prediction)
    return Profile.from_dict(data)


def monitor(classification: bool, clock: float = 1e6, **prediction: Any
            ) -> tuple[ModelMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return ModelMonitor(profile(classification, **prediction), registry, clock=lambda: clock,
                        multiproc_directory=None), registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, {**M, **labels})
    assert got is not None, (name, labels)
    return got


def confusion(registry: CollectorRegistry, classes: list[str]) -> np.ndarray:
    return np.array([[value(registry, N.OUTCOME_CLASS.sample, predicted_class=p, actual_class=a)
                      for a in classes] for p in classes])


def rejected(registry: CollectorRegistry) -> dict[str, float]:
    counts = {r: value(registry, N.OUTCOME_REJECTED.sample, reason=r)
              for r in OUTCOME_REJECTED_REASONS}
    return {r: c for r, c in counts.items() if c}


@pytest.mark.parametrize("batch", [False, True])
def test_confusion_counts_equal_scikit_learn(batch: bool) -> None:
    rng = np.random.default_rng(11)
    labels = np.array(["no", "yes", "maybe"], dtype=object)  # "maybe" is not in the profile
    predicted = labels[rng.choice(3, 3000, p=[0.6, 0.3, 0.1])]
    actual = labels[rng.choice(3, 3000, p=[0.5, 0.4, 0.1])]
    m, registry = monitor(True)
    if batch:
        result = m.observe_outcomes(predicted, actual)
        assert result.counted == 3000 and result.rejected == {}
        np.testing.assert_array_equal(result.correct, predicted == actual)
    else:
        for p, a in zip(predicted, actual, strict=True):
            assert m.observe_outcome(p, a).correct == (p == a)
    # sklearn on the labels mapped as the exporter maps them: unknown classes to __unseen__
    classes = [*CLASSES, "__unseen__"]
    mapped = [[x if x in CLASSES else "__unseen__" for x in col] for col in (actual, predicted)]
    # sklearn's matrix is rows = actual, columns = predicted; ours is rows = predicted
    expected = confusion_matrix(mapped[0], mapped[1], labels=classes).T
    np.testing.assert_array_equal(confusion(registry, classes), expected)


def test_numbers_and_booleans_are_judged_as_classes_like_predictions() -> None:
    m, registry = monitor(True, classes=["0", "1"], class_shares=[0.5, 0.5])
    for p, a in [(1, 1.0), (np.int64(0), "0"), (True, 1), ("1", np.float64(1.0))]:
        m.observe_outcome(p, a)
    # True is the class "true" (values.canonical_category), not 1: judged like a prediction
    assert confusion(registry, ["0", "1", "__unseen__"]).tolist() == [
        [1, 0, 0], [0, 2, 0], [0, 1, 0]]


@pytest.mark.parametrize("batch", [False, True])
def test_regression_sums_equal_numpy(batch: bool) -> None:
    rng = np.random.default_rng(5)
    predicted = rng.normal(0, 1.5, 5000)
    actual = predicted + rng.normal(0.2, 0.7, 5000)
    edges = [-1.0, -0.3, 0.0, 0.3, 1.0]
    m, registry = monitor(False, residual_edges=edges)
    if batch:
        result = m.observe_outcomes(pd.Series(predicted), list(actual))
        assert result.counted == 5000
        np.testing.assert_allclose(result.errors, predicted - actual, rtol=0, atol=0)
    else:
        for p, a in zip(predicted.tolist(), actual.tolist(), strict=True):
            m.observe_outcome(p, a)
    errors = predicted - actual
    assert value(registry, N.OUTCOME_ERROR.count) == 5000
    assert math.isclose(value(registry, N.OUTCOME_ERROR.sum), errors.sum(), rel_tol=1e-9)
    assert math.isclose(value(registry, N.OUTCOME_ABSOLUTE_ERROR.sample), np.abs(errors).sum(),
                        rel_tol=1e-9)
    assert math.isclose(value(registry, N.OUTCOME_SQUARED_ERROR.sample),
                        np.square(errors).sum(), rel_tol=1e-9)
    for edge in edges:  # le semantics: an error equal to an edge is in that bucket
        assert value(registry, N.OUTCOME_ERROR.bucket, le=str(edge)) == np.count_nonzero(
            errors <= edge)


def test_error_edges_default_to_the_prediction_spread_without_residual_edges() -> None:
    p = profile(False, std=2.0)
    assert p.prediction.residual_edges is None  # type: ignore[union-attr]
    edges = p.prediction.error_edges()  # type: ignore[union-attr]
    assert edges == (-6.0, -4.0, -2.0, -1.0, -0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5, 1.0, 2.0,
                     4.0, 6.0)


def odd_cases(classification: bool) -> list[tuple[Any, Any, str]]:
    """(prediction, actual, the reason it is not counted)."""
    good = "yes" if classification else 1.0
    cases = [
        (None, good, "missing_prediction"),
        (pd.NA, good, "missing_prediction"),
        (float("nan"), good, "invalid_prediction"),
        (math.inf, good, "invalid_prediction"),
        ([1], good, "invalid_prediction"),
        (good, None, "missing_actual"),
        (good, float("nan"), "nan"),
        (good, -math.inf, "inf"),
        (good, {"a": 1}, "wrong_type"),
    ]
    if not classification:
        cases += [(good, "3.5", "wrong_type"), (good, True, "wrong_type"),
                  (1e200, -1e200, "inf")]  # the error overflows
    return cases


@pytest.mark.parametrize("classification", [False, True])
def test_labels_not_counted_are_counted_by_exact_reason(classification: bool) -> None:
    cases = odd_cases(classification)
    single, registry = monitor(classification)
    for p, a, reason in cases:
        assert single.observe_outcome(p, a).rejected == reason
    batch, batch_registry = monitor(classification)
    result = batch.observe_outcomes([c[0] for c in cases], [c[1] for c in cases])
    assert result.reasons == [c[2] for c in cases]
    expected: dict[str, float] = {}
    for _, _, reason in cases:
        expected[reason] = expected.get(reason, 0) + 1
    assert rejected(registry) == expected == rejected(batch_registry)
    assert result.rejected == expected and result.counted == 0


def test_a_profile_without_prediction_counts_every_label_as_rejected() -> None:
    data = sample_profile_dict()
    data["prediction"] = None
    registry = CollectorRegistry()
    m = ModelMonitor(Profile.from_dict(data), registry, multiproc_directory=None)
    assert m.observe_outcome(1.0, 2.0).rejected == "no_prediction_in_profile"
    assert m.observe_outcomes([1.0, 2.0], [1.0, 2.0]).rejected == {"no_prediction_in_profile": 2}
    assert rejected(registry) == {"no_prediction_in_profile": 3}


def test_a_batch_of_unequal_lengths_is_one_bad_batch() -> None:
    m, registry = monitor(True)
    result = m.observe_outcomes(["yes", "no"], ["yes"])
    assert (result.rows, result.rejected) == (0, {"bad_batch": 1})
    assert m.observe_outcomes(np.zeros((2, 2)), np.zeros((2, 2))).rejected == {"bad_batch": 1}
    assert rejected(registry) == {"bad_batch": 2}


def test_join_reasons_are_counted_through_reject_outcome() -> None:
    m, registry = monitor(True)
    m.reject_outcome("unknown_id", 3)
    m.reject_outcome("duplicate")
    m.reject_outcome("not a reason")  # an unknown reason is an internal error, not a new label
    assert rejected(registry) == {"unknown_id": 3, "duplicate": 1, "internal_error": 1}


def test_label_delay_from_every_time_spelling() -> None:
    now = 1_800_000_000.0
    m, registry = monitor(True, clock=now)
    t0 = datetime.fromtimestamp(now, timezone.utc) - timedelta(hours=2)
    spellings = [now - 7200, t0, t0.replace(tzinfo=None), t0.isoformat(),
                 t0.strftime("%Y-%m-%dT%H:%M:%SZ"), np.datetime64(int(now - 7200), "s"),
                 pd.Timestamp(t0)]
    for when in spellings:
        assert m.observe_outcome("yes", "yes", predicted_at=when).delay_s == 7200.0
    n = len(spellings)
    assert value(registry, N.OUTCOME_LABEL_DELAY.count) == n
    assert value(registry, N.OUTCOME_LABEL_DELAY.sum) == 7200.0 * n
    assert value(registry, N.OUTCOME_LABEL_DELAY.bucket, le="3600.0") == 0
    assert value(registry, N.OUTCOME_LABEL_DELAY.bucket, le="10800.0") == n
    # unusable times: the label counts, its delay does not
    for bad in ("yesterday", now + 60, math.nan, object()):
        verdict = m.observe_outcome("yes", "no", predicted_at=bad)
        assert (verdict.rejected, verdict.bad_delay, verdict.correct) == (None, True, False)
    assert rejected(registry) == {"bad_delay": 4}
    assert value(registry, N.OUTCOME_CLASS.sample, predicted_class="yes",
                 actual_class="no") == 4
    assert value(registry, N.OUTCOME_LABEL_DELAY.count) == n


def test_batch_delays_equal_numpy_and_bad_ones_are_counted() -> None:
    rng = np.random.default_rng(3)
    arrived = 1_800_000_000.0
    delays = rng.exponential(86400.0, 1000)
    predicted_at = arrived - delays
    predicted_at[:5] = np.nan           # unknown: no delay, nothing wrong
    predicted_at[5:8] = arrived + 10.0  # after the label: bad_delay
    m, registry = monitor(False)
    result = m.observe_outcomes(np.zeros(1000), np.zeros(1000), predicted_at=predicted_at,
                                arrived_at=arrived)
    usable = arrived - predicted_at[8:]  # the delays as the times give them (float rounding)
    np.testing.assert_array_equal(result.delays[8:], usable)
    assert np.isnan(result.delays[:8]).all()
    assert result.rejected == {"bad_delay": 3} and result.counted == 1000
    assert value(registry, N.OUTCOME_LABEL_DELAY.count) == usable.size
    assert math.isclose(value(registry, N.OUTCOME_LABEL_DELAY.sum), usable.sum(), rel_tol=1e-9)
    for edge in LABEL_DELAY_BUCKETS:
        assert value(registry, N.OUTCOME_LABEL_DELAY.bucket, le=_le(edge)) == np.count_nonzero(
            usable <= edge)
    # datetime64 columns and pandas timestamps give the same delays
    again, _ = monitor(False)
    stamps = pd.Series(pd.to_datetime(predicted_at[8:], unit="s"))
    other = again.observe_outcomes(np.zeros(992), np.zeros(992), predicted_at=stamps,
                                   arrived_at=pd.Timestamp(arrived, unit="s"))
    np.testing.assert_allclose(other.delays, usable, rtol=0, atol=1e-5)  # datetime64 is in ns


def _le(edge: float) -> str:
    return floatToGoString(edge)


def test_single_and_batch_agree_on_mixed_values() -> None:
    rng = np.random.default_rng(9)
    pool_p: list[Any] = ["yes", "no", "maybe", None, math.nan, 1, True, [1]]
    pool_a: list[Any] = ["yes", "no", "other", None, math.inf, 0, "yes", "no"]
    predicted = [pool_p[i] for i in rng.integers(0, len(pool_p), 500)]
    actual = [pool_a[i] for i in rng.integers(0, len(pool_a), 500)]
    single, r1 = monitor(True)
    verdicts = [single.observe_outcome(p, a) for p, a in zip(predicted, actual, strict=True)]
    batch, r2 = monitor(True)
    result = batch.observe_outcomes(predicted, actual)
    assert result.reasons == [v.rejected for v in verdicts]
    assert [bool(c) for c in result.correct] == [bool(v.correct) for v in verdicts]
    classes = [*CLASSES, "__unseen__"]
    np.testing.assert_array_equal(confusion(r1, classes), confusion(r2, classes))
    assert rejected(r1) == rejected(r2)


def test_two_different_unseen_classes_are_not_correct() -> None:
    m, _ = monitor(True)
    assert m.observe_outcome("maybe", "other").correct is False
    assert m.observe_outcome("maybe", "maybe").correct is True
    result = m.observe_outcomes(["maybe", "maybe"], ["other", "maybe"])
    assert result.correct.tolist() == [False, True]


def test_outcome_monitor_exports_only_outcome_series() -> None:
    registry = CollectorRegistry()
    started = 1_700_000_000.0
    om = OutcomeMonitor(profile(True), registry, clock=lambda: started)
    om.observe_outcomes(["yes", "no", "yes"], ["yes", "yes", "no"])
    names = {m.name for m in registry.collect()}
    assert names == {N.COUNTERS_START.name, N.BASELINE.name, N.OUTCOME_CLASS.name,
                     N.OUTCOME_LABEL_DELAY.name, N.OUTCOME_REJECTED.name}
    assert value(registry, N.COUNTERS_START.name) == started
    assert value(registry, N.BASELINE.name, metric="mae") == 0.5
    assert confusion(registry, [*CLASSES, "__unseen__"]).tolist() == [
        [0, 1, 0], [1, 1, 0], [0, 0, 0]]
    exposition = generate_latest(registry).decode()
    samples = [line for line in exposition.splitlines() if not line.startswith("#")]
    assert len(samples) == om.series_count()
    assert "process_" not in exposition
    om.unregister()
    assert list(registry.collect()) == []


def test_outcome_monitor_of_a_regression_exports_the_error_series() -> None:
    registry = CollectorRegistry()
    om = OutcomeMonitor(profile(False), registry)
    assert om.observe_outcome(2.0, 0.5).error == 1.5
    names = {m.name for m in registry.collect()}
    assert {N.OUTCOME_ERROR.name, N.OUTCOME_ABSOLUTE_ERROR.name,
            N.OUTCOME_SQUARED_ERROR.name} <= names
    assert N.OUTCOME_CLASS.name not in names
    exposition = generate_latest(registry).decode()
    assert len([s for s in exposition.splitlines() if not s.startswith("#")]) == om.series_count()


def test_a_model_monitor_exports_outcomes_beside_its_other_series() -> None:
    m, registry = monitor(False)
    m.observe({"age": 30.0}, 0.5)
    m.observe_outcome(0.5, 0.0)
    assert value(registry, N.OUTCOME_ERROR.count) == 1
    assert value(registry, N.OBSERVATIONS.sample) == 1
    assert value(registry, N.BASELINE.name, metric="mae") == 0.5


def test_observe_outcome_never_raises_even_when_the_clock_does() -> None:
    def broken() -> float:
        raise RuntimeError("clock")

    registry = CollectorRegistry()
    om = OutcomeMonitor(profile(True), registry, clock=lambda: 0.0)
    om._outcomes.clock = broken
    assert om.observe_outcome("yes", "yes", predicted_at=0.0).rejected == "internal_error"
    assert om.observe_outcomes(["yes"], ["yes"], predicted_at=[0.0]).rejected == {
        "internal_error": 1}
    assert rejected(registry) == {"internal_error": 2}
