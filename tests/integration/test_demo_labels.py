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
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from elasticsearch import Elasticsearch

import mlmon.names as N
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
INDEX = "mlmon-predictions-diabetes"
DELAY_S = 2.0  # labels arrive 1 to 3 s after their answer
HEALTHY_S, DRIFT_S, RATE = 3.0, 2.0, 20.0
# The panels of a classifier (accuracy, per-class precision and recall, class counts): the demo
# model is a regression, so they stay empty, as the dashboard says.
CLASSIFIER_ONLY = re.compile(r"accuracy|_class|precision|recall")


def _mlmon(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlmon.cli", *args]


def _outcomes(es: Elasticsearch, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Record id -> its outcome object, for the records of `ids` that have one."""
    es.indices.refresh(index=INDEX)
    found = es.search(index=INDEX, query={"ids": {"values": ids}}, size=len(ids),
                      source=["outcome", "model"])["hits"]["hits"]
    return {hit["_id"]: hit["_source"]["outcome"] for hit in found
            if "outcome" in hit["_source"]}


def _label_panels() -> list[str]:
    """The Model performance dashboard's expressions over the outcome series, a regression's."""
    sys.path.insert(0, str(REPO / "grafana"))
    import generate
    from panels import expressions

    (source,) = [p for p in generate.sources() if p.name == "model-performance.dashboard.py"]
    found = expressions(json.loads(generate.target(source).read_text(encoding="utf-8")))
    return [as_on_the_demo(e, "bmi") for e in found
            if "mlmon_outcome_" in e and not CLASSIFIER_ONLY.search(e)]


def _counted(log: str, part: str) -> int:
    """The labels the runs' summary lines say were counted: `part` "labels" for the champion's
    records, "challenger records" for the challenger's."""
    return sum(int(n.replace(",", "")) for n in re.findall(rf"{part}: ([0-9,]+) counted", log))


def test_the_demo_feeds_delayed_labels_to_both_versions(
        tmp_path: Path, es_url: str, pushgateway_factory, prometheus_factory,  # noqa: F811
) -> None:
    from mlmon.cli import main
    from mlmon.demo.model import build_profile, train

    profile = tmp_path / "profile.json"
    build_profile(train()).dump(profile)
    assert main(["es-setup", "--profile", str(profile), "--es-url", es_url]) == 0
    port = free_port()
    with ThreadPoolExecutor(1) as starting:  # the demo trains and imports meanwhile
        demo_started = starting.submit(
            start_python_server, ["-m", "mlmon.cli", "demo", "--port", str(port), "--es-url",
                                  es_url, "--spool-dir", str(tmp_path / "spool")],
            tmp_path, "demo", port, timeout=90)
        gateway = pushgateway_factory()
        prom = prometheus_factory(targets={"pushgateway": [gateway.url.removeprefix("http://")],
                                           "mlmon": [f"127.0.0.1:{port}"]})
        demo = demo_started.result()
    try:  # the demo runs to the end: the challenger panels read its role info
        labels, log, traffic = _feed(tmp_path, demo.url, es_url, gateway.url)
        _check(prom, Elasticsearch(es_url), labels, log, traffic)
    finally:
        demo.stop()


def _feed(tmp_path: Path, demo: str, es: str,
          gateway: str) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    """The traffic with its labels, and the labelling job until it fed them all."""
    labels, state = tmp_path / "labels.csv", tmp_path / "feed"
    feeder = subprocess.Popen(
        _mlmon("demo-labels", "--labels", str(labels), "--state-dir", str(state),
               "--es-url", es, "--pushgateway", gateway, "--every-s", "1"),
        cwd=REPO, stdout=open(tmp_path / "feeder.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT)
    try:
        traffic = subprocess.run(
            _mlmon("traffic", "--url", demo, "--rate", str(RATE), "--healthy-s",
                   str(HEALTHY_S), "--drift-s", str(DRIFT_S), "--labels-out", str(labels),
                   "--label-delay-s", str(DELAY_S)),
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


def _check(prom: Any, es: Elasticsearch, labels: Path, log: str,
           traffic: subprocess.CompletedProcess[str]) -> None:
    assert "error" not in log.lower(), log
    assert f"job={N.OUTCOMES_PUSH_JOB}" in log  # the summary lines of `mlmon outcomes`

    # One label per answered request, in both phases (the traffic's `done healthy_ok=..`).
    answered = {k: int(v) for k, v in re.findall(r"(\w+)_ok=(\d+)", traffic.stderr)}
    assert answered.keys() == {"healthy", "drift"}
    rows = pd.read_csv(labels, dtype={"request_id": str})
    assert len(rows) == sum(answered.values())
    champion_ids = [stable_id(r)[0] for r in rows["request_id"]]
    champion = _outcomes(es, champion_ids)
    assert sorted(champion) == sorted(champion_ids)  # every label, on its record
    assert _counted(log, "labels") == len(rows)  # and counted once
    # The challenger's records: each outcome written is one counted (a record that reached
    # Elasticsearch after its label is `without one` in the summary, as the CLI documents).
    challenger = _outcomes(es, [role_record_id(i, N.CHALLENGER_ROLE) for i in champion_ids])
    assert challenger and _counted(log, "challenger records") == len(challenger)
    # The truth arrived no earlier than its delay allows (arrival >= answer + DELAY_S / 2).
    assert min(o["delay_s"] for o in champion.values()) >= DELAY_S / 2

    def mae(outcomes: dict[str, dict[str, Any]]) -> float:
        return sum(o["absolute_error"] for o in outcomes.values()) / len(outcomes)

    prom.settled('model:mlmon_outcome_mae:1h{model="diabetes"}', "model_version",
                 {"1": mae(champion), "2": mae(challenger)}, timeout=60)
    panels = _label_panels()
    assert any("mae_challenger_gap" in e for e in panels)
    assert any("label_delay" in e for e in panels)
    assert [e for e in panels if not prom.query(e)] == []
