"""The demo feeds its own delayed labels: real demo service, Elasticsearch, Pushgateway, Prometheus.

The stack's shape, shortened: `mlmon demo` (champion and challenger in shadow mode) ships its
records to a real Elasticsearch; `mlmon traffic --labels-out --label-delay-s` drives it (healthy,
then drifted) and writes each answer's truth with its arrival; `mlmon demo-labels` feeds what
has arrived with `mlmon outcomes` to Elasticsearch and the Pushgateway; Prometheus scrapes the
Pushgateway and the demo and evaluates the committed rules (only the outcome groups' own
5-minute interval dropped, so they run at the test's 1 s). Proven: every label reaches both
versions' records, no earlier than its delay; the realized MAE Prometheus records for each
version equals the mean absolute error written onto that version's records (within 1e-9).
"""

from __future__ import annotations

import subprocess
import sys
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

prometheus_factory = prom_servers.prometheus_factory
pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INDEX = "mlmon-predictions-diabetes"
DELAY_S = 2.0  # labels arrive 1 to 3 s after their answer
HEALTHY_S, DRIFT_S, RATE = 3.0, 2.0, 20.0


def _mlmon(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlmon.cli", *args]


def _outcomes(es: Elasticsearch, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Record id -> its outcome object, for the records of `ids` that have one."""
    es.indices.refresh(index=INDEX)
    found = es.search(index=INDEX, query={"ids": {"values": ids}}, size=len(ids),
                      source=["outcome", "model"])["hits"]["hits"]
    return {hit["_id"]: hit["_source"]["outcome"] for hit in found
            if "outcome" in hit["_source"]}


def test_the_demo_feeds_delayed_labels_to_both_versions(
        tmp_path: Path, es_url: str, pushgateway_factory, prometheus_factory,  # noqa: F811
) -> None:
    profile = tmp_path / "profile.json"
    for command in (_mlmon("demo", "--write-profile", str(profile)),
                    _mlmon("es-setup", "--profile", str(profile), "--es-url", es_url)):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    port = free_port()
    demo = start_python_server(["-m", "mlmon.cli", "demo", "--port", str(port), "--es-url",
                                es_url, "--spool-dir", str(tmp_path / "spool")],
                               tmp_path, "demo", port, timeout=90)
    gateway = pushgateway_factory()
    prom = prometheus_factory(targets={
        "pushgateway": [gateway.url.removeprefix("http://")],
        "mlmon": [demo.url.removeprefix("http://")]})
    labels, state = tmp_path / "labels.csv", tmp_path / "feed"
    feeder = subprocess.Popen(
        _mlmon("demo-labels", "--labels", str(labels), "--state-dir", str(state),
               "--es-url", es_url, "--pushgateway", gateway.url, "--every-s", "1"),
        cwd=REPO, stdout=open(tmp_path / "feeder.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT)
    try:
        traffic = subprocess.run(
            _mlmon("traffic", "--url", demo.url, "--rate", str(RATE), "--healthy-s",
                   str(HEALTHY_S), "--drift-s", str(DRIFT_S), "--labels-out", str(labels),
                   "--label-delay-s", str(DELAY_S)),
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert traffic.returncode == 0, traffic.stderr
        assert "drift_ok=" in traffic.stderr  # both phases were answered
        # Every label fed: the job's cursor reached the end of the file.
        wait_until(lambda: (state / CURSOR_FILE).exists() and int(
            (state / CURSOR_FILE).read_text()) == labels.stat().st_size, 60,
            "the labelling job's cursor at the end of the labels file", interval_s=0.5)
    finally:
        feeder.terminate()
        feeder.wait(timeout=30)
        demo.stop()
    log = (tmp_path / "feeder.log").read_text()
    assert "error" not in log.lower(), log
    assert f"job={N.OUTCOMES_PUSH_JOB}" in log  # the summary lines of `mlmon outcomes`

    rows = pd.read_csv(labels, dtype={"request_id": str})
    assert len(rows) >= (HEALTHY_S + DRIFT_S) * RATE * 0.5
    es = Elasticsearch(es_url)
    champion_ids = [stable_id(r)[0] for r in rows["request_id"]]
    champion = _outcomes(es, champion_ids)
    assert sorted(champion) == sorted(champion_ids)  # every label, on its record, once
    challenger = _outcomes(es, [role_record_id(i, N.CHALLENGER_ROLE) for i in champion_ids])
    assert len(challenger) >= 0.8 * len(rows)  # the challenger may shed requests under load
    # The truth arrived no earlier than its delay allows (arrival >= answer + DELAY_S / 2).
    assert min(o["delay_s"] for o in champion.values()) >= DELAY_S / 2

    def mae(outcomes: dict[str, dict[str, Any]]) -> float:
        return sum(o["absolute_error"] for o in outcomes.values()) / len(outcomes)

    prom.settled('model:mlmon_outcome_mae:1h{model="diabetes"}', "model_version",
                 {"1": mae(champion), "2": mae(challenger)}, timeout=60)
