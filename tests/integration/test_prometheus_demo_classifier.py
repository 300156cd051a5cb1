"""The classifier demo as the stack runs it: `mlmon demo --model risk` (champion and challenger
in shadow mode) scraped by a real Prometheus with the committed rules (1 s scrape and
evaluation, `for:` 0s), before any label arrives.

The requests are the traffic generator's drift scenario (demo/scenario.py), sent over HTTP. Then:
- `model:mlmon_estimated_accuracy:5m` exists for the champion (version 1) and the challenger
  (version 2), each equal to what its calibrated scores expect on those requests, computed here
  with numpy (tests/estimation_data.py), within 1e-9;
- the baseline accuracy of both versions is beside it, and the estimate is below it by more than
  the estimated alert's drop; MlmonEstimatedPerformanceBelowBaseline still holds back, because
  these few requests are fewer than its `min_scored` (the stack's traffic sends that many within
  a minute; tests/integration/test_prometheus_estimation.py has the alert firing);
- the role info names the champion and the challenger (the dashboard's legend).

150 requests: on the shared 2-core test machine at load ~13, one request of this service took
~80 ms (champion, challenger and monitoring), so the test stays well under a minute.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest

import mlmon.names as N
from mlmon.alerting.config import load
from mlmon.demo.model import (
    RISK_MODEL_NAME,
    build_risk_profile,
    to_frame,
    train_risk,
    train_risk_challenger,
)
from mlmon.demo.scenario import DRIFT, next_record
from mlmon.demo.traffic import http_sender
from tests.estimation_data import calibrated_probabilities
from tests.integration.prom_servers import (
    Prometheus,
    free_port,
    prometheus_factory,  # noqa: F401 (fixture)
    start_python_server,
)

pytestmark = pytest.mark.integration

ALERT = "MlmonEstimatedPerformanceBelowBaseline"
SEL = f'{{model="{RISK_MODEL_NAME}"}}'


@pytest.fixture
def demo(tmp_path: Any) -> Any:
    port = free_port()
    # training and imports first: generous on a loaded machine
    server = start_python_server(["-m", "mlmon.cli", "demo", "--model", "risk",
                                  "--port", str(port)], tmp_path, "demo-risk", port, timeout=90)
    yield server
    server.stop()


def test_estimated_accuracy_of_champion_and_challenger_beside_the_baseline(
        demo: Any, prometheus_factory: Any) -> None:  # noqa: F811 (fixture)
    alert = load().alert(ALERT)
    rows = 150
    assert rows < alert["min_scored"]
    rng = random.Random(3)
    champion, challenger = train_risk(), train_risk_challenger()
    reference = champion.records()
    records = [next_record(reference, DRIFT, rng) for _ in range(rows)]
    prom: Prometheus = prometheus_factory(targets={"mlmon": [demo.url.removeprefix("http://")]})
    prom.wait_for('up{job="mlmon"} == 1', timeout=30)
    send = http_sender(demo.url, timeout_s=30)
    assert all(send(r) for r in records)

    frame = to_frame(records)
    expected, baselines = {}, {}
    for model in (champion, challenger):
        profile = build_risk_profile(model)
        proba = model.predict_proba(frame)
        expected[model.version] = float(calibrated_probabilities(
            profile, model.predict(frame), proba.max(axis=1)).mean())
        baselines[model.version] = profile.baseline_metrics["accuracy"]
    assert set(expected) == {"1", "2"}

    # every request counted, the challenger's too (it runs off the request path)
    prom.settled(f"{N.ESTIMATED_SAMPLES.at('5m')}{SEL}", "model_version",
                 {"1": rows, "2": rows}, tolerance=1e-6, timeout=40)
    estimated = prom.settled(f"{N.ESTIMATED_ACCURACY.at('5m')}{SEL}", "model_version",
                             expected, timeout=30)
    baseline = prom.values(f'max by (model_version) ({N.BASELINE.name}'
                           f'{{model="{RISK_MODEL_NAME}", metric="accuracy"}})', "model_version")
    assert baseline == pytest.approx(baselines, abs=1e-12)
    for version in ("1", "2"):
        assert estimated[version] < baseline[version] - alert["accuracy_drop"], (
            version, estimated, baseline)
    # settled means every rule group has evaluated the full counts: the alert would be pending
    # or firing by now (for: 0s) if it did not need min_scored predictions
    assert prom.query(f'ALERTS{{alertname="{ALERT}", model="{RISK_MODEL_NAME}"}}') == []
    roles = prom.values(f"{N.MODEL_ROLE_INFO.name}{SEL}", "role")
    assert set(roles) == {"champion", "challenger"}
    print(f"estimated {estimated}, baseline {baseline}", file=sys.stderr)
