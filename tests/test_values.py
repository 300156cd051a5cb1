"""One classification of values: observe(), observe_batch() and the Elasticsearch record agree.

The same value (NaN, +-Inf, numpy scalars, wrong types, nulls...) goes through the three paths;
each must reach the verdict `mlmon.exporter.values` gives it: counted (and as the same number,
category
or text), missing, or invalid for the same reason.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.values import (
    INF,
    MISSING,
    NAN,
    OUT_OF_RANGE,
    WRONG_TYPE,
    classify_category,
    classify_label,
    classify_number,
    classify_text,
)
from mlmon.log_shipper.record import RecordBuilder
from tests.profiles import sample_profile_dict

PROFILES = {kind: Profile.from_dict(sample_profile_dict(kind == "classification"))
            for kind in ("regression", "classification")}
FEATURES = {"age": "numeric", "city": "categorical", "review": "text"}
REJECTED = {MISSING, NAN, INF, WRONG_TYPE}  # flags of a value that is not counted as a value

# Values a model service really passes, and ones it should not: each path must agree on all.
ODD = [
    None, pd.NA, pd.NaT, float("nan"), float("inf"), -float("inf"), np.float64("nan"),
    np.float32("nan"), np.float64("inf"), np.float16(2.5), np.int64(30), np.uint8(200),
    np.bool_(True), True, False, np.str_("paris"), np.str_("good food"), np.array(3.0),
    np.array([1.0]), Decimal("1.5"), Decimal("NaN"), Fraction(1, 3), 10**400, -(10**400),
    10**5000, 2**63, "paris", "rome", "tokyo", "3", "", "the good service", b"paris",
    complex(1, 2), {"a": 1}, [1.0], np.datetime64("NaT"), 0, 1, 30.0, 1e300,
]
values = st.one_of(
    st.sampled_from(ODD), st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(np.float32),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64),
    st.text(max_size=12), st.sampled_from(["paris", "rome", "berlin", "the bad food"]),
)
columns = st.lists(values, min_size=1, max_size=8)


def fresh(kind: str = "regression") -> tuple[ModelMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return ModelMonitor.from_profile(PROFILES[kind], registry, clock=lambda: 1e6,
                                     multiproc_directory=None), registry


def builder(kind: str = "regression") -> RecordBuilder:
    return RecordBuilder(model="churn", model_version="3", service_name="s",
                         environment="test", profile=PROFILES[kind], new_id=lambda: "id")


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect() if m.name.startswith("mlmon_") for s in m.samples
            if "timestamp" not in s.name}


def assert_same_counts(got: CollectorRegistry, want: CollectorRegistry) -> None:
    a, b = samples(got), samples(want)
    assert a.keys() == b.keys()
    for key, v in b.items():  # sums may differ in the last bits with the order of addition
        assert a[key] == pytest.approx(v, rel=1e-12, abs=1e-300, nan_ok=True), key


def batch_containers(column: list[Any]) -> list[Any]:
    """The shapes a batch column comes in: list, object array, object Series, and the numeric
    dtype numpy/pandas would pick when every value is a float."""
    out: list[Any] = [column, np.array(column + [None], dtype=object)[:-1],
                      pd.Series(column, dtype=object)]
    if all(type(v) is float for v in column):
        out += [np.array(column, dtype=np.float64), pd.Series(column, dtype=np.float64)]
    return out


# ---- features ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(FEATURES)), column=columns)
def test_a_feature_value_gets_one_verdict_in_observe_batch_and_record(name, column):
    check_feature(name, column)


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_odd_value_as_a_feature(name):
    check_feature(name, list(ODD))


def check_feature(name: str, column: list[Any]) -> None:
    single, single_registry = fresh()
    flags = [single.observe({name: v}).flags.get(name, ()) for v in column]
    for container in batch_containers(column):
        batch, batch_registry = fresh()
        assert batch.observe_batch({name: container}).rows == len(column)
        assert_same_counts(batch_registry, single_registry)
    # The record holds a typed value exactly when observe() counted one, and it is the same
    # value: observing what the record holds counts what observing the raw value counted.
    record = builder()
    raw, raw_registry = fresh()
    typed, typed_registry = fresh()
    for v, flag in zip(column, flags, strict=True):
        held = record.build({name: v}, None, flags={name: flag})["features"][name]
        assert (held is None) == bool(REJECTED & set(flag)), (v, flag, held)
        if held is not None:
            assert typed.observe({name: held}).flags.get(name, ()) == flag
            raw.observe({name: v})
    assert_same_counts(typed_registry, raw_registry)


@pytest.mark.parametrize("dtype", ["Float64", "Int64"])
def test_nullable_pandas_columns_count_na_as_missing(dtype):
    batch, batch_registry = fresh()
    batch.observe_batch({"age": pd.Series(pd.array([1, None, 30], dtype=dtype))})
    single, single_registry = fresh()
    for v in (1, pd.NA, 30):
        single.observe({"age": v})
    assert_same_counts(batch_registry, single_registry)
    assert single_registry.get_sample_value("mlmon_feature_missing_total", {
        "model": "churn", "model_version": "3", "feature": "age"}) == 1.0


# ---- predictions ---------------------------------------------------------------------------


def prediction_verdict(monitor: ModelMonitor, registry: CollectorRegistry, y: Any) -> str | None:
    """What observe() did with prediction `y`: an invalid reason, MISSING when nothing about the
    prediction was counted, None when it was counted as a value or class."""
    before = samples(registry)
    monitor.observe({}, y)
    after = samples(registry)
    changed = {k[0] for k, v in after.items() if v != before.get(k)}
    changed -= {"mlmon_observations_total", "mlmon_feature_missing_total"}
    if "mlmon_prediction_invalid_total" in changed:
        (reason,) = (dict(k[1])["reason"] for k, v in after.items()
                     if k[0] == "mlmon_prediction_invalid_total" and v != before.get(k))
        return reason
    return None if changed else MISSING


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(sorted(PROFILES)), column=columns)
def test_a_prediction_gets_one_verdict_in_observe_batch_and_record(kind, column):
    check_prediction(kind, column)


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_every_odd_value_as_a_prediction(kind):
    check_prediction(kind, list(ODD))


def check_prediction(kind: str, column: list[Any]) -> None:
    single, single_registry = fresh(kind)
    for y in column:
        single.observe({}, y)
    for container in batch_containers(column):
        batch, batch_registry = fresh(kind)
        assert batch.observe_batch({}, container).rows == len(column)
        assert_same_counts(batch_registry, single_registry)
    record = builder(kind)
    monitor, registry = fresh(kind)
    typed, typed_registry = fresh(kind)
    for y in column:
        verdict = prediction_verdict(monitor, registry, y)
        prediction = record.build({}, y)["prediction"]
        if verdict is None:  # counted: the record holds what observe() counted
            held = prediction["label"] if kind == "classification" else prediction["value"]
            assert "invalid" not in prediction
            assert prediction_verdict(typed, typed_registry, held) is None
        elif verdict == OUT_OF_RANGE:  # counted and flagged: the record keeps the value
            assert prediction["invalid"] == OUT_OF_RANGE and "value" in prediction, y
            typed.observe({}, y)
        else:
            assert prediction.get("invalid", MISSING) == verdict, (y, prediction)
            assert "label" not in prediction and "value" not in prediction
            typed.observe({}, y)  # keeps the two monitors' counts comparable
    assert_same_counts(typed_registry, registry)


# ---- the decisions themselves ------------------------------------------------------------------


@pytest.mark.parametrize("value, verdict", [
    (2.5, (2.5, None)), (np.float32(0.5), (0.5, None)), (np.int64(3), (3.0, None)),
    (Fraction(1, 4), (0.25, None)), (None, (None, MISSING)), (pd.NA, (None, MISSING)),
    (True, (None, WRONG_TYPE)), (np.bool_(False), (None, WRONG_TYPE)),
    ("3", (None, WRONG_TYPE)), (Decimal("3"), (None, WRONG_TYPE)),
    (np.array(3.0), (None, WRONG_TYPE)),
    pytest.param(10**400, (float("inf"), INF), id="int-1e400"),
    pytest.param(-(10**400), (-float("inf"), INF), id="int-minus-1e400"),
    (np.float64("-inf"), (-float("inf"), INF)),
])
def test_classify_number(value, verdict):
    assert classify_number(value) == verdict


def test_classify_number_nan():
    x, reason = classify_number(np.float32("nan"))
    assert reason == NAN and x != x


@pytest.mark.parametrize("value, category, label", [
    ("paris", ("paris", None), ("paris", None)),
    (np.str_("paris"), ("paris", None), ("paris", None)),
    (np.int64(3), ("3", None), ("3", None)), (3.0, ("3", None), ("3", None)),
    (True, ("true", None), ("true", None)),
    (float("nan"), (None, MISSING), (None, NAN)),
    (np.float64("nan"), (None, MISSING), (None, NAN)),
    (np.float32("inf"), (None, WRONG_TYPE), (None, INF)),
    (None, (None, MISSING), (None, MISSING)), (pd.NaT, (None, MISSING), (None, MISSING)),
    (b"paris", (None, WRONG_TYPE), (None, WRONG_TYPE)),
    pytest.param(10**5000, (None, WRONG_TYPE), (None, WRONG_TYPE), id="int-5000-digits"),
])
def test_classify_category_and_label(value, category, label):
    assert classify_category(value) == category
    assert classify_label(value) == label


@pytest.mark.parametrize("value, verdict", [
    ("good food", ("good food", None)), (np.str_("good"), ("good", None)),
    (None, (None, MISSING)), (np.float64("nan"), (None, MISSING)), (3, (None, WRONG_TYPE)),
    (b"good", (None, WRONG_TYPE)),
])
def test_classify_text(value, verdict):
    result = classify_text(value)
    assert result == verdict and (result[0] is None or type(result[0]) is str)


def test_a_record_without_profile_types_odd_values_without_raising():
    record = RecordBuilder(model="churn", model_version="3", service_name="s",
                           environment="test", new_id=lambda: "id")
    doc = record.build({"big": 10**400, "n": np.int64(3), "x": np.float64("nan"),
                        "flag": np.bool_(True), "s": np.str_("paris")}, 10**400)
    assert doc["features"] == {"big": None, "n": 3, "x": None, "flag": True, "s": "paris"}
    assert doc["prediction"] == {"invalid": INF}
