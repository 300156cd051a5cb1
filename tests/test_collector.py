"""Scrape-time rendering: the series of docs/design.md section 3, parseable, joinable, bounded."""

from __future__ import annotations

import copy

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from mlmon.exporter import ModelMonitor, Profile
from tests.profiles import sample_profile_dict


def monitor_for(data: dict, registry: CollectorRegistry) -> ModelMonitor:
    return ModelMonitor.from_profile(Profile.from_dict(data), registry, clock=lambda: 1e6,
                                     multiproc_directory=None)


def parsed(registry: CollectorRegistry) -> dict[str, list]:
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def mlmon_samples(registry: CollectorRegistry) -> list:
    return [s for name, ss in parsed(registry).items() if name.startswith("mlmon_") for s in ss]


@pytest.mark.parametrize("classification", [False, True])
def test_every_child_exists_at_zero_before_any_observation(classification):
    registry = CollectorRegistry()
    monitor = monitor_for(sample_profile_dict(classification), registry)
    counters = [s for s in mlmon_samples(registry) if "reference" not in s.name and (
        s.name.endswith(("_total", "_bucket", "_count", "_sum", "_squares"))
        or s.name == "mlmon_requests_in_flight")]
    assert counters and all(s.value == 0.0 for s in counters)
    # only the prediction window (absent while empty) is missing from the series count
    window = 0 if classification else 2
    assert len(mlmon_samples(registry)) == monitor.series_count() - window


@pytest.mark.parametrize("classification", [False, True])
def test_series_count_formula_matches_the_exposition(classification):
    registry = CollectorRegistry()
    monitor = monitor_for(sample_profile_dict(classification), registry)
    monitor.observe({"age": 1.0}, "yes" if classification else 0.5)
    assert len(mlmon_samples(registry)) == monitor.series_count()


def test_series_count_does_not_depend_on_traffic():
    registry = CollectorRegistry()
    monitor = monitor_for(sample_profile_dict(), registry)
    for i in range(50):
        monitor.observe({"age": float(i), "city": f"city{i}", f"extra{i}": i}, float(i))
    assert len(mlmon_samples(registry)) == monitor.series_count()


def test_live_and_reference_le_labels_are_identical_strings():
    registry = CollectorRegistry()
    monitor_for(sample_profile_dict(), registry)
    samples = parsed(registry)

    def les(family: str, feature: str | None = None) -> list[str]:
        return [s.labels["le"] for s in samples[family]
                if feature is None or s.labels.get("feature") == feature]

    for feature, edges in (("age", [25.0, 35.0, 50.0]), ("income", [1000.0, 2000.0])):
        expected = [floatToGoString(e) for e in edges] + ["+Inf"]
        live = [s.labels["le"] for s in samples["mlmon_feature_value"]
                if s.name.endswith("_bucket") and s.labels["feature"] == feature]
        assert live == expected
        assert les("mlmon_feature_reference_cumulative_share", feature) == expected
        assert les("mlmon_feature_reference_bin_share", feature) == expected
        prev = [(s.labels["previous_le"], s.labels["le"])
                for s in samples["mlmon_feature_bucket_previous_le_info"]
                if s.labels["feature"] == feature]
        assert prev == list(zip(expected, expected[1:], strict=False))
    shares = {s.labels["le"]: s.value for s in samples["mlmon_feature_reference_cumulative_share"]
              if s.labels["feature"] == "age"}
    assert shares == {"25.0": 0.25, "35.0": 0.5, "50.0": 0.75, "+Inf": 1.0}


def test_reference_and_info_series():
    registry = CollectorRegistry()
    monitor = monitor_for(sample_profile_dict(), registry)
    m = {"model": "churn", "model_version": "3"}
    get = registry.get_sample_value
    assert get("mlmon_model_info", {**m, "profile_sha": monitor.profile.sha}) == 1.0
    assert get("mlmon_model_trained_timestamp_seconds", m) == 1790812800.0  # 2026-10-01Z
    assert get("mlmon_profile_loaded_timestamp_seconds", m) == 1e6
    # one process: its counters started when it loaded the profile (the window cases' premise)
    assert get("mlmon_counters_start_timestamp_seconds", m) == 1e6
    assert get("mlmon_reference_rows", m) == 1000.0
    assert get("mlmon_feature_category_reference_share",
               {**m, "feature": "city", "category": "__other__"}) == 0.1
    assert get("mlmon_feature_category_reference_share",
               {**m, "feature": "city", "category": "__unseen__"}) == 0.0
    assert get("mlmon_feature_text_reference_oov_rate", {**m, "feature": "review"}) == 0.1
    assert get("mlmon_feature_reference_null_rate", {**m, "feature": "age"}) == 0.01
    assert get("mlmon_prediction_center", m) == 0.0
    assert get("process_cpu_seconds_total") is not None  # the process collector is included


def test_two_model_versions_share_one_registry():
    registry = CollectorRegistry()
    v3 = monitor_for(sample_profile_dict(), registry)
    data = copy.deepcopy(sample_profile_dict())
    data["model"]["version"] = "4"
    v4 = monitor_for(data, registry)
    v3.observe({"age": 30.0})
    v4.observe({"age": 30.0})
    v4.observe({"age": 30.0})
    get = registry.get_sample_value
    assert get("mlmon_observations_total", {"model": "churn", "model_version": "3"}) == 1.0
    assert get("mlmon_observations_total", {"model": "churn", "model_version": "4"}) == 2.0
    names = [f.name for f in text_string_to_metric_families(generate_latest(registry).decode())]
    assert len(names) == len(set(names))  # one family per name, both versions inside
    with pytest.raises(ValueError, match="already registered"):
        monitor_for(sample_profile_dict(), registry)
    v3.unregister()
    assert get("mlmon_observations_total", {"model": "churn", "model_version": "3"}) is None
