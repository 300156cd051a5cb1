"""Builds estimation_test.yml: estimated-performance rules and their alert, against numpy.

`python prometheus/tests/estimation_cases.py` rewrites the file; tests/test_rules.py checks that
the committed file equals `render()`. Each model has two replicas (counters since t=0) whose
predictions, one minute at a time, add their expected rows to mlmon_estimated_outcome_class_total:
p (the calibrated probability of being right) to (predicted, predicted), 1 - p to (predicted,
other). The expected values are numpy's on the raw p of the predictions inside each window.

Alert MlmonEstimatedPerformanceBelowBaseline (window 1h, min_scored 500, accuracy_drop 0.05,
for 30m, from alerting/config.yaml): its condition holds from the first minute for `spam`
(estimated ~0.75, baseline 0.95, 600 scored predictions a minute: the window count at 1m is the
counters' value, their process having started within restart_grace), so it is pending at 30m and
fires at 31m. Never for `few` (too few predictions: 300 an hour), `steady` (estimated ~0.93, a
drop under 0.05), `quiet` (no scored prediction: no estimate at all) or `unbased` (no baseline).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import mlmon.names as N
from mlmon.alerting.config import load as load_config
from mlmon.names import BASELINE, COUNTERS_START

PATH = Path(__file__).with_name("estimation_test.yml")
RUNBOOK = "https://github.com/mlmon/mlmon/blob/main/alerting/runbook.md#"
ALERT = "MlmonEstimatedPerformanceBelowBaseline"
END = 90  # minutes
CLASSES = ("ham", "spam")
WINDOWS = {"5m": 5, "1h": 60}
REPLICAS = ("a", "b")
# model -> (predictions a minute per replica, p range, baseline accuracy or None)
MODELS: dict[str, tuple[tuple[int, int], tuple[float, float], float | None]] = {
    "spam": ((300, 300), (0.5, 1.0), 0.95),
    "few": ((3, 2), (0.5, 0.7), 0.95),
    "steady": ((300, 300), (0.86, 1.0), 0.95),
    "quiet": ((0, 0), (0.5, 1.0), 0.95),
    "unbased": ((300, 300), (0.5, 0.9), None),
}


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _model(name: str) -> dict[str, str]:
    return {"model": name, "model_version": "1"}


class Predictions:
    """The raw (minute, predicted class index, p) of one model, pooled over its replicas."""

    def __init__(self) -> None:
        self.minute: list[int] = []
        self.predicted: list[int] = []
        self.p: list[float] = []

    def window(self, end: int, minutes: int) -> tuple[np.ndarray, np.ndarray]:
        m = np.asarray(self.minute)
        inside = (m > end - minutes) & (m <= end)
        return np.asarray(self.predicted)[inside], np.asarray(self.p)[inside]


def build() -> tuple[list[tuple[str, str]], dict[str, Predictions]]:
    rng = np.random.default_rng(12)
    series: list[tuple[str, str]] = []
    raw: dict[str, Predictions] = {}
    for name, (per_minute, (low, high), baseline) in MODELS.items():
        raw[name] = held = Predictions()
        for replica, n in zip(REPLICAS, per_minute, strict=True):
            at = _model(name) | {"instance": replica, "job": "mlmon"}
            series.append((COUNTERS_START.name + _labels(at), f"0+0x{END}"))
            if baseline is not None:
                series.append((BASELINE.name + _labels(at | {"metric": "accuracy"}),
                               f"{baseline!r}+0x{END}"))
            cells = np.zeros((END + 1, 2, 2))  # cumulative expected counts at each minute
            for minute in range(1, END + 1):
                predicted = rng.choice(2, n, p=[0.6, 0.4])
                p = rng.uniform(low, high, n)
                step = np.zeros((2, 2))
                for i in range(2):
                    step[i, i] = p[predicted == i].sum()
                    step[i, 1 - i] = (1.0 - p[predicted == i]).sum()
                cells[minute] = cells[minute - 1] + step
                held.minute += [minute] * n
                held.predicted += predicted.tolist()
                held.p += p.tolist()
            for i, pred in enumerate(CLASSES):
                for j, actual in enumerate(CLASSES):
                    labels = at | {"predicted_class": pred, "actual_class": actual}
                    values = " ".join(repr(float(v)) for v in cells[:, i, j])
                    series.append((N.ESTIMATED_CLASS.sample + _labels(labels), values))
    return series, raw


def expected(predicted: np.ndarray, p: np.ndarray) -> dict[str, float | dict[str, float]]:
    """Accuracy, samples, per-class precision and recall of the expected confusion matrix."""
    if not p.size:
        return {}
    right = {c: float(p[predicted == i].sum()) for i, c in enumerate(CLASSES)}
    as_class = {c: right[c] + float((1.0 - p[predicted != i]).sum())
                for i, c in enumerate(CLASSES)}
    return {"accuracy": float(p.sum() / p.size), "samples": float(p.size),
            "precision": {c: right[c] / float((predicted == i).sum()) for i, c in enumerate(CLASSES)
                          if (predicted == i).any()},
            "recall": {c: right[c] / as_class[c] for c in CLASSES if as_class[c] > 0}}


def _close(expr: str, labels: dict[str, str], value: float) -> list[str]:
    return [f"      - expr: {json.dumps(f'abs({expr}{_labels(labels)} - {value!r}) < bool 1e-9')}",
            f"        eval_time: {END}m", "        exp_samples:",
            f"          - labels: {json.dumps(_labels(labels))}", "            value: 1"]


def _absent(expr: str, labels: dict[str, str], minute: int = END) -> list[str]:
    return [f"      - expr: {json.dumps(expr + _labels(labels))}", f"        eval_time: {minute}m",
            "        exp_samples: []"]


def _alert(minute: int, firing: list[dict[str, str]], raw: dict[str, Predictions],
           window: str, drop: float) -> list[str]:
    lines = [f"      - eval_time: {minute}m", f"        \"alertname\": \"{ALERT}\""]
    if not firing:
        return [*lines, "        exp_alerts: []"]
    lines.append("        exp_alerts:")
    for model in firing:
        name = model["model"]
        est = expected(*raw[name].window(minute, min(minute, WINDOWS[window])))
        baseline = MODELS[name][2]
        description = (f"Model {name} version 1: estimated accuracy {est['accuracy']:.3f} over "
                       f"the scored predictions of the last {window}, baseline {baseline:.3f} "
                       f"(drop allowed {drop}), n = {est['samples']:.0f} predictions.")
        lines += ["          - exp_labels:",
                  *(f"              {k}: {json.dumps(v)}" for k, v in
                    (model | {"severity": "warning"}).items()),
                  "            exp_annotations:",
                  "              summary: \"Estimated model accuracy is below its baseline.\"",
                  f"              description: {json.dumps(description)}",
                  f"              runbook_url: {json.dumps(RUNBOOK + ALERT.lower())}"]
    return lines


def render() -> str:
    series, raw = build()
    alert = load_config().alert(ALERT)
    window, drop, wait = alert["window"], alert["accuracy_drop"], int(alert["for"][:-1])
    if (window, alert["min_scored"], alert["for"][-1]) != ("1h", 500, "m"):
        raise ValueError("the cases assume window 1h, min_scored 500 and `for:` in minutes")
    lines = [
        "# GENERATED by prometheus/tests/estimation_cases.py (expected values from numpy on the",
        "# raw calibrated probabilities). promtool unit tests of the estimated-performance rules",
        "# (two replicas per model, checked at 90m over the 5m and 1h windows; values compared as",
        f"# abs(x - v) < 1e-9) and of {ALERT}.",
        "rule_files:", "  - ../recording_rules.yml", "  - ../../alerting/alert_rules.yml",
        "evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for name, values in series:
        lines += [f"      - series: {json.dumps(name)}", f"        values: {json.dumps(values)}"]
    lines.append("    promql_expr_test:")
    for name in MODELS:
        model = _model(name)
        for w, minutes in WINDOWS.items():
            est = expected(*raw[name].window(END, minutes))
            if not est:
                lines += _absent(N.ESTIMATED_ACCURACY.at(w), model)
                lines += _absent(N.ESTIMATED_PRECISION.at(w), model)
                continue
            lines += _close(N.ESTIMATED_ACCURACY.at(w), model, est["accuracy"])
            lines += _close(N.ESTIMATED_SAMPLES.at(w), model, est["samples"])
            for stat, rule in (("precision", N.ESTIMATED_PRECISION),
                               ("recall", N.ESTIMATED_RECALL)):
                for cls, value in est[stat].items():
                    lines += _close(rule.at(w), model | {"class": cls}, value)
    lines.append("    alert_rule_test:")
    spam = [_model("spam")]
    lines += _alert(wait, [], raw, window, drop)            # pending since 1m, not yet firing
    lines += _alert(wait + 1, spam, raw, window, drop)      # `for:` elapsed
    lines += _alert(END, spam, raw, window, drop)           # only spam, still
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
