"""A batch job through a real Pushgateway into a real Prometheus: the `:batch` statistics.

A service replica and a batch run of the same model (churn version 3) see the same rows; the
Prometheus of the repo's config (1 s scrapes, `for:` 0s) scrapes both, the Pushgateway with
honor_labels. Proves: every `:batch` drift statistic and critical value equals
exporter/drift.py and the online rules' value on the same rows within 1e-9; a second run
replaces the first (no accumulation); a failed run reaches the webhook sink through
Alertmanager as MlmonBatchJobFailed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlmon.names as N
from mlmon.alerting.sink import Sink
from mlmon.batch import BatchRun
from mlmon.exporter import drift
from mlmon.exporter.profile import Profile
from mlmon.profiling import profile_data
from tests.integration import prom_servers
from tests.integration.prom_servers import Prometheus, Server, start_replica
from tests.integration.test_prometheus_drift import _churn, _expected_churn, _rows

prometheus_factory = prom_servers.prometheus_factory
alertmanager_factory = prom_servers.alertmanager_factory
pushgateway_factory = prom_servers.pushgateway_factory
notification_sink = prom_servers.notification_sink

pytestmark = pytest.mark.integration

JOB = "nightly-scoring"
ROWS, SECOND_ROWS = 3000, 1200
FEATURES = ("age", "income", "city")
ALPHA = 0.01  # alerting/config.yaml, MlmonFeatureDrift / MlmonPredictionDrift
B = N.BATCH


def _values(prom: Prometheus, expr: str, key: str) -> dict[str, float]:
    return prom.values(expr, key)


def _batch(prom: Prometheus, rule: N.RuleName, key: str = "model",
           job: str = JOB) -> dict[str, float]:
    return _values(prom, f'{rule.at(B)}{{{N.BATCH_LABEL}="{job}"}}', key)


def _push(profile: Profile, frame: pd.DataFrame, url: str, fail: bool = False) -> BatchRun:
    features = [f.name for f in profile.features]
    run = BatchRun(profile, job=JOB, pushgateway=url, raise_on_push_error=True)
    try:
        with run:
            for start in range(0, len(frame), 1000):  # chunks, as a job reads a file
                part = frame.iloc[start:start + 1000]
                run.observe_batch(part[features], part["y"])
            if fail:
                raise RuntimeError("the model server went away")
    except RuntimeError:
        assert fail
    return run


def _criticals(profile: Profile, n: dict[str, int]) -> dict[str, float]:
    out = {}
    for feature in profile.features:
        if feature.name not in FEATURES:
            continue
        if feature.kind == "categorical":
            k = len(feature.top_categories) + 2  # top-K, __other__, __unseen__
            out[feature.name] = drift.tv_critical(n[feature.name], feature.count, ALPHA, k,
                                                  tests=len(FEATURES))
        else:
            out[feature.name] = drift.ks_critical(n[feature.name], feature.count, ALPHA,
                                                  tests=len(FEATURES))
    return out


def _within(actual: dict[str, float], expected: dict[str, float], what: str) -> None:
    assert set(actual) == set(expected), (what, actual, expected)
    for key, value in expected.items():
        assert abs(actual[key] - value) <= 1e-9, (what, key, actual[key], value)


def test_batch_statistics_equal_numpy_and_the_service_and_runs_replace_each_other(
        tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any,
        pushgateway_factory: Any, notification_sink: Sink) -> None:
    rng = np.random.default_rng(11)
    profile = profile_data(_churn(rng, 4000, False), model_name="churn", model_version="3",
                           prediction_column="y", text=["review"], bins=8)
    profile_path = tmp_path / "churn.json"
    profile.dump(profile_path)
    live = _churn(rng, ROWS, True)
    pgw: Server = pushgateway_factory()
    go = tmp_path / "go"
    replica = start_replica(tmp_path, profile_path, _rows(live, "y", None), "service", go)
    try:
        am = alertmanager_factory(webhook_url=notification_sink.url + "/alerts")
        prom: Prometheus = prometheus_factory(
            targets={"mlmon": [replica.url.removeprefix("http://")],
                     "pushgateway": [pgw.url.removeprefix("http://")]}, alertmanager=am)
        prom.wait_for('up{job="mlmon"} == 1', timeout=30)
        go.touch()  # the second half of the service's rows after its first scrape
        first = _push(profile, live, pgw.url)
        assert (first.outcome, first.rows, first.push_error) == ("success", ROWS, None)
        prom.wait_for(f"{N.OBSERVATIONS_INCREASE.at(B)} == {ROWS}", timeout=60)
        for w in ("5m", "1h"):
            prom.wait_for(f'{N.PREDICTION_SAMPLES.at(w)}{{model="churn"}} == {ROWS}', timeout=60)
        time.sleep(2)  # every group evaluated once more on the final counts

        expected = _expected_churn(profile, live)
        for stat, rule in N.FEATURE_STATS.items():
            want = {f: getattr(expected[f], stat) for f in FEATURES
                    if getattr(expected[f], stat) is not None}
            _within(_batch(prom, rule, "feature"), want, f"{stat} vs drift.py")
            # the service's statistics on the same rows, over both windows
            for w in ("5m", "1h"):
                _within(_batch(prom, rule, "feature"),
                        _values(prom, f'{rule.at(w)}{{model="churn"}}', "feature"),
                        f"{stat} vs the online {w}")
        pred = expected["__prediction__"]
        for rule, value in ((N.PREDICTION_PSI, pred.psi), (N.PREDICTION_KS, pred.ks),
                            (N.PREDICTION_JS, pred.js)):
            _within(_batch(prom, rule), {"churn": value}, f"{rule.metric} vs drift.py")
            _within(_batch(prom, rule), _values(prom, f'{rule.at("1h")}{{model="churn"}}',
                                                "model"), f"{rule.metric} vs the online 1h")
        n = {f: expected[f].n for f in FEATURES}
        _within(_batch(prom, N.FEATURE_KS_CRITICAL, "feature"), _criticals(profile, n),
                "critical values vs drift.py")
        _within(_batch(prom, N.FEATURE_KS_CRITICAL, "feature"),
                _values(prom, f'{N.FEATURE_KS_CRITICAL.at("1h")}{{model="churn"}}', "feature"),
                "critical values vs the online 1h")
        _within(_batch(prom, N.PREDICTION_KS_CRITICAL),
                {"churn": drift.ks_critical(pred.n, profile.rows, ALPHA)},
                "prediction critical value vs drift.py")
        # the online windows hold the service's rows alone, not the batch's as well
        assert _values(prom, f'{N.OBSERVATIONS_INCREASE.at("5m")}{{model="churn"}}',
                       "model") == {"churn": ROWS}

        # A second run replaces the first: its statistics are its own rows' alone.
        second = _churn(rng, SECOND_ROWS, False)
        _push(profile, second, pgw.url)
        prom.wait_for(f"{N.OBSERVATIONS_INCREASE.at(B)} == {SECOND_ROWS}", timeout=60)
        time.sleep(2)
        expected = _expected_churn(profile, second)
        _within(_batch(prom, N.FEATURE_PSI, "feature"),
                {f: expected[f].psi for f in FEATURES}, "second run's PSI vs drift.py")
        _within(_batch(prom, N.FEATURE_SAMPLES, "feature"),
                {f: float(expected[f].n) for f in FEATURES}, "second run's n")

        # A failed run: MlmonBatchJobFailed through Alertmanager to the sink.
        failed = _push(profile, second.iloc[:100], pgw.url, fail=True)
        assert failed.outcome == "failure" and failed.push_error is None
        alert = _wait_alert(notification_sink, "MlmonBatchJobFailed", timeout=60)
        assert {k: alert["labels"].get(k) for k in ("batch_job", "model", "model_version",
                                                    "severity")} == {
            "batch_job": JOB, "model": "churn", "model_version": "3", "severity": "critical"}
        assert alert["annotations"]["description"] == (
            f"The latest run of batch job {JOB} (model churn version 3) failed after scoring "
            "100 rows.")
        # the failure kept the last successful run's statistics
        assert _batch(prom, N.OBSERVATIONS_INCREASE) == {"churn": SECOND_ROWS}
    finally:
        replica.stop()


def _wait_alert(sink: Sink, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for payload in sink.notifications():
            for alert in payload.get("alerts", []):
                if alert["labels"].get("alertname") == name and alert["status"] == "firing":
                    return dict(alert)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} notification within {timeout}s")
        time.sleep(0.5)
