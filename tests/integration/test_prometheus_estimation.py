"""Estimated performance through three real exporter replicas and a real Prometheus.

Two versions of one binary classifier (the same calibrated profile) serve three replicas each:
`covariate` sees inputs crowded near its decision boundary (covariate shift: it is unsure more
often, and really wrong more often), `concept` sees its usual inputs in a world that flipped
(concept drift). Every replica counts each prediction's expected confusion row and, at once,
its label (`observe_outcome`). Prometheus (1 s scrape and evaluation, `for:` 0s) pools them:

- the estimated accuracy, precision, recall and sample count equal a direct numpy computation
  of the same expectation on the pooled predictions, within 1e-9, over both drift windows;
- under covariate shift the estimate agrees with the realized accuracy within 3 binomial
  standard errors (+ the calibration allowance of tests/test_estimation.py), and its alert fires;
- under concept drift the realized accuracy collapses and its alert fires, while the estimate
  stays at the baseline and its alert does not: the estimate is blind to concept drift.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import numpy as np
import pytest

import mlmon.names as N
from mlmon.profiling import profile_data
from tests.estimation_data import (
    binary_traffic,
    binomial_standard_error,
    calibrated_probabilities,
    expected_confusion,
)
from tests.integration import prom_servers
from tests.integration.prom_servers import REPO, Prometheus, start_replica
from tests.test_estimation import CALIBRATION_ALLOWANCE

pytestmark = pytest.mark.integration

REPLICAS = 3
ROWS_PER_REPLICA = 1700
MODEL = "clf"
SCENARIOS = {"covariate": {"scale": 0.3}, "concept": {"concept_drift": True}}


def _rows(live: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [{"features": {"x": float(x)}, "prediction": str(y), "scores": float(s),
             "outcome": {"actual": str(a)}}
            for x, y, s, a in zip(live["x"], live["predicted"], live["score"], live["actual"],
                                  strict=True)]


def _pooled(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _firing(prom: Prometheus, alert: str) -> set[str]:
    return {r["metric"]["model_version"] for r in prom.query(
        f'ALERTS{{alertname="{alert}", alertstate="firing", model="{MODEL}"}}')}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("estimation")
    rng = np.random.default_rng(20)
    reference = binary_traffic(rng, 100_000)
    fitted = profile_data({"x": reference["x"]}, model_name=MODEL, model_version="covariate",
                          predictions=reference["predicted"], targets=reference["actual"],
                          scores=reference["score"])
    profiles, live, replicas = {}, {}, []
    try:
        for version, shift in SCENARIOS.items():
            profiles[version] = dataclasses.replace(fitted, model_version=version)
            path = tmp / f"{version}.json"
            profiles[version].dump(path)
            live[version] = [binary_traffic(rng, ROWS_PER_REPLICA, **shift)
                             for _ in range(REPLICAS)]
            replicas += [start_replica(tmp, path, _rows(part), f"{version}{i}")
                         for i, part in enumerate(live[version])]
        # started here, not by the per-test fixture: the three tests read one run
        prom = prom_servers.start_prometheus(
            tmp / "prometheus",
            targets={"mlmon": [r.url.removeprefix("http://") for r in replicas]})
        try:
            n = REPLICAS * ROWS_PER_REPLICA
            for version in SCENARIOS:
                sel = f'{{model="{MODEL}", model_version="{version}"}}'
                for expr in (N.ESTIMATED_SAMPLES.at("5m"), N.ESTIMATED_SAMPLES.at("1h"),
                             N.OUTCOME_LABELLED.at("1h")):
                    # fractional increments: the sum is n up to float rounding
                    prom.wait_for(f"abs({expr}{sel} - {n}) < 1e-6", timeout=60)
            # both alerts' groups have evaluated the full counts once these fire
            prom.wait_for('ALERTS{alertname="MlmonEstimatedPerformanceBelowBaseline", '
                          'alertstate="firing", model_version="covariate"}', timeout=60)
            prom.wait_for('ALERTS{alertname="MlmonPerformanceBelowBaseline", '
                          'alertstate="firing", model_version="concept"}', timeout=60)
            yield {"prom": prom, "profiles": profiles,
                   "live": {v: _pooled(parts) for v, parts in live.items()}}
        finally:
            prom.stop()
    finally:
        for replica in replicas:
            replica.stop()


@pytest.mark.parametrize("version", list(SCENARIOS))
def test_estimated_metrics_equal_numpy_on_the_pooled_predictions(run: Any, version: str) -> None:
    prom, profile, live = run["prom"], run["profiles"][version], run["live"][version]
    matrix = expected_confusion(profile, live["predicted"], live["score"])
    classes = list(profile.prediction.classes)
    sel = f'{{model="{MODEL}", model_version="{version}"}}'
    for w in ("5m", "1h"):
        accuracy = prom.values(N.ESTIMATED_ACCURACY.at(w) + sel, "model_version")[version]
        assert accuracy == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-9, rel=0)
        samples = prom.values(N.ESTIMATED_SAMPLES.at(w) + sel, "model_version")[version]
        assert samples == pytest.approx(matrix.sum(), abs=1e-9, rel=0)
        precision = prom.values(N.ESTIMATED_PRECISION.at(w) + sel, "class")
        recall = prom.values(N.ESTIMATED_RECALL.at(w) + sel, "class")
        assert set(precision) == set(recall) == set(classes)
        for i, cls in enumerate(classes):
            assert precision[cls] == pytest.approx(matrix[i, i] / matrix[i].sum(), abs=1e-9,
                                                   rel=0)
            assert recall[cls] == pytest.approx(matrix[i, i] / matrix[:, i].sum(), abs=1e-9,
                                                rel=0)
    info = prom.values(f"count by (calibrated) ({N.ESTIMATION_INFO.name}{sel})", "calibrated")
    assert info == {"true": float(REPLICAS)}


def test_under_covariate_shift_estimate_and_realized_accuracy_agree(run: Any) -> None:
    prom, profile, live = run["prom"], run["profiles"]["covariate"], run["live"]["covariate"]
    sel = f'{{model="{MODEL}", model_version="covariate"}}'
    estimated = prom.values(N.ESTIMATED_ACCURACY.at("1h") + sel, "model_version")["covariate"]
    realized = prom.values(N.OUTCOME_ACCURACY.at("1h") + sel, "model_version")["covariate"]
    assert realized == pytest.approx(np.mean(live["predicted"] == live["actual"]), abs=1e-9)
    se = binomial_standard_error(
        calibrated_probabilities(profile, live["predicted"], live["score"]))
    assert abs(estimated - realized) <= 3 * se + CALIBRATION_ALLOWANCE, (estimated, realized, se)
    baseline = profile.baseline_metrics["accuracy"]
    assert estimated < baseline - 0.1  # the shift costs accuracy, and the estimate shows it
    assert "covariate" in _firing(prom, "MlmonEstimatedPerformanceBelowBaseline")


def test_under_concept_drift_the_estimate_is_blind(run: Any) -> None:
    prom, profile = run["prom"], run["profiles"]["concept"]
    sel = f'{{model="{MODEL}", model_version="concept"}}'
    estimated = prom.values(N.ESTIMATED_ACCURACY.at("1h") + sel, "model_version")["concept"]
    realized = prom.values(N.OUTCOME_ACCURACY.at("1h") + sel, "model_version")["concept"]
    baseline = profile.baseline_metrics["accuracy"]
    assert abs(estimated - baseline) < 0.03  # as confident as on the reference
    assert realized < estimated - 0.4  # ... and wrong most of the time
    assert "concept" in _firing(prom, "MlmonPerformanceBelowBaseline")
    assert "concept" not in _firing(prom, "MlmonEstimatedPerformanceBelowBaseline")


def test_the_dashboards_estimated_panels_have_data(run: Any) -> None:
    """Every expression of the Model performance dashboard that reads estimation series returns
    data for this classifier (the realized ones: tests/integration/test_prometheus_outcomes.py).
    """
    sys.path.insert(0, str(REPO / "grafana"))
    from panels import expressions

    prom = run["prom"]
    dashboard = json.loads((REPO / "grafana" / "dashboards" / "model-performance.json")
                           .read_text(encoding="utf-8"))
    # the challenger's panels (by role, gaps) need a challenger: test_challenger.py has one
    estimated = [e for e in expressions(dashboard) if "mlmon_estimat" in e
                 and "challenger" not in e and "role_info" not in e]
    assert len(estimated) >= 5
    empty = [e for e in estimated if not prom.query(
        e.replace("$model_version", ".*").replace("$model", MODEL))]
    assert empty == []
