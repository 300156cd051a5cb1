"""Realized performance computed by the real Prometheus equals scikit-learn's and numpy's.

Three replica processes of a model observe known rows through `ModelMonitor` and count most of
their labels in the process (`observe_outcome`, as a service that learns the truth itself); the
rest are counted by an `OutcomeMonitor` pushed to a real Pushgateway as one run (one group with
its own counters-start timestamp, as the `mlmon outcomes` CLI does). Prometheus (1 s scrape and
evaluation, every `for:` set to 0s) evaluates the rules generated from alerting/config.yaml
with only the outcome windows shortened (SHORT, MID, LONG for 1h, 1d, 7d) and restart_grace 3s;
Alertmanager routes the alerts to the webhook sink.

Classifier under concept drift: the inputs come from the reference distribution, but the labels
of one segment (x2 > 0) are flipped. Accuracy and per-class precision and recall over the
pooled (prediction, label) pairs equal scikit-learn's within 1e-9; no drift alert reaches the
sink (the drift statistics exist and are small), MlmonPerformanceBelowBaseline does; once no
label has arrived for the SHORT window, MlmonLabelsStopped does. Regression without concept
drift: MAE, RMSE and bias equal numpy's within 1e-9, and the performance alert stays silent.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry, push_to_gateway
from sklearn.metrics import accuracy_score, precision_score, recall_score

import mlmon.names as N
from mlmon.alerting import config as rules_config
from mlmon.alerting.config import OUTCOME_ALERTS
from mlmon.alerting.sink import Sink
from mlmon.exporter import OutcomeMonitor
from mlmon.exporter.profile import Profile
from mlmon.profiling import profile_data
from tests.integration import prom_servers
from tests.integration.prom_servers import Prometheus, Server, generated_rules, start_replica

prometheus_factory = prom_servers.prometheus_factory  # the fixtures, by name, for pytest
alertmanager_factory = prom_servers.alertmanager_factory
pushgateway_factory = prom_servers.pushgateway_factory
notification_sink = prom_servers.notification_sink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SHORT, MID, LONG = "30s", "2m", "10m"  # for the outcome windows 1h, 1d, 7d
GRACE = "3s"  # restart_grace: at least twice the 1 s scrape interval
REPLICAS = 3
ROWS = 800  # per replica
PUSHED_SHARE = 0.2  # the last 20% of each replica's rows are labelled by the pushed run
CLASSES = ("ham", "spam")
DRIFT_ALERTS = ("MlmonFeatureDrift", "MlmonPredictionDrift")
PERFORMANCE = "MlmonPerformanceBelowBaseline"


def _short_windows(data: dict[str, Any]) -> None:
    """alerting/config.yaml with outcome windows of seconds; MlmonLabelsStopped watches the
    shortest, so it fires SHORT after the last label."""
    renamed = dict(zip(data["outcome_windows"], (SHORT, MID, LONG), strict=True))
    data["outcome_windows"], data["restart_grace"] = [SHORT, MID, LONG], GRACE
    data["outcome_evaluation_interval"] = "1s"
    for name in OUTCOME_ALERTS:
        section = data["alerts"][name]
        for key in ("window", "lookback"):
            if key in section:
                section[key] = renamed[section[key]]
    data["alerts"]["MlmonLabelsStopped"]["window"] = SHORT


def _classifier(rng: np.random.Generator, n: int, concept_drift: bool) -> pd.DataFrame:
    x1, x2 = rng.normal(0, 1, n).round(4), rng.normal(0, 1, n).round(4)
    truth = np.where(x1 + rng.normal(0, 0.5, n) > 0, "spam", "ham")
    if concept_drift:  # the world changed for one segment; the inputs did not
        truth = np.where(x2 > 0, np.where(truth == "spam", "ham", "spam"), truth)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": truth,
                         "pred": np.where(x1 > 0, "spam", "ham")})


def _regression(rng: np.random.Generator, n: int) -> pd.DataFrame:
    x1, x2 = rng.normal(0, 1, n).round(4), rng.normal(0, 1, n).round(4)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (2 * x1 + rng.normal(0, 0.5, n)).round(4),
                         "pred": (2 * x1).round(4)})


def _rows(frame: pd.DataFrame, labelled: int, now: float,
          rng: np.random.Generator) -> list[dict[str, Any]]:
    """Replica rows; the first `labelled` carry their label (predicted 1 s to 2 h earlier)."""
    out = []
    for i, record in enumerate(frame.to_dict("records")):
        row: dict[str, Any] = {"features": {"x1": record["x1"], "x2": record["x2"]},
                               "prediction": record["pred"], "latency_s": 0.01}
        if i < labelled:
            row["outcome"] = {"actual": record["y"],
                              "predicted_at": now - float(rng.uniform(1, 7200))}
        out.append(row)
    return out


def _notified(sink: Sink, name: str) -> list[dict[str, Any]]:
    return [a for p in sink.notifications() for a in p.get("alerts", [])
            if a["labels"].get("alertname") == name and a.get("status") == "firing"]


def _wait_notified(sink: Sink, name: str, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (alerts := _notified(sink, name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} notification within {timeout}s")
        time.sleep(0.5)
    return alerts


def _run(tmp_path: Path, factories: dict[str, Any], model: str, live: list[pd.DataFrame],
         reference: pd.DataFrame, sink: Sink) -> dict[str, Any]:
    """Replicas observe `live` (one frame each), a pushed run labels the rest; returns once the
    LONG window holds every label."""
    rng = np.random.default_rng(3)
    profile = profile_data(reference, prediction_column="pred", target_column="y",
                           model_name=model, model_version="1", bins=8)
    profile_path = tmp_path / f"{model}.json"
    tmp_path.mkdir(parents=True, exist_ok=True)
    profile.dump(profile_path)
    labelled = int(ROWS * (1 - PUSHED_SHARE))
    now = started = time.time()
    replicas: list[Server] = []
    go = tmp_path / "go"
    try:
        for i, frame in enumerate(live):
            replicas.append(start_replica(tmp_path, profile_path,
                                          _rows(frame, labelled, now, rng), f"{model}{i}", go))
        gateway = factories["pushgateway"]()
        rules = generated_rules(tmp_path / "rules", _short_windows)
        am = factories["alertmanager"](webhook_url=sink.url + "/alerts")
        prom: Prometheus = factories["prometheus"](
            targets={"mlmon": [r.url.removeprefix("http://") for r in replicas],
                     "pushgateway": [gateway.url.removeprefix("http://")]},
            alertmanager=am, rule_files=rules)
        prom.wait_for('count(up{job="mlmon"} == 1)', lambda r: bool(r) and
                      int(float(r[0]["value"][1])) == len(replicas), timeout=30)
        go.touch()  # the second half of the rows and their labels arrive after a scrape
        # The labelling job: one run pushed as its own group (job mlmon_outcomes, instance = the
        # run id), counting the labels the replicas did not.
        registry = CollectorRegistry()
        run = OutcomeMonitor(Profile.load(profile_path), registry)
        rest = pd.concat([frame.iloc[labelled:] for frame in live], ignore_index=True)
        run.observe_outcomes(list(rest["pred"]), list(rest["y"]),
                             predicted_at=[now - 60.0] * len(rest))
        push_to_gateway(gateway.url.removeprefix("http://"), job="mlmon_outcomes",
                        registry=registry, grouping_key={"instance": "run-1"})
        total = REPLICAS * ROWS
        prom.wait_for(f'{N.OUTCOME_LABELLED.at(LONG)}{{model="{model}"}} == {total}',
                      timeout=60)
        for w in ("5m", "1h"):  # the drift statistics have seen every row too
            prom.wait_for(f'{N.PREDICTION_SAMPLES.at(w)}{{model="{model}"}} == {total}',
                          timeout=60)
        return {"prom": prom, "profile": profile, "rules": rules[0], "started": started,
                "pooled": pd.concat(live, ignore_index=True), "replicas": replicas}
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise


# The outcome rules only a classifier's counts, or only a regression model's, feed.
CLASSIFIER_ONLY = ("outcome_class", "accuracy", "precision", "recall")
# (a classifier has no allowed prediction range: out_of_range is a regression model's)
REGRESSION_ONLY = ("outcome_error", "absolute_error", "squared_error", "mae", "rmse", "bias",
                   "out_of_range")
# The estimated panels need scores, which this classifier has none of: they are checked by
# tests/integration/test_prometheus_estimation.py.
NEED_SCORES = ("mlmon_estimat",)


def _outcome_rules_without_data(prom: Prometheus, rules: Path, model: str,
                                other_kind: tuple[str, ...]) -> list[str]:
    """The outcome recording rules of the LONG window (all but the other kind of model's) with no
    series for `model` (the shorter windows empty as the test goes on)."""
    groups = yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]
    names = [r["record"] for g in groups if g["name"] == f"mlmon.outcomes.{LONG}"
             for r in g["rules"]]
    assert names
    return [name for name in names if not any(part in name for part in other_kind)
            and not prom.query(f'{name}{{model="{model}"}}')]


DASHBOARD = REPO / "grafana" / "dashboards" / "model-performance.json"


def _dashboard_without_data(prom: Prometheus, model: str, since: float,
                            other_kind: tuple[str, ...]) -> list[str]:
    """The Model performance dashboard's expressions (but the other kind of model's) that had no
    data for `model` since `since`, with its outcome windows renamed to the test's."""
    sys.path.insert(0, str(REPO / "grafana"))
    from panels import expressions

    windows = rules_config.load().outcome_windows
    renamed = dict(zip(windows, (SHORT, MID, LONG), strict=True))
    pattern = re.compile(rf"(mlmon_outcome_\w*:\w*?)({'|'.join(windows)})\b")
    empty = []
    for expr in expressions(json.loads(DASHBOARD.read_text(encoding="utf-8"))):
        # no challenger runs here (no role series): test_challenger.py checks its panels
        if any(part in expr for part in (*other_kind, "challenger", "role_info")):
            continue
        query = pattern.sub(lambda m: m[1] + renamed[m[2]], expr)
        query = query.replace("$model_version", ".*").replace("$model", model)
        query = query.replace("$__rate_interval", "30s")  # Grafana's own variable
        if not prom.query_range(query, since, time.time(), step=1.0):
            empty.append(expr)
    return empty


def _stop(run: dict[str, Any]) -> None:
    for replica in run["replicas"]:
        replica.stop()


def _rule_durations(prom: Prometheus) -> dict[str, float]:
    """The median over the last minute of prometheus_rule_group_last_duration_seconds of every
    mlmon group (Prometheus scrapes itself every second), by group name: the outcome groups'
    cost beside the drift groups'."""
    found = prom.wait_for('quantile_over_time(0.5, prometheus_rule_group_last_duration_seconds'
                          '{rule_group=~".*mlmon.*"}[1m])', timeout=30)
    return {r["metric"]["rule_group"].rsplit(";", 1)[-1]: float(r["value"][1]) for r in found}


def test_classifier_realized_metrics_match_sklearn_and_concept_drift_alerts(
        tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any,
        pushgateway_factory: Any, notification_sink: Sink) -> None:
    rng = np.random.default_rng(17)
    reference = _classifier(rng, 4000, concept_drift=False)
    live = [_classifier(rng, ROWS, concept_drift=True) for _ in range(REPLICAS)]
    run = _run(tmp_path, {"prometheus": prometheus_factory, "alertmanager": alertmanager_factory,
                          "pushgateway": pushgateway_factory}, "spam", live, reference,
               notification_sink)
    try:
        prom: Prometheus = run["prom"]
        pooled = run["pooled"]
        truth, predicted = list(pooled["y"]), list(pooled["pred"])
        # settled: a rule reading another group's output can be one evaluation behind it
        accuracy = prom.settled(f'{N.OUTCOME_ACCURACY.at(LONG)}{{model="spam"}}', "model",
                                {"spam": float(accuracy_score(truth, predicted))})
        for rule, metric in ((N.OUTCOME_PRECISION, precision_score),
                             (N.OUTCOME_RECALL, recall_score)):
            want = metric(truth, predicted, labels=list(CLASSES), average=None)
            prom.settled(f'{rule.at(LONG)}{{model="spam"}}', "class",
                         {cls: float(v) for cls, v in zip(CLASSES, want, strict=True)})
        assert _outcome_rules_without_data(prom, run["rules"], "spam", REGRESSION_ONLY) == []
        delay = prom.values(f'{N.OUTCOME_LABEL_DELAY_MEDIAN.at(LONG)}{{model="spam"}}', "model")
        assert 1 <= delay["spam"] <= 7200 + 60, delay
        # Concept drift: the labels say the model got worse, its inputs and outputs do not.
        baseline = run["profile"].baseline_metrics["accuracy"]
        assert accuracy["spam"] < baseline - 0.2, (accuracy, baseline)
        alerts = _wait_notified(notification_sink, PERFORMANCE, timeout=60)
        assert {(a["labels"]["model"], a["labels"]["metric"]) for a in alerts} == {
            ("spam", "accuracy")}
        psi = prom.values(f'{N.FEATURE_PSI.at("1h")}{{model="spam"}}', "feature")
        assert set(psi) == {"x1", "x2"} and max(psi.values()) < 0.05, psi
        prediction_psi = prom.values(f'{N.PREDICTION_PSI.at("1h")}{{model="spam"}}', "model")
        assert prediction_psi["spam"] < 0.05, prediction_psi
        # No label for SHORT: the feed stopped (and the performance alert had its chance).
        stopped = _wait_notified(notification_sink, "MlmonLabelsStopped", timeout=90)
        assert {a["labels"]["model"] for a in stopped} == {"spam"}
        for name in DRIFT_ALERTS:
            assert _notified(notification_sink, name) == [], name
        assert prom.query(f'ALERTS{{alertname=~"{"|".join(DRIFT_ALERTS)}"}}') == []
        assert _dashboard_without_data(prom, "spam", run["started"],
                                       REGRESSION_ONLY + NEED_SCORES) == []
        durations = _rule_durations(prom)
        print("rule groups, last evaluation (s):", durations)
        assert {f"mlmon.outcomes.{w}" for w in (SHORT, MID, LONG)} <= set(durations)
    finally:
        _stop(run)


def test_regression_realized_metrics_match_numpy_and_no_alert_without_drift(
        tmp_path: Path, prometheus_factory: Any, alertmanager_factory: Any,
        pushgateway_factory: Any, notification_sink: Sink) -> None:
    rng = np.random.default_rng(23)
    reference = _regression(rng, 4000)
    live = [_regression(rng, ROWS) for _ in range(REPLICAS)]
    run = _run(tmp_path, {"prometheus": prometheus_factory, "alertmanager": alertmanager_factory,
                          "pushgateway": pushgateway_factory}, "price", live, reference,
               notification_sink)
    try:
        prom: Prometheus = run["prom"]
        pooled = run["pooled"]
        errors = pooled["pred"].to_numpy() - pooled["y"].to_numpy()
        for rule, want in ((N.OUTCOME_MAE, np.mean(np.abs(errors))),
                           (N.OUTCOME_RMSE, np.sqrt(np.mean(errors ** 2))),
                           (N.OUTCOME_BIAS, np.mean(errors))):
            # settled: a rule reading another group's output can be one evaluation behind it
            prom.settled(f'{rule.at(LONG)}{{model="price"}}', "model", {"price": float(want)})
        assert _outcome_rules_without_data(prom, run["rules"], "price", CLASSIFIER_ONLY) == []
        # Realized MAE is about the baseline: the performance rule has its inputs and is quiet.
        # (MID holds every label too: the same MAE, once its group has run on them)
        mae = float(np.mean(np.abs(errors)))
        prom.settled(f'{N.OUTCOME_MAE.at(MID)}{{model="price"}}', "model", {"price": mae})
        assert mae < 1.1 * run["profile"].baseline_metrics["mae"]
        # The alerts on outcomes are evaluated and routed (labels stop after SHORT), while the
        # MID window still holds every label: the performance alert has had its inputs.
        _wait_notified(notification_sink, "MlmonLabelsStopped", timeout=90)
        assert prom.query(f'{N.OUTCOME_LABELLED.at(MID)}{{model="price"}} == {REPLICAS * ROWS}')
        assert _notified(notification_sink, PERFORMANCE) == []
        assert prom.query(f'ALERTS{{alertname="{PERFORMANCE}"}}') == []
        # (but the firing-alerts panel: only MlmonLabelsStopped fires here, briefly, and the
        # sink saw it; that panel is checked with data in the classifier test)
        assert _dashboard_without_data(prom, "price", run["started"],
                                       (*CLASSIFIER_ONLY, *NEED_SCORES, "ALERTS{")) == []
    finally:
        _stop(run)
