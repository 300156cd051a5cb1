"""Two profiles of one model version in one multiproc directory (a rolling deploy that
regenerated the profile): every series appears once, and counts are summed only where the
files share a layout."""

from __future__ import annotations

import copy
import os
from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.collector import MultiProcessCollector
from mlmon.exporter.multiprocess import meta_path
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}


def monitor_in(directory: str, data: dict[str, Any], written_at: float) -> ModelMonitor:
    monitor = ModelMonitor.from_profile(Profile.from_dict(data), CollectorRegistry(),
                                        multiproc_directory=directory)
    os.utime(meta_path(directory, monitor.layout.file_key), (written_at, written_at))
    return monitor


def metrics_only(directory: str) -> tuple[CollectorRegistry, Counter[Any]]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    keys = Counter((s.name, tuple(sorted(s.labels.items())))
                   for m in registry.collect() for s in m.samples)
    return registry, keys


def regenerated(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(sample_profile_dict())
    data["rows"] = 1200  # a new training set: another sha
    data["features"][0].update(changes)
    return data


@pytest.mark.parametrize("where", ["metrics_only", "old_worker", "new_worker"])
def test_same_layout_profiles_are_summed_once_with_the_newest_reference(tmp_path, where):
    directory = str(tmp_path)
    old = monitor_in(directory, sample_profile_dict(), written_at=1_000.0)
    new = monitor_in(directory, regenerated(bin_shares=[0.1, 0.2, 0.3, 0.4]), written_at=2_000.0)
    assert old.profile.sha != new.profile.sha
    for _ in range(3):
        old.observe({"age": 30.0, "city": "paris"}, 0.5)
    new.observe({"age": 60.0, "city": "rome"}, 2.0)
    registry, keys = metrics_only(directory)
    assert max(keys.values()) == 1  # no series twice
    if where != "metrics_only":  # a worker's own /metrics shows the same totals
        registry = (old if where == "old_worker" else new).registry
    get = registry.get_sample_value
    assert get("mlmon_observations_total", M) == 4.0
    assert get("mlmon_feature_value_bucket", {**M, "feature": "age", "le": "35.0"}) == 3.0
    assert get("mlmon_feature_category_total",
               {**M, "feature": "city", "category": "rome"}) == 1.0
    if where == "metrics_only":
        assert get("mlmon_model_info", {**M, "profile_sha": new.profile.sha}) == 1.0
        assert get("mlmon_model_info", {**M, "profile_sha": old.profile.sha}) is None
        assert get("mlmon_reference_rows", M) == 1200.0
        assert get("mlmon_feature_reference_bin_share",
                   {**M, "feature": "age", "le": "+Inf"}) == 0.4


def test_older_profile_with_other_bins_is_left_out(tmp_path):
    directory = str(tmp_path)
    old = monitor_in(directory, sample_profile_dict(), written_at=1_000.0)
    new = monitor_in(directory, regenerated(edges=[20.0, 40.0, 60.0]), written_at=2_000.0)
    old.observe({"age": 30.0}, 0.5)
    new.observe({"age": 30.0}, 0.5)
    new.observe({"age": 50.0}, 0.5)
    registry, keys = metrics_only(directory)
    assert max(keys.values()) == 1
    get = registry.get_sample_value
    assert get("mlmon_observations_total", M) == 2.0  # the new profile's files only
    assert get("mlmon_feature_value_bucket", {**M, "feature": "age", "le": "40.0"}) == 1.0
    assert get("mlmon_feature_value_bucket", {**M, "feature": "age", "le": "35.0"}) is None
    assert get("mlmon_model_info", {**M, "profile_sha": old.profile.sha}) is None
    # the old workers still see their own files
    assert old.registry.get_sample_value("mlmon_observations_total", M) == 1.0


def test_a_profile_opened_again_becomes_the_newest(tmp_path):
    """A rollback: the old profile's workers start again, so its files are the live ones."""
    directory = str(tmp_path)
    first = monitor_in(directory, sample_profile_dict(), written_at=1_000.0)
    monitor_in(directory, regenerated(edges=[20.0, 40.0, 60.0]), written_at=2_000.0)
    first.observe({"age": 30.0})
    first.unregister()
    again = ModelMonitor.from_profile(Profile.from_dict(sample_profile_dict()),
                                      CollectorRegistry(), multiproc_directory=directory)
    assert again.profile.sha == first.profile.sha
    registry, keys = metrics_only(directory)
    assert max(keys.values()) == 1
    assert registry.get_sample_value(
        "mlmon_model_info", {**M, "profile_sha": first.profile.sha}) == 1.0
    assert registry.get_sample_value("mlmon_observations_total", M) == 1.0
