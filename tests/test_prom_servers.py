"""tests/integration/prom_servers.py's Prometheus config: the committed prometheus.yml with only
what a test gives substituted, and no job left pointing at a stack hostname."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.prom_servers import PROMETHEUS_YML, prometheus_config


def _jobs(text: str) -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}


def test_jobs_a_test_did_not_ask_for_are_dropped() -> None:
    committed = _jobs(PROMETHEUS_YML.read_text())
    assert {"pushgateway", "node", "alertmanager", "mlmon"} <= set(committed)  # premise
    jobs = _jobs(prometheus_config({"mlmon": ["127.0.0.1:8001"]}, [Path("/r.yml")], None, "1s",
                                   "127.0.0.1:9090"))
    assert set(jobs) == {"prometheus", "mlmon"}
    assert jobs["mlmon"]["static_configs"] == [{"targets": ["127.0.0.1:8001"]}]


def test_a_pushgateway_given_keeps_the_committed_job_with_honor_labels() -> None:
    text = prometheus_config({"pushgateway": ["127.0.0.1:9091"]}, [], "127.0.0.1:9093", "1s",
                             "127.0.0.1:9090")
    jobs = _jobs(text)
    assert set(jobs) == {"prometheus", "alertmanager", "pushgateway"}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["127.0.0.1:9091"]}]
    assert jobs["alertmanager"]["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]
    assert "pushgateway:9091" not in text and "node-exporter" not in text
