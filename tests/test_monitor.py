"""ModelMonitor.observe(): classification rules of docs/design.md section 2, counted exactly."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor, Observation, Profile, ProfileError
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monitor(sample_profile: Profile, registry: CollectorRegistry, clock: Clock) -> ModelMonitor:
    return ModelMonitor.from_profile(sample_profile, registry, clock=clock,
                                     multiproc_directory=None)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {**M, **labels})


def test_numeric_values_land_in_le_buckets_with_sum(monitor, registry):
    for age in (25.0, 25.5, 35, 60.0, 95.0):  # 25 is le="25.0"; 95 is beyond the last edge
        assert monitor.observe({"age": age}).flags.get("age") is None
    buckets = {le: value(registry, "mlmon_feature_value_bucket", feature="age", le=le)
               for le in ("25.0", "35.0", "50.0", "+Inf")}
    assert buckets == {"25.0": 1.0, "35.0": 3.0, "50.0": 3.0, "+Inf": 5.0}
    assert value(registry, "mlmon_feature_value_count", feature="age") == 5.0
    assert value(registry, "mlmon_feature_value_sum", feature="age") == 240.5


def test_out_of_range_is_bucketed_and_flagged(monitor, registry):
    obs = monitor.observe({"age": 5.0, "income": 10_000})
    assert obs.flags == {"age": ("out_of_range",), "income": ("out_of_range",),
                         "city": ("missing",), "review": ("missing",)}
    assert value(registry, "mlmon_feature_invalid_total", feature="age",
                 reason="out_of_range") == 1.0
    assert value(registry, "mlmon_feature_value_bucket", feature="age", le="25.0") == 1.0
    assert value(registry, "mlmon_feature_value_bucket", feature="income", le="+Inf") == 1.0


@pytest.mark.parametrize("raw, flag", [
    (math.nan, "missing"), (math.inf, "inf"), (-math.inf, "inf"), ("42", "wrong_type"),
    (True, "wrong_type"), ({"a": 1}, "wrong_type"), ([1.0], "wrong_type"), (None, "missing"),
])
def test_numeric_invalid_values_are_not_bucketed(monitor, registry, raw, flag):
    obs = monitor.observe({"age": raw})
    assert obs.flags["age"] == (flag,)
    name = "mlmon_feature_missing_total" if flag == "missing" else "mlmon_feature_invalid_total"
    labels = {"feature": "age"} if flag == "missing" else {"feature": "age", "reason": flag}
    assert value(registry, name, **labels) == 1.0
    assert value(registry, "mlmon_feature_value_count", feature="age") == 0.0


def test_numpy_scalars_and_ints_are_numbers(monitor, registry):
    monitor.observe({"age": np.float32(30.0), "income": np.int64(1500)})
    monitor.observe({"age": 10**400})  # too big for a float: +Inf, not an exception
    assert value(registry, "mlmon_feature_value_bucket", feature="age", le="35.0") == 1.0
    assert value(registry, "mlmon_feature_value_bucket", feature="income", le="2000.0") == 1.0
    assert value(registry, "mlmon_feature_invalid_total", feature="age", reason="inf") == 1.0


def test_python_ints_count_exactly_as_floats(sample_profile):
    """ints take their own fast path: same buckets, sums and flags as the equal floats."""
    values = [25, 26, 35, 50, 51, 97, 98, 10, 11, -(10**400), 10**400, 2**53 + 1]
    results = []
    for convert in (lambda v: v, lambda v: float(v) if abs(v) < 1e308 else (
            math.inf if v > 0 else -math.inf)):
        registry = CollectorRegistry()
        monitor = ModelMonitor.from_profile(sample_profile, registry, multiproc_directory=None)
        flags = [monitor.observe({"age": convert(v), "income": 1500}).flags.get("age")
                 for v in values]
        results.append((flags, {s.name + str(sorted(s.labels.items())): s.value
                                for m in registry.collect() if m.name.startswith("mlmon_feature")
                                for s in m.samples}))
    assert results[0] == results[1]
    flags, samples = results[0]
    assert flags.count(("out_of_range",)) == 3 and flags.count(("inf",)) == 2
    assert value(registry, "mlmon_feature_value_sum", feature="age") == sum(
        float(v) for v in values if abs(v) < 1e308)


def test_categories_top_other_unseen_and_not_allowed(monitor, registry):
    assert monitor.observe({"city": "paris"}).flags.get("city") is None
    assert monitor.observe({"city": "berlin"}).flags.get("city") is None  # seen, not top-K
    assert monitor.observe({"city": "tokyo"}).flags["city"] == ("unseen", "not_allowed")
    assert monitor.observe({"city": 3.5}).flags["city"] == ("unseen", "not_allowed")
    assert monitor.observe({"city": [1]}).flags["city"] == ("wrong_type",)
    counts = {c: value(registry, "mlmon_feature_category_total", feature="city", category=c)
              for c in ("paris", "rome", "__other__", "__unseen__")}
    assert counts == {"paris": 1.0, "rome": 0.0, "__other__": 1.0, "__unseen__": 2.0}
    assert value(registry, "mlmon_feature_invalid_total", feature="city",
                 reason="not_allowed") == 2.0
    assert value(registry, "mlmon_feature_invalid_total", feature="city",
                 reason="wrong_type") == 1.0


def test_explicit_allowed_list(registry):
    data = sample_profile_dict()
    data["features"][2]["allowed"] = ["lisbon", "paris"]
    monitor = ModelMonitor.from_profile(Profile.from_dict(data), registry,
                                        multiproc_directory=None)
    assert monitor.observe({"city": "rome"}).flags["city"] == ("not_allowed",)
    assert monitor.observe({"city": "lisbon"}).flags["city"] == ("unseen",)
    assert monitor.observe({"city": "paris"}).flags.get("city") is None
    assert value(registry, "mlmon_feature_invalid_total", feature="city",
                 reason="not_allowed") == 1.0
    assert value(registry, "mlmon_feature_category_total", feature="city",
                 category="__unseen__") == 1.0


def test_text_tokens_and_oov(monitor, registry):
    monitor.observe({"review": "The service was GREAT, the food bad!"})
    monitor.observe({"review": 12})
    assert value(registry, "mlmon_feature_text_tokens_total", feature="review") == 7.0
    # "was" and "food" are outside the vocabulary
    assert value(registry, "mlmon_feature_text_oov_tokens_total", feature="review") == 2.0
    assert value(registry, "mlmon_feature_invalid_total", feature="review",
                 reason="wrong_type") == 1.0


def test_unknown_features_are_counted_never_labelled(monitor, registry):
    obs = monitor.observe({"age": 30.0, "colour": "red", "size": 3})
    assert obs.unknown_features == ("colour", "size")
    assert value(registry, "mlmon_unknown_features_total") == 2.0
    exposition = {s.labels.get("feature") for m in registry.collect() for s in m.samples}
    assert "colour" not in exposition


def test_not_a_mapping_is_rejected(monitor, registry):
    obs = monitor.observe([("age", 30.0)])  # type: ignore[arg-type]
    assert obs.rejected == "not_a_mapping"
    assert value(registry, "mlmon_rejected_total", reason="not_a_mapping") == 1.0
    assert value(registry, "mlmon_observations_total") == 0.0


def test_regression_prediction_histogram_centered_squares_and_window(monitor, registry, clock):
    for y in (-2.0, 0.5, 1.0, 3.0):
        monitor.observe({}, y)
    monitor.observe({}, math.nan)
    monitor.observe({}, "high")
    assert value(registry, "mlmon_prediction_value_bucket", le="-1.0") == 1.0
    assert value(registry, "mlmon_prediction_value_bucket", le="1.0") == 3.0
    assert value(registry, "mlmon_prediction_value_count") == 4.0
    assert value(registry, "mlmon_prediction_value_sum") == 2.5
    ys = np.array([-2.0, 0.5, 1.0, 3.0])
    assert value(registry, "mlmon_prediction_centered_sum_squares") == pytest.approx(
        float(np.sum((ys - 0.0) ** 2)))
    assert value(registry, "mlmon_prediction_invalid_total", reason="nan") == 1.0
    assert value(registry, "mlmon_prediction_invalid_total", reason="wrong_type") == 1.0
    assert value(registry, "mlmon_prediction_window_min") == -2.0
    assert value(registry, "mlmon_prediction_window_max") == 3.0
    clock.now += 30
    monitor.observe({}, 0.25)
    assert value(registry, "mlmon_prediction_window_min") == -2.0
    clock.now += 45  # the first observations are now older than the 60 s window
    assert value(registry, "mlmon_prediction_window_min") == 0.25
    clock.now += 120
    assert value(registry, "mlmon_prediction_window_min") is None  # empty window: absent


def test_classification_classes_scores_and_unseen(registry):
    monitor = ModelMonitor.from_profile(Profile.from_dict(sample_profile_dict(True)), registry,
                                        multiproc_directory=None)
    monitor.observe({}, "yes", scores={"no": 0.3, "yes": 0.7})
    monitor.observe({}, "no", scores=0.95)
    monitor.observe({}, "maybe")
    monitor.observe({}, math.inf)
    monitor.observe({}, "yes", scores="high")
    assert value(registry, "mlmon_prediction_class_total", **{"class": "yes"}) == 2.0
    assert value(registry, "mlmon_prediction_class_total", **{"class": "__unseen__"}) == 1.0
    assert value(registry, "mlmon_prediction_class_reference_share", **{"class": "no"}) == 0.75
    assert value(registry, "mlmon_prediction_score_bucket", le="0.8") == 1.0
    assert value(registry, "mlmon_prediction_score_count") == 2.0
    assert value(registry, "mlmon_prediction_invalid_total", reason="inf") == 1.0
    assert value(registry, "mlmon_rejected_total", reason="bad_score") == 1.0


def test_track_request_counts_outcomes_latency_and_in_flight(monitor, registry):
    with monitor.track_request():
        assert value(registry, "mlmon_requests_in_flight") == 1.0
    with pytest.raises(RuntimeError), monitor.track_request():
        raise RuntimeError("model failed")
    with monitor.track_request() as request:
        request.error()

    @monitor.track_request()
    def predict(x: float) -> float:
        return x * 2

    assert predict(2.0) == 4.0
    monitor.record_error()
    assert value(registry, "mlmon_requests_total", outcome="ok") == 2.0
    assert value(registry, "mlmon_requests_total", outcome="error") == 3.0
    assert value(registry, "mlmon_requests_in_flight") == 0.0
    assert value(registry, "mlmon_inference_latency_seconds_count") == 4.0


def test_async_decorator(monitor, registry):
    import asyncio

    @monitor.track_request()
    async def predict() -> str:
        return "ok"

    assert asyncio.run(predict()) == "ok"
    assert value(registry, "mlmon_requests_total", outcome="ok") == 1.0


def test_latency_from_observe(monitor, registry):
    monitor.observe({}, 0.0, latency_s=0.02)
    monitor.observe({}, 0.0, latency_s=-1.0)
    assert value(registry, "mlmon_inference_latency_seconds_bucket", le="0.025") == 1.0
    assert value(registry, "mlmon_rejected_total", reason="bad_latency") == 1.0


def test_bad_profile_raises_profile_error(tmp_path, registry):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="p.json"):
        ModelMonitor.from_profile(path, registry)


def test_a_mapping_whose_lookups_fail_is_counted_not_raised(monitor, registry):
    from collections.abc import Iterator, Mapping

    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            return iter(["age"])

        def __len__(self) -> int:
            return 1

    obs = monitor.observe(Broken())
    assert isinstance(obs, Observation) and obs.rejected == "internal_error"
    assert value(registry, "mlmon_rejected_total", reason="internal_error") == 1.0


def test_a_defaultdict_is_read_not_filled(monitor, registry):
    from collections import defaultdict

    features: defaultdict[str, Any] = defaultdict(lambda: 30.0, {"income": 1500})
    assert monitor.observe(features).flags == {"age": ("missing",), "city": ("missing",),
                                               "review": ("missing",)}
    assert dict(features) == {"income": 1500}
    assert value(registry, "mlmon_feature_missing_total", feature="age") == 1.0


@pytest.mark.parametrize("features", [
    {"age": "old"},                       # flagged
    {"age": 30.0, "city": "paris", "income": 10.0, "review": "good", "colour": "red"},  # unknown
    [("age", 30.0)],                      # rejected
])
def test_observation_flags_are_read_only(monitor, features):
    obs = monitor.observe(features)
    with pytest.raises(TypeError):
        obs.flags["age"] = ("missing",)  # type: ignore[index]


def test_observe_and_batches_from_several_threads_count_exactly(monitor, registry):
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        def work(k: int) -> None:
            for i in range(2000):
                monitor.observe({"age": 20 + (i + k) % 40, "city": "rome", "income": 1500.0},
                                float(i % 3) - 1.0)
                monitor.observe_batch({"age": [30.0, 60.0]}, [0.0, 0.5])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert value(registry, "mlmon_observations_total") == 4 * 2000 * 3
    assert value(registry, "mlmon_feature_value_count", feature="age") == 4 * 2000 * 3
    assert value(registry, "mlmon_feature_value_sum", feature="age") == sum(
        20 + (i + k) % 40 + 90.0 for k in range(4) for i in range(2000))
    assert value(registry, "mlmon_prediction_value_count") == 4 * 2000 * 3
    assert value(registry, "mlmon_feature_category_total", feature="city",
                 category="rome") == 4 * 2000
    assert value(registry, "mlmon_prediction_window_max") == 1.0
