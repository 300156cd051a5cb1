"""Drift computed by the real Prometheus from real exporter replicas equals exporter/drift.py.

Three replicas of model churn (regression) and one of model spam (classification: predicted
classes and score) observe known rows, Prometheus (1 s scrape and evaluation, `for:` set to 0s)
records the drift statistics, Alertmanager routes the alerts to the webhook sink. A control run
of the same length with undrifted data must send no drift alert.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlmon.names as N
from mlmon.alerting.sink import Sink
from mlmon.exporter import drift
from mlmon.exporter.profile import ClassificationPrediction, Profile
from mlmon.exporter.values import canonical_category
from mlmon.profiling import profile_data
from tests.integration import prom_servers
from tests.integration.prom_servers import RULE_FILES, Prometheus, Server, start_replica

# The fixtures, by name, for pytest.
prometheus_factory = prom_servers.prometheus_factory
alertmanager_factory = prom_servers.alertmanager_factory
notification_sink = prom_servers.notification_sink

pytestmark = pytest.mark.integration

REPLICAS = 3
ROWS_PER_REPLICA = 1500
SPAM_ROWS = 1000
CITIES = ["paris", "rome", "berlin", "madrid", "oslo"]
WORDS = ["good", "bad", "service", "the", "great", "slow", "fast", "app"]
DRIFT_ALERTS = ("MlmonFeatureDrift", "MlmonPredictionDrift")


def _churn(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    shift = 12.0 if drifted else 0.0
    city_p = [0.1, 0.1, 0.2, 0.3, 0.3] if drifted else [0.4, 0.3, 0.15, 0.1, 0.05]
    age = rng.normal(40 + shift, 10, n).round(2)
    return pd.DataFrame({
        "age": age,
        "income": rng.lognormal(7.5, 0.4, n).round(2),
        # drifted: other city shares, and 5% "lyon", never seen in training (__unseen__)
        "city": (np.where(rng.random(n) < 0.05, "lyon", rng.choice(CITIES, n, p=city_p))
                 if drifted else rng.choice(CITIES, n, p=city_p)),
        "review": [" ".join(rng.choice(WORDS, 4)) for _ in range(n)],
        "y": (0.02 * age + rng.normal(0, 0.2, n)).round(4),
    })


def _spam(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    length = rng.exponential(200 if drifted else 100, n).round(1)
    p_spam = np.clip(length / 400, 0.05, 0.95)
    label = np.where(rng.random(n) < p_spam, "spam", "ham")
    score = np.where(label == "spam", p_spam, 1 - p_spam).round(4)
    return pd.DataFrame({"length": length, "sender": rng.choice(["a", "b", "c"], n),
                         "label": label, "score": score})


def _rows(frame: pd.DataFrame, prediction: str, score: str | None) -> list[dict[str, Any]]:
    features = [c for c in frame.columns if c not in (prediction, score)]
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        rows.append({"features": {k: record[k] for k in features},
                     "prediction": record[prediction],
                     "scores": record[score] if score else None,
                     "latency_s": 0.01 + (i % 7) * 0.01, "ok": i % 50 != 0})
    return rows


def _expected_churn(profile: Profile, live: pd.DataFrame) -> dict[str, drift.Drift]:
    """exporter/drift.py on the pooled rows of all replicas."""
    out = {}
    for feature in profile.features:
        if feature.kind == "numeric":
            out[feature.name] = drift.numeric_drift(live[feature.name].to_numpy(),
                                                    feature.binned.edges,
                                                    feature.binned.bin_shares)
        elif feature.kind == "categorical":
            top, seen = set(feature.top_categories), set(feature.seen)
            counts: dict[str, float] = {}
            for value in live[feature.name]:
                cat = canonical_category(value)
                key = cat if cat in top else "__other__" if cat in seen else "__unseen__"
                counts[key] = counts.get(key, 0) + 1
            ref = dict(zip(feature.top_categories, feature.top_shares, strict=True))
            ref.update({"__other__": feature.other_share, "__unseen__": 0.0})
            out[feature.name] = drift.categorical_drift(counts, ref)
    pred = profile.prediction
    out["__prediction__"] = drift.numeric_drift(live["y"].to_numpy(), pred.binned.edges,
                                                pred.binned.bin_shares)
    return out


def _expected_spam(profile: Profile, live: pd.DataFrame) -> dict[str, drift.Drift]:
    """exporter/drift.py on the classifier's predicted classes and scores."""
    pred = profile.prediction
    assert isinstance(pred, ClassificationPrediction) and pred.score is not None
    ref = dict(zip(pred.classes, pred.class_shares, strict=True)) | {"__unseen__": 0.0}
    counts: dict[str, float] = {}
    for label in live["label"]:
        key = label if label in pred.classes else "__unseen__"
        counts[key] = counts.get(key, 0) + 1
    return {"class": drift.categorical_drift(counts, ref),
            "score": drift.numeric_drift(live["score"].to_numpy(), pred.score.edges,
                                         pred.score.bin_shares)}


def _run(tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any, sink: Sink,
         drifted: bool, seconds: float | None = None) -> dict[str, Any]:
    """Start replicas and servers; wait until the pooled statistics are recorded."""
    rng = np.random.default_rng(7)
    churn = profile_data(_churn(rng, 4000, False), model_name="churn", model_version="3",
                         prediction_column="y", text=["review"], bins=8,
                         trained_at="2026-01-01T00:00:00Z")
    spam = profile_data(_spam(rng, 4000, False), model_name="spam", model_version="1",
                        prediction_column="label", score_column="score", bins=5)
    tmp_path.mkdir(parents=True, exist_ok=True)
    churn_path, spam_path = tmp_path / "churn.json", tmp_path / "spam.json"
    churn.dump(churn_path)
    spam.dump(spam_path)
    live = [_churn(rng, ROWS_PER_REPLICA, drifted) for _ in range(REPLICAS)]
    replicas: list[Server] = []
    go = tmp_path / "go"
    started = time.monotonic()
    try:
        for i, frame in enumerate(live):
            replicas.append(start_replica(tmp_path, churn_path, _rows(frame, "y", None),
                                          f"churn{i}", go))
        spam_live = _spam(rng, SPAM_ROWS, drifted)
        replicas.append(start_replica(tmp_path, spam_path, _rows(spam_live, "label", "score"),
                                      "spam", go))
        am = alertmanager_factory(webhook_url=sink.url + "/alerts")
        prom: Prometheus = prometheus_factory(
            targets={"mlmon": [r.url.removeprefix("http://") for r in replicas]},
            alertmanager=am)
        # Half the rows before the first scrape, half after: counters move inside the window.
        prom.wait_for('count(up{job="mlmon"} == 1)', lambda r: bool(r) and
                      int(float(r[0]["value"][1])) == len(replicas), timeout=30)
        go.touch()
        total = REPLICAS * ROWS_PER_REPLICA
        # Every group (features and predictions, both windows) has seen the last scrape.
        # (counters stop moving once every row is observed, so waiting in turn is enough)
        for w in ("5m", "1h"):
            for expr, n in (
                    (f'model_feature:mlmon_feature_samples:increase{w}{{feature="age"}}', total),
                    (f'model:mlmon_prediction_samples:increase{w}{{model="churn"}}', total),
                    (f'model:mlmon_prediction_samples:increase{w}{{model="spam"}}', SPAM_ROWS)):
                prom.wait_for(f"{expr} == {n}", timeout=60)
        result = {"prom": prom, "profile": churn, "pooled": pd.concat(live, ignore_index=True),
                  "spam_profile": spam, "spam_live": spam_live, "started": started}
        if drifted:
            _wait_alert(sink, "MlmonFeatureDrift", timeout=60)
        else:
            time.sleep(max(0.0, (seconds or 0) - (time.monotonic() - started)))
        result["elapsed"] = time.monotonic() - started
        result["every_rule"] = _rules_without_data(prom)
        return result
    finally:
        for replica in replicas:
            replica.stop()


def _drift_alerts(sink: Sink, name: str) -> list[dict[str, Any]]:
    return [a for p in sink.notifications() for a in p.get("alerts", [])
            if a["labels"].get("alertname") == name]


def _wait_alert(sink: Sink, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _drift_alerts(sink, name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} notification within {timeout}s")
        time.sleep(0.5)


# Groups that need labels joined to predictions, which these replicas never get: their rules are
# checked with labels by tests/integration/test_prometheus_outcomes.py.
NEED_LABELS = ("mlmon.outcomes.", "mlmon.alerts.performance",
               # reads the baseline accuracy, which needs a profile built with the target (the
               # estimated rules it reads are checked here: spam has scores)
               "mlmon.alerts.estimation")
# No challenger runs beside these replicas (tests/integration/test_challenger.py has one): its
# groups, and the role series the version alerts read only to leave challengers out.
NEED_CHALLENGER = ("mlmon.challenger", "mlmon.alerts.challenger")


def _rules_without_data(prom: Prometheus) -> list[str]:
    """Recording-rule expressions, and series named in alert expressions, that return nothing
    (but the batch jobs' and training runs' groups: no batch job or training run pushes here;
    test_batch_prometheus.py and test_training_runs.py have them)."""
    import yaml

    empty = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            if (group["name"].startswith((*NEED_LABELS, *NEED_CHALLENGER))
                    or "batch" in group["name"] or "training" in group["name"]):
                continue
            for rule in group["rules"]:
                if "record" in rule:
                    if not prom.query(rule["expr"]):
                        empty.append(f"{rule['record']}: {rule['expr'][:60]}")
                else:
                    for name in sorted(set(re.findall(r"[A-Za-z_:]*mlmon_[A-Za-z0-9_:]*",
                                                      rule["expr"]))):
                        if name != N.MODEL_ROLE_INFO.name and not prom.query(name):
                            empty.append(f"{rule['alert']} reads {name}")
    return empty


def _close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 1e-6 * max(abs(expected), 1e-12)


def test_pooled_drift_matches_numpy_and_alert_reaches_sink(
        tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any,
        notification_sink: Sink) -> None:
    run = _run(tmp_path / "drift", prometheus_factory, alertmanager_factory, notification_sink,
               drifted=True)
    prom: Prometheus = run["prom"]
    expected = _expected_churn(run["profile"], run["pooled"])
    spam = _expected_spam(run["spam_profile"], run["spam_live"])
    for window in ("5m", "1h"):
        for stat in ("psi", "ks", "js"):
            got = prom.values(f'model_feature:mlmon_feature_{stat}:{window}{{model="churn"}}',
                              "feature")
            assert set(got) == {"age", "income", "city"}
            for feature, value in got.items():
                want = getattr(expected[feature], stat)
                assert _close(value, want), (window, stat, feature, value, want)
            pred = prom.values(f"model:mlmon_prediction_{stat}:{window}", "model")
            assert _close(pred["churn"], getattr(expected["__prediction__"], stat)), (stat, pred)
        chi2 = prom.values(f'model_feature:mlmon_feature_chi2:{window}{{feature="city"}}',
                           "feature")
        assert _close(chi2["city"], expected["city"].chi2)
        # The classifier: predicted classes (PSI, total variation as KS, JS) and its score.
        for stat in ("psi", "ks", "js"):
            for series, key in ((f'model:mlmon_prediction_{stat}:{window}{{model="spam"}}',
                                 "class"),
                                (f'model:mlmon_prediction_score_{stat}:{window}'
                                 '{model="spam"}', "score")):
                got = prom.values(series, "model")
                want = getattr(spam[key], stat)
                assert set(got) == {"spam"} and _close(got["spam"], want), (series, got, want)
    alerts = _drift_alerts(notification_sink, "MlmonFeatureDrift")
    assert {(a["labels"]["model"], a["labels"]["feature"]) for a in alerts} >= {
        ("churn", "age"), ("churn", "city")}
    assert all(a["labels"]["severity"] == "warning" for a in alerts)
    assert run["every_rule"] == [], "\n".join(run["every_rule"])
    # Hand the run length to the control test (same module, runs after this one).
    _RUN_LENGTH.append(run["elapsed"])


_RUN_LENGTH: list[float] = []


def test_control_run_of_same_length_sends_no_drift_alert(
        tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any,
        notification_sink: Sink) -> None:
    seconds = _RUN_LENGTH[0] if _RUN_LENGTH else 20.0
    run = _run(tmp_path / "control", prometheus_factory, alertmanager_factory,
               notification_sink, drifted=False, seconds=seconds)
    prom: Prometheus = run["prom"]
    # The statistics exist (so silence is not for lack of data), and are small.
    psi = prom.values('model_feature:mlmon_feature_psi:1h{model="churn"}', "feature")
    assert set(psi) == {"age", "income", "city"} and max(psi.values()) < 0.05
    # Alertmanager itself works in this run: other alerts (e.g. throughput zero) get through.
    payloads = notification_sink.notifications()
    assert payloads, "no notification at all: the control run could not have seen a drift alert"
    for name in DRIFT_ALERTS:
        assert _drift_alerts(notification_sink, name) == []
    assert run["elapsed"] >= seconds
