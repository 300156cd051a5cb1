"""The demo feeds its own delayed labels: real demo service, Elasticsearch, Pushgateway, Prometheus.

The stack's shape, shortened: `mlmon demo` (champion and challenger in shadow mode) ships its
records to a real Elasticsearch; `mlmon traffic --labels-out --label-delay-s` drives it (healthy,
then drifted) and writes each answer's truth with its arrival; `mlmon demo-labels` feeds what
has arrived with `mlmon outcomes` to Elasticsearch and the Pushgateway; Prometheus scrapes the
Pushgateway and the demo and evaluates the committed rules (only the outcome groups' own
5-minute interval dropped, so they run at the test's 1 s). Proven: every label reaches both
versions' records (the challenger's where it has one), no earlier than its delay, each counted
once; the realized MAE Prometheus records for each version equals the mean absolute error
written onto that version's records (within 1e-9); and every panel of the Model performance
dashboard that a regression model has (MAE, RMSE, bias, labels and their delay, rejections,
the challenger's MAE gap) shows data.

The same for the classifier demo (`--model risk` on the demo, its traffic and its labelling
job): the truth is each request's class, and the realized accuracy Prometheus records for each
version equals the share of that version's records whose predicted class is the label the
traffic wrote for the request (within 1e-9); every classifier panel (realized accuracy,
precision and recall, class counts, the estimated accuracy beside them, both gaps) shows data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from elasticsearch import Elasticsearch

import mlmon.names as N
from mlmon.demo.cli import PROGRESSION, RISK
from mlmon.demo.labels import CURSOR_FILE
from mlmon.log_shipper.record import role_record_id, stable_id
from tests.integration import prom_servers
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.integration.prom_servers import free_port, start_python_server, wait_until
from tests.integration.test_e2e_stack import _substitute as as_on_the_demo

prometheus_factory = prom_servers.prometheus_factory
pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INDEX = {PROGRESSION: "mlmon-predictions-diabetes", RISK: "mlmon-predictions-diabetes-risk"}
DELAY_S = 2.0  # labels arrive 1 to 3 s after their answer
HEALTHY_S, DRIFT_S, RATE = 3.0, 2.0, 20.0
# The panels of one kind of model only: a classifier's (accuracy, per-class precision and
# recall, class counts, all that is estimated from scores) stay empty for the regression, a
# regression's for the classifier.
ONLY = {PROGRESSION: re.compile(r"accuracy|_class|precision|recall|estimated"),
        RISK: re.compile(r"mae|rmse|bias")}


def _mlmon(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlmon.cli", *args]


def _records(es: Elasticsearch, index: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Record id -> its source (`outcome` and `prediction`), for the records of `ids` that have
    an outcome."""
    es.indices.refresh(index=index)
    found = es.search(index=index, query={"ids": {"values": ids}}, size=len(ids),
                      source=["outcome", "prediction"])["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in found if "outcome" in hit["_source"]}


def _label_panels(model: str, name: str) -> list[str]:
    """The Model performance dashboard's expressions over the outcome and estimated series
    that a `model` (demo/cli.py's PROGRESSION, RISK) has, for the model `name`."""
    sys.path.insert(0, str(REPO / "grafana"))
    import generate
    from panels import expressions

    (source,) = [p for p in generate.sources() if p.name == "model-performance.dashboard.py"]
    found = expressions(json.loads(generate.target(source).read_text(encoding="utf-8")))
    return [as_on_the_demo(e, "bmi", name) for e in found
            if re.search("mlmon_(outcome|estimated)_", e) and not ONLY[model].search(e)]


def _counted(log: str, part: str) -> int:
    """The labels the runs' summary lines say were counted: `part` "labels" for the champion's
    records, "challenger records" for the challenger's."""
    return sum(int(n.replace(",", "")) for n in re.findall(rf"{part}: ([0-9,]+) counted", log))


@contextmanager
def _demo(tmp_path: Path, es: str, pushgateway_factory: Any, prometheus_factory: Any,
          model: str) -> Iterator[tuple[str, str, Any]]:
    """The demo serving `model` (champion and challenger) shipping to Elasticsearch, a
    Pushgateway, and a Prometheus scraping both: (demo URL, Pushgateway URL, Prometheus)."""
    from mlmon.cli import main

    profile = tmp_path / "profile.json"
    assert main(["demo", "--model", model, "--write-profile", str(profile)]) == 0
    assert main(["es-setup", "--profile", str(profile), "--es-url", es]) == 0
    port = free_port()
    with ThreadPoolExecutor(1) as starting:  # the demo trains and imports meanwhile
        demo_started = starting.submit(
            start_python_server, ["-m", "mlmon.cli", "demo", "--model", model, "--port",
                                  str(port), "--es-url", es, "--spool-dir",
                                  str(tmp_path / "spool")],
            tmp_path, "demo", port, timeout=90)
        gateway = pushgateway_factory()
        prom = prometheus_factory(targets={"pushgateway": [gateway.url.removeprefix("http://")],
                                           "mlmon": [f"127.0.0.1:{port}"]})
        demo = demo_started.result()
    try:  # the demo runs to the end: the challenger panels read its role info
        yield demo.url, gateway.url, prom
    finally:
        demo.stop()


def test_the_demo_feeds_delayed_labels_to_both_versions(
        tmp_path: Path, es_url: str, pushgateway_factory, prometheus_factory,  # noqa: F811
) -> None:
    with _demo(tmp_path, es_url, pushgateway_factory, prometheus_factory, PROGRESSION) as (
            demo, gateway, prom):
        labels, log, traffic = _feed(tmp_path, demo, es_url, gateway, PROGRESSION)
        champion, challenger = _check_fed(Elasticsearch(es_url), INDEX[PROGRESSION], labels,
                                          log, traffic)

        def mae(records: dict[str, dict[str, Any]]) -> float:
            return sum(r["outcome"]["absolute_error"] for r in records.values()) / len(records)

        prom.settled('model:mlmon_outcome_mae:1h{model="diabetes"}', "model_version",
                     {"1": mae(champion), "2": mae(challenger)}, timeout=60)
        panels = _label_panels(PROGRESSION, "diabetes")
        assert any("mae_challenger_gap" in e for e in panels)
        assert any("label_delay" in e for e in panels)
        assert [e for e in panels if not prom.query(e)] == []


def test_the_classifier_demo_feeds_its_classes_to_both_versions(
        tmp_path: Path, es_url: str, pushgateway_factory, prometheus_factory,  # noqa: F811
) -> None:
    from mlmon.demo.model import RISK_CLASSES, RISK_MODEL_NAME

    with _demo(tmp_path, es_url, pushgateway_factory, prometheus_factory, RISK) as (
            demo, gateway, prom):
        labels, log, traffic = _feed(tmp_path, demo, es_url, gateway, RISK)
        champion, challenger = _check_fed(Elasticsearch(es_url), INDEX[RISK], labels, log,
                                          traffic)
        truth = pd.read_csv(labels, dtype={"request_id": str, "target": str})
        assert set(truth["target"]) <= set(RISK_CLASSES)  # the classes, not the progression
        # record id -> its request's label, for the champion's record and the challenger's
        by_id = {role_record_id(stable_id(request)[0], role): label
                 for request, label in zip(truth["request_id"], truth["target"], strict=True)
                 for role in (None, N.CHALLENGER_ROLE)}

        def accuracy(records: dict[str, dict[str, Any]]) -> float:
            """The share of records whose predicted class is the request's label."""
            right = [r["prediction"]["label"] == by_id[i] for i, r in records.items()]
            assert right == [r["outcome"]["correct"] for r in records.values()]
            return sum(right) / len(right)

        expected = {"1": accuracy(champion), "2": accuracy(challenger)}
        prom.settled(f'model:mlmon_outcome_accuracy:1h{{model="{RISK_MODEL_NAME}"}}',
                     "model_version", expected, timeout=60)
        panels = _label_panels(RISK, RISK_MODEL_NAME)
        assert any("mlmon_outcome_accuracy:" in e for e in panels)
        assert any("mlmon_estimated_accuracy:" in e for e in panels)
        assert any("accuracy_challenger_gap" in e for e in panels)
        assert [e for e in panels if not prom.query(e)] == []


def _feed(tmp_path: Path, demo: str, es: str, gateway: str,
          model: str) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    """The traffic with its labels, and the labelling job until it fed them all."""
    labels, state = tmp_path / "labels.csv", tmp_path / "feed"
    feeder = subprocess.Popen(
        _mlmon("demo-labels", "--model", model, "--labels", str(labels), "--state-dir",
               str(state), "--es-url", es, "--pushgateway", gateway, "--every-s", "1"),
        cwd=REPO, stdout=open(tmp_path / "feeder.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT)
    try:
        traffic = subprocess.run(
            _mlmon("traffic", "--url", demo, "--model", model, "--rate", str(RATE),
                   "--healthy-s", str(HEALTHY_S), "--drift-s", str(DRIFT_S),
                   "--labels-out", str(labels), "--label-delay-s", str(DELAY_S)),
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert traffic.returncode == 0, traffic.stderr
        # Every label fed: the job's cursor reached the end of the file.
        wait_until(lambda: (state / CURSOR_FILE).exists() and int(
            (state / CURSOR_FILE).read_text()) == labels.stat().st_size, 60,
            "the labelling job's cursor at the end of the labels file", interval_s=0.5)
    finally:
        feeder.terminate()
        feeder.wait(timeout=30)
    return labels, (tmp_path / "feeder.log").read_text(), traffic


def _check_fed(es: Elasticsearch, index: str, labels: Path, log: str,
               traffic: subprocess.CompletedProcess[str],
               ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every label fed, once, onto both versions' records: the champion's records and the
    challenger's that took one (record id -> source)."""
    assert "error" not in log.lower(), log
    assert f"job={N.OUTCOMES_PUSH_JOB}" in log  # the summary lines of `mlmon outcomes`

    # One label per answered request, in both phases (the traffic's `done healthy_ok=..`).
    answered = {k: int(v) for k, v in re.findall(r"(\w+)_ok=(\d+)", traffic.stderr)}
    assert answered.keys() == {"healthy", "drift"}
    rows = pd.read_csv(labels, dtype={"request_id": str})
    assert len(rows) == sum(answered.values())
    champion_ids = [stable_id(r)[0] for r in rows["request_id"]]
    champion = _records(es, index, champion_ids)
    assert sorted(champion) == sorted(champion_ids)  # every label, on its record
    assert _counted(log, "labels") == len(rows)  # and counted once
    # The challenger's records: each outcome written is one counted (a record that reached
    # Elasticsearch after its label is `without one` in the summary, as the CLI documents).
    challenger = _records(es, index, [role_record_id(i, N.CHALLENGER_ROLE)
                                      for i in champion_ids])
    assert challenger and _counted(log, "challenger records") == len(challenger)
    # The truth arrived no earlier than its delay allows (arrival >= answer + DELAY_S / 2).
    assert min(r["outcome"]["delay_s"] for r in champion.values()) >= DELAY_S / 2
    return champion, challenger
