"""Champion vs challenger end to end: real Prometheus over two replicas, real Elasticsearch.

Prometheus: two replicas of the demo service (tests/integration/challenger_replica.py), each
running the demo challenger in shadow mode on its own requests (one healthy, one drifted), then
scoring both models on the same labels. The committed rules pool the replicas; every number
is checked against numpy on the same rows: the agreement rate exactly (a ratio of counts), the
mean difference and the realized MAE / RMSE gaps within 1e-9.

Elasticsearch: both records of a request are indexed, under the same `trace.id`, each with its
role and version, and their `_id`s differ; `record_outcome()` of the request's label scores
both versions, each joined to its own record.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from prometheus_client import CollectorRegistry

import mlmon.names as N
from mlmon.demo.model import build_profile, to_frame, train, train_challenger
from mlmon.demo.scenario import drifted
from mlmon.exporter.challenger import DEFAULT_TOLERANCE_STD
from mlmon.log_shipper import es_assets
from mlmon.log_shipper.facade import PredictionLogger
from tests.integration.es_server import es_server, es_url
from tests.integration.prom_servers import (
    free_port,
    prometheus_factory,
    start_python_server,
)

__all__ = ["es_server", "es_url", "prometheus_factory"]  # fixtures, found by name

pytestmark = pytest.mark.integration

CHAMPION, CHALLENGER = train(), train_challenger()
PAIR = {"model": "diabetes", "model_version": "2", "champion_version": "1"}


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replica a: the reference rows as they are; replica b: the same rows drifted."""
    reference = CHAMPION.reference
    records = CHAMPION.records()
    actual = [float(y) for y in reference["target"]]
    rng = random.Random(5)
    healthy = [{"features": r, "actual": y} for r, y in zip(records, actual, strict=True)]
    drift = [{"features": drifted(r, rng), "actual": y}
             for r, y in zip(records, actual, strict=True)]
    return healthy[:200], drift[:200]


# The outcome rules and the gaps on them are evaluated every outcome_evaluation_interval (1m).
OUTCOME_WAIT_S = 150


def test_both_versions_scored_and_compared_over_replicas(prometheus_factory, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    parts = _rows()
    servers = []
    for name, rows in zip("ab", parts, strict=True):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rows), encoding="utf-8")
        port = free_port()
        servers.append(start_python_server(
            ["-m", "tests.integration.challenger_replica", "--rows", str(path),
             "--port", str(port)], tmp_path, f"replica-{name}", port, timeout=120))
        request.addfinalizer(servers[-1].stop)  # the replicas outlive a failed assertion
    prom = prometheus_factory(targets={"mlmon": [s.url.removeprefix("http://")
                                                 for s in servers]})
    prom.wait_for('count(up{job="mlmon"} == 1) == 2', timeout=30)

    rows = [row for part in parts for row in part]
    frame = to_frame([row["features"] for row in rows])
    champion, challenger = CHAMPION.predict(frame), CHALLENGER.predict(frame)
    actual = np.array([row["actual"] for row in rows])
    d = challenger - champion
    tolerance = DEFAULT_TOLERANCE_STD * float(np.std(CHAMPION.predict(CHAMPION.reference)))

    # both versions' own series, with their roles
    observed = prom.wait_for(f"sum by (model_version) ({N.OBSERVATIONS.sample})",
                             lambda r: len(r) == 2)
    assert {r["metric"]["model_version"]: float(r["value"][1]) for r in observed} == {
        "1": len(rows), "2": len(rows)}
    roles = prom.values(f"max by (model_version, role) ({N.MODEL_ROLE_INFO.name})", "role")
    assert roles == {"champion": 1.0, "challenger": 1.0}

    for w in ("5m", "1h"):
        # the counts are exact, so the agreement is too; settled, as the rules of one group
        # can run before the other replica's first scrape
        agreement = prom.settled(N.CHALLENGER_AGREEMENT.at(w), "model", {
            "diabetes": float(np.sum(np.abs(d) <= tolerance) / len(rows))}, tolerance=0.0,
            timeout=OUTCOME_WAIT_S)["diabetes"]
        assert 0.5 < agreement < 0.95  # the drifted half disagrees more (not a trivial 0 or 1)
        assert prom.query(f"{N.CHALLENGER_COMPARED_INCREASE.at(w)} == {len(rows)}")
        prom.settled(N.CHALLENGER_DIFFERENCE_MEAN.at(w), "model",
                     {"diabetes": float(np.mean(d))}, timeout=OUTCOME_WAIT_S)
    # realized performance of both from the same labels, and the gap between them
    mae = {version: float(np.mean(np.abs(p - actual)))
           for version, p in (("1", champion), ("2", challenger))}
    rmse = {version: float(np.sqrt(np.mean((p - actual) ** 2)))
            for version, p in (("1", champion), ("2", challenger))}
    prom.settled(N.OUTCOME_MAE.at("1h"), "model_version", mae, timeout=OUTCOME_WAIT_S)
    # the gap groups read the outcome groups' output, one evaluation behind at most
    prom.settled(N.challenger_gap(N.OUTCOME_MAE).at("1h"), "model_version",
                 {"2": mae["2"] - mae["1"]}, timeout=OUTCOME_WAIT_S)
    gap = prom.query(N.challenger_gap(N.OUTCOME_MAE).at("1h"))
    assert len(gap) == 1 and {k: gap[0]["metric"][k] for k in PAIR} == PAIR
    prom.settled(N.challenger_gap(N.OUTCOME_RMSE).at("1h"), "model_version",
                 {"2": rmse["2"] - rmse["1"]}, timeout=OUTCOME_WAIT_S)
    skipped = prom.values(f"sum by (reason) ({N.CHALLENGER_SKIPPED.sample})", "reason")
    assert set(skipped.values()) == {0.0}  # nothing shed: max_pending held every request

    # the Model performance dashboard's regression challenger panels show both versions
    for title, expr in _dashboard_queries(REGRESSION_PANELS):
        # the gap groups run every outcome interval, after the outcome rules they read
        result = prom.wait_for(expr, timeout=OUTCOME_WAIT_S)
        assert result, f"panel {title!r}: {expr} is empty"
        if "role" in expr:
            assert {r["metric"]["role"] for r in result} == {"champion", "challenger"}, title


REGRESSION_PANELS = ("Champion vs challenger: MAE", "Performance gap: challenger - champion",
                     "Agreement with the champion", "Regression: mean challenger - champion")


def _dashboard_queries(titles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(panel title, expression) of the named panels, with the dashboard's variables set as a
    user would on the demo; targets of another kind of model (accuracy) left out."""
    path = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
    data = json.loads((path / "model-performance.json").read_text(encoding="utf-8"))
    found = [(p["title"], t["expr"]) for p in data["panels"] if p["title"] in titles
             for t in p["targets"] if "accuracy" not in t["expr"]]
    assert {title for title, _ in found} == set(titles)
    return [(title, expr.replace("$model_version", ".*").replace("$model", "diabetes")
                           .replace("$__rate_interval", "30s"))
            for title, expr in found]


def test_both_records_reach_elasticsearch_under_one_request_id(es_url: str,
                                                               tmp_path: Path) -> None:
    profile = build_profile(CHAMPION)
    client = Elasticsearch(es_url)
    index = es_assets.install(client, profile).data_stream
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(profile, service_name="diabetes-api",
                                           environment="test", es_url=es_url,
                                           spool_dir=tmp_path / "spool", registry=registry,
                                           max_age_s=0.2, handle_signals=False,
                                           outcome_options={"retry_s": 0.2,
                                                            "unknown_grace_s": 10.0})
    logger.add_challenger(build_profile(CHALLENGER), CHALLENGER.predict_one)
    records = CHAMPION.records()[:20]
    actual = [float(y) for y in CHAMPION.reference["target"][:20]]
    ids = [logger.record(r, CHAMPION.predict_one(r), request_id=f"req-{i}")
           for i, r in enumerate(records)]
    assert ids == [f"req-{i}" for i in range(20)]
    # the label of each request scores both versions, each on its own record
    for request_id, y in zip(ids, actual, strict=True):
        assert logger.record_outcome(request_id, y)
    deadline = time.monotonic() + 90
    while logger._outcomes is None or logger._outcomes[1].joined < 40:
        assert time.monotonic() < deadline, "labels not joined in time"
        time.sleep(0.2)
    # a second label for a request: a duplicate on each version's record, each counted under
    # its own version
    assert logger.record_outcome(ids[0], actual[0])
    while logger._outcomes is None or logger._outcomes[1].joined < 42:
        assert time.monotonic() < deadline, "second label not joined in time"
        time.sleep(0.2)
    for version, model in (("1", CHAMPION), ("2", CHALLENGER)):
        at = {"model": "diabetes", "model_version": version}
        assert registry.get_sample_value("mlmon_outcome_error_count", at) == 20
        mae = float(np.sum(np.abs(model.predict(to_frame(records)) - np.array(actual))))
        assert registry.get_sample_value("mlmon_outcome_absolute_error_total", at) == \
            pytest.approx(mae, rel=1e-9)
        assert registry.get_sample_value("mlmon_outcome_rejected_total",
                                         {**at, "reason": "duplicate"}) == 1
    assert logger.close(timeout=60)
    deadline = time.monotonic() + 30
    while True:
        client.indices.refresh(index=index)
        if client.count(index=index)["count"] >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    hits = client.search(index=index, query={"term": {"trace.id": "req-7"}},
                         size=10)["hits"]["hits"]
    by_role = {h["_source"]["model"]["role"]: h for h in hits}
    assert set(by_role) == {"champion", "challenger"}
    assert by_role["champion"]["_id"] == "req-7"
    assert by_role["challenger"]["_id"] == "req-7.challenger"
    assert by_role["champion"]["_source"]["model"]["version"] == "1"
    assert by_role["challenger"]["_source"]["model"]["version"] == "2"
    assert by_role["challenger"]["_source"]["prediction"]["value"] == pytest.approx(
        CHALLENGER.predict_one(records[7]))
    for hit in hits:  # the label, written onto each version's record
        assert hit["_source"]["outcome"]["value"] == actual[7]
    roles = client.search(index=index, size=0, aggs={"r": {"terms": {"field": "model.role"}}})
    counts = {b["key"]: b["doc_count"] for b in roles["aggregations"]["r"]["buckets"]}
    assert counts == {"champion": 20, "challenger": 20}
