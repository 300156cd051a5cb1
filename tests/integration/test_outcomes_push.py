"""A run's group on a real Pushgateway: replaced by its own pushes, old runs' groups pruned."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, push_to_gateway

from mlmon.names import OUTCOMES_PUSH_JOB as JOB
from mlmon.outcomes.push import PushError, RunGroup
from tests.integration import prom_servers

pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration


def _groups(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    with urllib.request.urlopen(url + "/api/v1/metrics", timeout=5) as response:  # noqa: S310
        data = json.load(response)["data"]
    return {(g["labels"]["job"], g["labels"].get("instance", "")): g for g in data}


def _registry(value: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("mlmon_test_labels", "labels", registry=registry).inc(value)
    return registry


def test_each_run_has_its_own_group_and_old_ones_are_pruned(pushgateway_factory: Any) -> None:
    gateway = pushgateway_factory()
    old = RunGroup(gateway.url, _registry(5), "run-old")
    old.push()
    old.registry = _registry(7)
    old.push()  # a PUT replaces the run's own group
    odd = "run/with spaces"  # any instance value survives the URL (base64 path segments)
    RunGroup(gateway.url, _registry(1), odd).push()
    push_to_gateway(gateway.url.removeprefix("http://"), job="other_job",
                    registry=_registry(2), grouping_key={"instance": "run-old"})
    groups = _groups(gateway.url)
    assert set(groups) == {(JOB, "run-old"), (JOB, odd), ("other_job", "run-old")}
    value = groups[(JOB, "run-old")]["mlmon_test_labels_total"]["metrics"][0]["value"]
    assert float(value) == 7

    later = RunGroup(gateway.url, _registry(3), "run-new", clock=lambda: time.time() + 3600)
    later.push()
    assert later.prune(older_than_s=7200) == []  # nothing that old yet
    assert sorted(later.prune(older_than_s=1800)) == sorted(["run-old", odd])
    # its own group, and other jobs' groups, stay
    assert set(_groups(gateway.url)) == {(JOB, "run-new"), ("other_job", "run-old")}


def test_two_model_versions_push_as_one_group(pushgateway_factory: Any) -> None:
    """Each version's OutcomeMonitor exports its own families; the push merges them (the
    Pushgateway refuses a family declared twice)."""
    from mlmon.exporter.outcome_monitor import OutcomeMonitor
    from mlmon.exporter.profile import Profile
    from tests.profiles import sample_profile_dict

    gateway = pushgateway_factory()
    registry = CollectorRegistry()
    for version, (predicted, actual) in (("3", ("yes", "no")), ("4", ("no", "no"))):
        data = sample_profile_dict(classification=True)
        data["model"]["version"] = version
        OutcomeMonitor(Profile.from_dict(data), registry).observe_outcome(predicted, actual)
    RunGroup(gateway.url, registry, "two-versions").push()
    group = _groups(gateway.url)[(JOB, "two-versions")]
    counted = {(m["labels"]["model_version"], m["labels"]["predicted_class"],
                m["labels"]["actual_class"]): float(m["value"])
               for m in group["mlmon_outcome_class_total"]["metrics"] if float(m["value"])}
    assert counted == {("3", "yes", "no"): 1.0, ("4", "no", "no"): 1.0}


def test_an_unreachable_gateway_is_one_line() -> None:
    group = RunGroup("127.0.0.1:9", _registry(1), "r", timeout=2)
    with pytest.raises(PushError, match=r"^cannot reach the Pushgateway http://127\.0\.0\.1:9 "
                       r"to push job=mlmon_outcomes instance=r: .*refused \(3 attempts\)$"):
        group.push()
