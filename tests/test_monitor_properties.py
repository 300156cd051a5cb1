"""The never-raise contract: whatever the caller passes is counted, never raised."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from mlmon.exporter import BatchObservation, ModelMonitor, Observation, Profile
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}
NAMES = ["age", "income", "city", "review"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50), st.binary(max_size=20),
    st.sampled_from(["paris", "rome", "berlin", "the good service", "", np.float32(3.5),
                     np.int64(7), np.nan, np.array([1.0, 2.0]), object()]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
records = st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=8), st.integers()),
                          values, max_size=6)
anything = st.one_of(records, values)
settings_ = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

PROFILES = {False: Profile.from_dict(sample_profile_dict()),
            True: Profile.from_dict(sample_profile_dict(True))}


def fresh(classification: bool) -> tuple[ModelMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return ModelMonitor.from_profile(PROFILES[classification], registry,
                                     multiproc_directory=None), registry


@settings_
@given(features=anything, prediction=values, scores=values, latency=values,
       classification=st.booleans())
def test_observe_never_raises_and_counts_every_call(features: Any, prediction: Any, scores: Any,
                                                    latency: Any, classification: bool) -> None:
    monitor, registry = fresh(classification)
    obs = monitor.observe(features, prediction, latency_s=latency, scores=scores)
    assert isinstance(obs, Observation)
    observed = registry.get_sample_value("mlmon_observations_total", M)
    rejected = sum(registry.get_sample_value("mlmon_rejected_total", {**M, "reason": r}) or 0
                   for r in ("not_a_mapping", "internal_error"))
    assert observed + rejected == 1.0
    assert registry.get_sample_value("mlmon_rejected_total", {**M, "reason": "internal_error"}) \
        == 0.0, "no input should reach the internal_error path"
    assert set(obs.flags) <= set(NAMES)
    for flags in obs.flags.values():
        assert set(flags) <= {"missing", "out_of_range", "not_allowed", "unseen", "nan", "inf",
                              "wrong_type"}


@settings_
@given(columns=st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=5)),
                               st.one_of(st.lists(values, max_size=5), values), max_size=5),
       predictions=st.one_of(st.none(), st.lists(values, max_size=5), values),
       classification=st.booleans())
def test_observe_batch_never_raises(columns: Any, predictions: Any,
                                    classification: bool) -> None:
    monitor, registry = fresh(classification)
    result = monitor.observe_batch(columns, predictions)
    assert isinstance(result, BatchObservation)
    observed = registry.get_sample_value("mlmon_observations_total", M)
    assert observed == result.rows
    if result.rejected is None:
        assert registry.get_sample_value("mlmon_rejected_total",
                                         {**M, "reason": "internal_error"}) == 0.0


def test_one_megabyte_strings_are_counted() -> None:
    monitor, registry = fresh(False)
    big = "x" * 1_000_000
    obs = monitor.observe({"age": big, "city": big, "review": big, big: big}, big)
    assert obs.flags["age"] == ("wrong_type",) and obs.flags["city"] == ("unseen", "not_allowed")
    assert len(obs.unknown_features[0]) <= 256  # reported, truncated, never a label
    assert registry.get_sample_value("mlmon_prediction_invalid_total",
                                     {**M, "reason": "wrong_type"}) == 1.0
    assert registry.get_sample_value("mlmon_feature_text_tokens_total",
                                     {**M, "feature": "review"}) == 1.0
