"""Inhibition in the committed alertmanager.yml, on a real Alertmanager 0.25.

Alerts are posted through the v2 API (as Prometheus does); the test reads which ones Alertmanager
marks inhibited (`status.inhibitedBy` in `/api/v2/alerts`) and which reach the webhook sink.
Sources are posted first and must have been notified before the targets are posted, so the
inhibitor has seen them: Alertmanager's inhibitor reads new alerts on its own goroutine.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from mlmon.alerting import amconfig
from mlmon.alerting.sink import Sink
from tests.integration import prom_servers
from tests.integration.prom_servers import Server

alertmanager_factory = prom_servers.alertmanager_factory
notification_sink = prom_servers.notification_sink

pytestmark = pytest.mark.integration


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": name}}


# Ops incidents and a wrong deploy, on model churn version 3 and 2 and model fraud version 1.
SOURCES = [
    _alert("MlmonLatencySLOBreach", "critical", model="churn", model_version="3"),
    _alert("MlmonHighErrorRatio", "critical", model="churn", model_version="3"),
    _alert("MlmonThroughputZero", "critical", model="fraud", model_version="1"),
    _alert("MlmonUnexpectedModelVersion", "critical", model="churn", model_version="2"),
]
# target alert -> the source alertname expected to inhibit it (None: must be notified).
TARGETS: list[tuple[dict[str, Any], str | None]] = [
    # Ops incidents never hide drift or data quality (the old blanket rule hid these).
    (_alert("MlmonFeatureDrift", "warning", model="churn", model_version="3", feature="bmi"),
     None),
    (_alert("MlmonPredictionDrift", "warning", model="churn", model_version="3"), None),
    (_alert("MlmonFeatureMissing", "warning", model="churn", model_version="3", feature="bp"),
     None),
    (_alert("MlmonFeatureDrift", "warning", model="fraud", model_version="1", feature="amount"),
     None),
    # No traffic explains the thin window of that model version only.
    (_alert("MlmonNotEnoughData", "warning", model="fraud", model_version="1"),
     "MlmonThroughputZero"),
    (_alert("MlmonNotEnoughData", "warning", model="fraud", model_version="2"), None),
    # The unexpected version explains "several versions live" (per model, no model_version).
    (_alert("MlmonMultipleModelVersions", "warning", model="churn"),
     "MlmonUnexpectedModelVersion"),
    (_alert("MlmonMultipleModelVersions", "warning", model="fraud"), None),
    (_alert("MlmonModelStale", "warning", model="churn", model_version="2"),
     "MlmonUnexpectedModelVersion"),
    (_alert("MlmonModelStale", "warning", model="churn", model_version="3"), None),
]
# Posted last: an exporter down (no model label) explains a thin window of any model.
EXPORTER_DOWN = _alert("MlmonExporterDown", "critical", job="mlmon", instance="demo:8000")
AFTER_EXPORTER_DOWN: list[tuple[dict[str, Any], str | None]] = [
    (_alert("MlmonNotEnoughData", "warning", model="churn", model_version="3"),
     "MlmonExporterDown"),
    (_alert("MlmonUnseenCategoriesRising", "warning", model="churn", model_version="3",
            feature="channel"), None),
]


def _post(am: Server, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(f"{am.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (loopback)
        assert answer.status == 200


def _alerts(am: Server) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts", timeout=5) as answer:  # noqa: S310
        return json.load(answer)


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "severity"))


def _notified(sink: Sink) -> set[tuple[tuple[str, str], ...]]:
    return {_key(alert["labels"]) for payload in sink.notifications()
            for alert in payload["alerts"] if alert["status"] == "firing"}


def _wait_notified(sink: Sink, keys: set[tuple[tuple[str, str], ...]], what: str,
                   timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while missing := keys - _notified(sink):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not reach the sink: {sorted(missing)}")
        time.sleep(0.2)


def _post_and_settle(am: Server, sink: Sink, sources: list[dict[str, Any]],
                     targets: list[tuple[dict[str, Any], str | None]]) -> None:
    """Post `sources`, wait until they are notified, post the targets, wait for the ones that
    must get through, then one more group_interval (1 s in the test config) and a margin."""
    _post(am, sources)
    _wait_notified(sink, {_key(a["labels"]) for a in sources}, "source alerts")
    _post(am, [alert for alert, _ in targets])
    expected = {_key(alert["labels"]) for alert, source in targets if source is None}
    _wait_notified(sink, expected, "uninhibited targets")
    time.sleep(2.0)  # an inhibited alert would have been flushed by now (group_wait 0s)


def _check(am: Server, sink: Sink, targets: list[tuple[dict[str, Any], str | None]]) -> None:
    state = {_key(a["labels"]): a for a in _alerts(am)}
    fingerprint_name = {a["fingerprint"]: a["labels"]["alertname"] for a in state.values()}
    notified = _notified(sink)
    for alert, source in targets:
        key = _key(alert["labels"])
        inhibited_by = [fingerprint_name[f] for f in state[key]["status"]["inhibitedBy"]]
        if source is None:
            assert inhibited_by == [], f"{key} is inhibited by {inhibited_by}"
            assert key in notified, f"{key} did not reach the sink"
        else:
            assert inhibited_by == [source], f"{key}: inhibited by {inhibited_by}, not {source}"
            assert state[key]["status"]["state"] == "suppressed"
            assert key not in notified, f"{key} reached the sink although inhibited"


def test_each_inhibition_hides_only_its_target(
        alertmanager_factory: Callable[..., Server], notification_sink: Sink) -> None:
    am = alertmanager_factory(webhook_url=notification_sink.url + "/alerts")
    _post_and_settle(am, notification_sink, SOURCES, TARGETS)
    _check(am, notification_sink, TARGETS)
    for source in SOURCES:  # no source hides another source
        assert _key(source["labels"]) in _notified(notification_sink)

    _post_and_settle(am, notification_sink, [EXPORTER_DOWN], AFTER_EXPORTER_DOWN)
    _check(am, notification_sink, AFTER_EXPORTER_DOWN)


def test_every_inhibition_rule_is_exercised_here() -> None:
    """A rule added to amconfig.INHIBITIONS without a case above fails here."""
    cases = {(source, alert["labels"]["alertname"])
             for alert, source in TARGETS + AFTER_EXPORTER_DOWN if source}
    assert cases == {(source, target) for source, target, _equal in amconfig.INHIBITIONS}


def test_drift_and_quality_alerts_are_never_inhibited() -> None:
    targets = {target for _source, target, _equal in amconfig.INHIBITIONS}
    never = {"MlmonFeatureDrift", "MlmonPredictionDrift", "MlmonFeatureMissing",
             "MlmonUnseenCategoriesRising", "MlmonInvalidValuesRising", "MlmonTextOOVRising"}
    assert not targets & never
