"""End to end on the local stack (`make stack`): healthy traffic stays silent, drift notifies.

One run of stack/local.py (real Prometheus and Alertmanager from the Debian packages, the real
Elasticsearch 8.14, the demo services, their traffic generators, the sink) with the committed
configuration, only faster: 1 s scrape and evaluation, short grouping, and `for: 10s` on the data
alerts (stack/fast_rules.py). The same run checks every PromQL expression of every dashboard,
and the classifier demo's estimated accuracy panels and records.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlmon.demo.model import RISK_MODEL_NAME
from stack.fast_rules import write_fast_config
from stack.local import SERVERS, Settings, down, up
from tests.conftest import missing_server
from tests.integration.es_server import es_server, es_url, free_port  # noqa: F401 (fixtures)
from tests.integration.prom_servers import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEALTHY_S = 45.0  # long enough for min_samples (100) at RATE in every window
DRIFT_S = 150.0   # an upper bound: the test stops the stack as soon as it has what it needs
RATE = 20.0
INDEX = "mlmon-predictions-diabetes"
RISK_INDEX = "mlmon-predictions-diabetes-risk"  # the classifier demo's data stream


# Generous: on a loaded 2-core machine a range query over every dashboard series can take seconds.
def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (loopback)
        return json.load(answer)


def _wait_for(check: Any, timeout_s: float, what: str) -> Any:
    return wait_until(check, timeout_s, what, interval_s=1.0)


def _phase_start(run_dir: Path, phase: str) -> float | None:
    log = run_dir / "traffic.log"
    found = re.search(rf"phase {phase} at ([0-9.]+)", log.read_text()) if log.exists() else None
    return float(found.group(1)) if found else None


def _firing(sink_url: str) -> list[dict[str, Any]]:
    return [alert for payload in _get_json(sink_url + "/notifications")
            for alert in payload["alerts"] if alert["status"] == "firing"]


def _starts_at(alert: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp()


def _es_count(es: str, query: str, index: str = INDEX) -> int:
    qs = urllib.parse.urlencode({"q": query})
    return int(_get_json(f"{es}/{index}/_count?{qs}")["count"])


def _prometheus_has_data(prom: str, expr: str, start: float, end: float) -> bool:
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "2"})
    return bool(_get_json(f"{prom}/api/v1/query_range?{qs}")["data"]["result"])


def _dashboard_expressions() -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO / "grafana"))
    import generate
    from panels import expressions

    # The demo's labels arrive about a minute after their answers and the outcome groups run
    # every 5 minutes, past this run: the Model performance dashboard is checked where labels
    # arrive sooner, tests/integration/test_demo_labels.py (the demo's own labels) and
    # tests/integration/test_prometheus_outcomes.py.
    return [(path.name, expr) for path in generate.sources()
            if path.name != "model-performance.dashboard.py"
            for expr in expressions(json.loads(generate.target(path).read_text()))]


def _estimated_expressions() -> list[str]:
    """The Model performance dashboard's expressions that need no label: the estimated
    accuracy (champion and challenger) and the baseline accuracy beside it."""
    sys.path.insert(0, str(REPO / "grafana"))
    from panels import expressions

    path = REPO / "grafana" / "dashboards" / "model-performance.json"
    return [expr for expr in expressions(json.loads(path.read_text()))
            if ("mlmon_estimated" in expr or 'metric="accuracy"' in expr)
            and "outcome" not in expr]


def _substitute(expr: str, feature: str, model: str = "diabetes") -> str:
    """Grafana's variables and macros as a user would have them on the demo."""
    for name, value in (("$model_version", ".*"), ("$model", model),
                        ("$feature", feature), ("$__rate_interval", "30s"),
                        ("$__range", "5m"), ("$__interval", "2s")):
        expr = expr.replace(name, value)
    return expr


@pytest.fixture
def stack(es_url: str, tmp_path: Path):  # noqa: F811 (es_url is a fixture)
    for binary in SERVERS:
        if shutil.which(binary) is None:
            missing_server(binary)
    run_dir = tmp_path / "stack"
    run_dir.mkdir()
    ports = {"demo": free_port(), "sink": free_port(), "prometheus": free_port(),
             "alertmanager": free_port(), "elasticsearch": int(es_url.rsplit(":", 1)[1]),
             "pushgateway": free_port(), "node-exporter": free_port(), "demo-risk": free_port()}
    settings = Settings(
        run_dir=run_dir, ports=ports, es_url=es_url,
        rules_config=write_fast_config(tmp_path / "rules-config.yaml", "10s"),
        scrape_interval="1s", evaluation_interval="1s", group_wait="1s", group_interval="5s",
        healthy_s=HEALTHY_S, drift_s=DRIFT_S, rate=RATE)
    up(settings)
    try:
        yield settings
    finally:
        down(settings)


def test_healthy_period_is_silent_and_drift_notifies(stack: Settings,
                                                     es_url: str) -> None:  # noqa: F811
    started = time.time()
    sink, prom, run_dir = stack.url("sink"), stack.url("prometheus"), stack.run_dir

    drift_at = _wait_for(lambda: _phase_start(run_dir, "drift"), HEALTHY_S + 30, "the drift")
    # The healthy period had enough samples for the drift alerts to be judged at all...
    samples = _get_json(f"{prom}/api/v1/query?query="
                        + urllib.parse.quote("min(model_feature:mlmon_feature_samples:increase1h)"))
    assert float(samples["data"]["result"][0]["value"][1]) >= 100

    drift = _wait_for(
        lambda: [a for a in _firing(sink) if a["labels"]["alertname"] == "MlmonFeatureDrift"
                 and a["labels"].get("feature") == "bmi"
                 and a["labels"]["model"] == "diabetes"],  # the classifier drifts too
        120, "MlmonFeatureDrift for bmi at the sink")
    assert drift[0]["labels"]["severity"] == "warning"
    # ...and yet nothing fired before the drift started: every firing alert began after it.
    early = [(a["labels"]["alertname"], a["startsAt"]) for a in _firing(sink)
             if _starts_at(a) < drift_at]
    assert early == []
    names = {a["labels"]["alertname"] for a in _firing(sink)}
    assert {"MlmonFeatureDrift"} <= names

    # The input records reached Elasticsearch: clean while healthy, flagged once drifted.
    urllib.request.urlopen(urllib.request.Request(f"{es_url}/{INDEX}/_refresh", method="POST"),
                           timeout=30).close()
    drift_ms = int(drift_at * 1000)
    # This run's healthy period only: the session's Elasticsearch also holds the records of
    # other tests' demos (tests/integration/test_demo_labels.py drifts the same model).
    healthy_at = _phase_start(run_dir, "healthy")
    assert healthy_at is not None
    healthy_period = f"@timestamp:[{int(healthy_at * 1000)} TO {drift_ms}}}"
    healthy = _es_count(es_url, healthy_period)
    assert healthy >= HEALTHY_S * RATE * 0.5
    assert _es_count(es_url, f"{healthy_period} AND _exists_:flagged") == 0
    assert _es_count(es_url, f"@timestamp:>={drift_ms} AND flagged:bp") > 0
    assert _es_count(es_url, f"@timestamp:>={drift_ms} AND flagged:channel") > 0
    # The classifier's records, the champion's and the challenger's, with class and scores.
    urllib.request.urlopen(urllib.request.Request(f"{es_url}/{RISK_INDEX}/_refresh",
                                                  method="POST"), timeout=30).close()
    for role in ("champion", "challenger"):
        assert _es_count(es_url, f"model.role:{role} AND prediction.label:high AND "
                                 "prediction.scores.high:>0.5", RISK_INDEX) > 0

    # Every PromQL expression of every dashboard returns data in this run.
    end = time.time()
    empty = [(name, expr) for name, expr in _dashboard_expressions()
             if not any(_prometheus_has_data(prom, _substitute(expr, feature), started, end)
                        for feature in ("bmi", "clinic", "note"))]
    assert empty == []

    # The classifier demo beside it: the Model performance dashboard's estimated accuracy of the
    # champion and the challenger, and the baseline beside them, before any label.
    estimated = _estimated_expressions()
    assert len(estimated) >= 5
    empty = [expr for expr in estimated if not _prometheus_has_data(
        prom, _substitute(expr, "bmi", RISK_MODEL_NAME), started, end)]
    assert empty == []
    versions = _get_json(f"{prom}/api/v1/query?query=" + urllib.parse.quote(
        f'model:mlmon_estimated_accuracy:5m{{model="{RISK_MODEL_NAME}"}}'))["data"]["result"]
    assert {r["metric"]["model_version"] for r in versions} == {"1", "2"}
