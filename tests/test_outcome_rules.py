"""The realized-performance rule builders (alerting/outcomes.py) beyond the committed rules.

The committed rules are checked against scikit-learn by
prometheus/tests/outcomes_recording_test.yml; here the generic confusion builder serves another
counter under other names, with fractional increments (expected counts from calibrated
probabilities), and is checked by promtool against numpy on the same matrix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from mlmon.alerting import config as cfg
from mlmon.alerting.outcomes import ConfusionNames, confusion_rules, outcome_groups
from mlmon.alerting.render import Group, render
from mlmon.names import COUNTERS_START, OUTCOME_ACCURACY, UNSEEN_CLASS, RuleName
from tests.conftest import missing_server

ESTIMATED = ConfusionNames(
    matrix=RuleName("model_predicted_class_actual_class", "mlmon_estimated_outcome_class",
                    "increase"),
    accuracy=RuleName("model", "mlmon_estimated_accuracy"),
    precision=RuleName("model_class", "mlmon_estimated_precision"),
    recall=RuleName("model_class", "mlmon_estimated_recall"),
    total=RuleName("model", "mlmon_estimated_outcome_class", "count_increase"))
COUNTER = "mlmon_estimated_outcome_class_total"
CLASSES = ("a", "b", "c")
# predicted (rows) x actual (columns), added every minute: calibrated probabilities summed
PER_MINUTE = np.array([[2.25, 0.5, 0.25], [0.75, 1.5, 0.125], [0.0, 0.375, 3.0]])


def test_the_builder_names_what_it_records_after_the_names_given() -> None:
    rules = confusion_rules(COUNTER, ESTIMATED, cfg.load(), "1h", "expected outcomes")
    names = [r.name for r in rules]
    assert names == [
        "model_predicted_class_actual_class:mlmon_estimated_outcome_class:increase1h",
        "model_class:mlmon_estimated_outcome_class_predicted:increase1h",
        "model_class:mlmon_estimated_outcome_class_actual:increase1h",
        "model_class:mlmon_estimated_outcome_class_correct:increase1h",
        "model:mlmon_estimated_outcome_class:count_increase1h",
        "model:mlmon_estimated_accuracy:1h",
        "model_class:mlmon_estimated_precision:1h",
        "model_class:mlmon_estimated_recall:1h"]
    assert COUNTER in rules[0].expr and "mlmon_outcome" not in "".join(r.expr for r in rules)
    assert all("expected outcomes" in r.why.lower() for r in rules)


def test_one_outcome_group_per_outcome_window_with_its_interval() -> None:
    config = cfg.load()
    groups = outcome_groups(config)
    assert [g.name for g in groups] == [f"mlmon.outcomes.{w}" for w in config.outcome_windows]
    assert {g.interval for g in groups} == {config.outcome_evaluation_interval}
    assert all(OUTCOME_ACCURACY.at(w) in {r.name for r in g.rules}
               for g, w in zip(groups, config.outcome_windows, strict=True))


def _expected() -> dict[str, list[tuple[dict[str, str], float]]]:
    """numpy on the pooled matrix after 10 minutes of two replicas (the unseen row and column
    are empty: they never count as correct anyway)."""
    matrix = PER_MINUTE * 10 * 2
    correct = np.diag(matrix)
    model = {"model": "m", "model_version": "1"}
    return {
        ESTIMATED.accuracy.at("1h"): [(model, float(correct.sum() / matrix.sum()))],
        ESTIMATED.total.at("1h"): [(model, float(matrix.sum()))],
        ESTIMATED.precision.at("1h"): [(model | {"class": c}, float(v)) for c, v in
                                       zip(CLASSES, correct / matrix.sum(axis=1), strict=True)],
        ESTIMATED.recall.at("1h"): [(model | {"class": c}, float(v)) for c, v in
                                    zip(CLASSES, correct / matrix.sum(axis=0), strict=True)],
    }


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def test_fractional_confusion_counts_give_numpys_metrics_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_server("promtool")
    group = Group("estimated.1h", "test", tuple(
        confusion_rules(COUNTER, ESTIMATED, cfg.load(), "1h", "expected outcomes")))
    (tmp_path / "rules.yml").write_text(render([group], "test"), encoding="utf-8")
    series = []
    for replica in ("r1", "r2"):
        at = {"model": "m", "model_version": "1", "instance": replica, "job": "mlmon"}
        series.append({"series": COUNTERS_START.name + _labels(at), "values": "0+0x10"})
        names = (*CLASSES, UNSEEN_CLASS)
        for i, predicted in enumerate(names):
            for j, actual in enumerate(names):
                per_minute = float(PER_MINUTE[i, j]) if i < 3 and j < 3 else 0.0
                series.append({"series": COUNTER + _labels(
                    at | {"predicted_class": predicted, "actual_class": actual}),
                    "values": f"0+{per_minute!r}x10"})
    checks = [{"expr": f"abs({rule}{_labels(labels)} - {value!r}) < bool 1e-9",
               "eval_time": "10m", "exp_samples": [{"labels": _labels(labels), "value": 1}]}
              for rule, samples in _expected().items() for labels, value in samples]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}
    (tmp_path / "test.yml").write_text(json.dumps(test), encoding="utf-8")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(checks) == 8
