"""Builds outcomes_recording_test.yml: realized-performance rules against scikit-learn and numpy.

`python prometheus/tests/outcome_cases.py` rewrites the file; tests/test_rules.py checks that the
committed file equals `render()`, so the expected values always come from scikit-learn (accuracy,
per-class precision and recall) and numpy (MAE, RMSE, bias) on the raw (prediction, label)
pairs behind the counters.

Labels arrive in bursts, from four targets per model: service replicas `a` and `b` (counters
since t=0, one burst each before 30m and one after) and two runs of the outcomes CLI pushed
to the Pushgateway (job mlmon_outcomes, instance = run id, each with its own counters-start
timestamp): `r1` started at 10m, `r2` at 75m. At 90m the 1h window, (30m, 90m], holds the late
bursts and run r2 only (run r1's counts are older: its pushed counter did not move inside the
window); the 1d and 7d windows hold everything. Model `idle` got labels at 10m only: its 1h
window is empty, so its ratios are absent (not NaN) while its labelled count is 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, precision_score, recall_score

import mlmon.names as N
from mlmon.alerting.outcomes import REJECTED
from mlmon.names import COUNTERS_START, UNSEEN_CLASS

PATH = Path(__file__).with_name("outcomes_recording_test.yml")
END = 90  # minutes; the checks run at END
SPAM = {"model": "spam", "model_version": "1"}
CHURN = {"model": "churn", "model_version": "3"}
IDLE = {"model": "idle", "model_version": "1"}
CLASSES = ("ham", "spam")  # the profile's classes; anything else is counted as __unseen__
DELAY_EDGES = ("60.0", "3600.0", "86400.0", "+Inf")

# target -> (job, counters start in minutes, first scrape minute)
TARGETS = {"a": ("mlmon", 0, 0), "b": ("mlmon", 0, 0), "r1": (N.OUTCOMES_PUSH_JOB, 10, 12),
           "r2": (N.OUTCOMES_PUSH_JOB, 75, 76)}
# target -> the minutes its labels arrive (a pushed run's at its first push)
BURSTS = {"a": (10, 70), "b": (20, 80), "r1": (12,), "r2": (76,)}
WINDOWS = {"1h": 60, "1d": 1440, "7d": 10080}


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _steps(first: int, changes: dict[int, float]) -> str:
    """A series scraped every minute from minute `first` (no sample before) to END, holding the
    value of the last change at or before each minute (0 before the first change)."""
    tokens, value = ["_"] * first, 0.0
    for minute in range(first, END + 1):
        value = changes.get(minute, value)
        tokens.append(repr(value))
    return " ".join(tokens)


def _cumulative(first: int, bursts: dict[int, float]) -> str:
    """A counter rising by `bursts[minute]` at each burst minute."""
    total, changes = 0.0, {}
    for minute in sorted(bursts):
        total += bursts[minute]
        changes[minute] = total
    return _steps(first, changes)


def _in_window(minute: int, window: str) -> bool:
    return minute > END - WINDOWS[window]


class Outcomes:
    """Raw labelled pairs per (target, burst minute) and the counter series they make."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.series: list[tuple[str, str]] = []

    def target(self, model: dict[str, str], name: str) -> dict[str, str]:
        job, started, first = TARGETS[name]
        at = model | {"instance": name, "job": job}
        self.series.append((COUNTERS_START.name + _labels(at),
                            _steps(first, {first: started * 60.0})))
        return at

    def add(self, metric: str, at: dict[str, str], first: int, bursts: dict[int, float]) -> None:
        self.series.append((metric + _labels(at), _cumulative(first, bursts)))


def _classes(rng: np.random.Generator, n: int, accuracy: float) -> tuple[list[str], list[str]]:
    """n raw (prediction, label) pairs; now and then a value outside the profile, always a
    different one on each side (two unseen values need not be equal)."""
    actual = list(rng.choice([*CLASSES, "eggs"], n, p=[0.55, 0.4, 0.05]))
    predicted = [a if rng.random() < accuracy else str(rng.choice([*CLASSES, "bacon"]))
                 for a in actual]
    predicted = ["bacon" if p == a == "eggs" else p for p, a in zip(predicted, actual,
                                                                    strict=True)]
    return [str(p) for p in predicted], [str(a) for a in actual]


def _counted(value: str) -> str:
    return value if value in CLASSES else UNSEEN_CLASS


class Labelled:
    """The raw labelled pairs, label delays and rejected labels inside one window."""

    def __init__(self) -> None:
        self.predicted: list[str] = []
        self.actual: list[str] = []
        self.delays: list[float] = []
        self.rejected: dict[str, float] = {}


def classifier(out: Outcomes, model: dict[str, str], bursts: dict[str, tuple[int, ...]],
               accuracy: float) -> dict[str, Labelled]:
    """The classifier's series; returns what each window holds."""
    windows = {w: Labelled() for w in WINDOWS}
    for name, minutes in bursts.items():
        at = out.target(model, name)
        first = TARGETS[name][2]
        matrix: dict[tuple[str, str], dict[int, float]] = {
            (p, a): {} for p in (*CLASSES, UNSEEN_CLASS) for a in (*CLASSES, UNSEEN_CLASS)}
        delays: dict[str, dict[int, float]] = {le: {} for le in DELAY_EDGES}
        rejected: dict[str, dict[int, float]] = {"unknown_id": {}, "duplicate": {}}
        for minute in minutes:
            predicted, actual = _classes(out.rng, int(out.rng.integers(30, 60)), accuracy)
            delay = list(out.rng.choice([30.0, 900.0, 7200.0, 100000.0], len(actual)))
            for p, a in zip(predicted, actual, strict=True):
                cell = matrix[(_counted(p), _counted(a))]
                cell[minute] = cell.get(minute, 0.0) + 1
            for le in DELAY_EDGES:
                bound = float(le)
                delays[le][minute] = float(sum(d <= bound for d in delay))
            for reason in rejected:
                rejected[reason][minute] = float(out.rng.integers(1, 5))
            for w, held in windows.items():
                if _in_window(minute, w):
                    held.predicted += predicted
                    held.actual += actual
                    held.delays += delay
                    for reason, counts in rejected.items():
                        held.rejected[reason] = held.rejected.get(reason, 0.0) + counts[minute]
        for (p, a), bursts in matrix.items():
            out.add(N.OUTCOME_CLASS.sample, at | {"predicted_class": p, "actual_class": a},
                    first, bursts)
        for le, bursts in delays.items():
            out.add(N.OUTCOME_LABEL_DELAY.bucket, at | {"le": le}, first, bursts)
        for reason, bursts in rejected.items():
            out.add(N.OUTCOME_REJECTED.sample, at | {"reason": reason}, first, bursts)
    return windows


def regression(out: Outcomes, model: dict[str, str]) -> dict[str, np.ndarray]:
    """The regression model's series; returns the raw errors of each window."""
    errors: dict[str, list[float]] = {w: [] for w in WINDOWS}
    for name, minutes in BURSTS.items():
        at = out.target(model, name)
        first = TARGETS[name][2]
        sums: dict[str, dict[int, float]] = {"count": {}, "sum": {}, "abs": {}, "sq": {}}
        for minute in minutes:
            predicted = out.rng.normal(10, 3, int(out.rng.integers(30, 60)))
            actual = predicted - out.rng.normal(0.4, 1.5, len(predicted))
            e = predicted - actual
            for key, value in (("count", len(e)), ("sum", e.sum()), ("abs", np.abs(e).sum()),
                               ("sq", (e ** 2).sum())):
                sums[key][minute] = float(value)
            for w in WINDOWS:
                if _in_window(minute, w):
                    errors[w] += list(e)
        for key, metric in (("count", N.OUTCOME_ERROR.count), ("sum", N.OUTCOME_ERROR.sum),
                            ("abs", N.OUTCOME_ABSOLUTE_ERROR.sample),
                            ("sq", N.OUTCOME_SQUARED_ERROR.sample)):
            out.add(metric, at, first, sums[key])
    return {w: np.array(e) for w, e in errors.items()}


def histogram_quantile(q: float, les: tuple[str, ...], cumulative: list[float]) -> float:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket holding the rank
    (the first bucket from 0); the +Inf bucket answers with the highest finite bound."""
    rank = q * cumulative[-1]
    for i, count in enumerate(cumulative):
        if count >= rank:
            if les[i] == "+Inf":
                return float(les[i - 1])
            lower = float(les[i - 1]) if i else 0.0
            below = cumulative[i - 1] if i else 0.0
            return lower + (float(les[i]) - lower) * (rank - below) / (count - below)
    raise ValueError("empty histogram")


# (rule, the labels of its expected sample, value); None: no sample
Expectation = tuple[str, dict[str, str], float | None]


def build() -> tuple[list[tuple[str, str]], list[Expectation]]:
    out = Outcomes(seed=11)
    spam = classifier(out, SPAM, BURSTS, accuracy=0.8)
    churn = regression(out, CHURN)
    idle = classifier(out, IDLE, {"a": (10,)}, accuracy=0.8)
    checks: list[Expectation] = []
    for w in WINDOWS:
        held = spam[w]
        predicted, actual, delays = held.predicted, held.actual, held.delays
        checks.append((N.OUTCOME_ACCURACY.at(w), SPAM, accuracy_score(actual, predicted)))
        checks.append((N.OUTCOME_LABELLED.at(w), SPAM, float(len(actual))))
        for stat, rule in ((precision_score, N.OUTCOME_PRECISION), (recall_score,
                                                                    N.OUTCOME_RECALL)):
            values = stat(actual, predicted, labels=list(CLASSES), average=None)
            for cls, value in zip(CLASSES, values, strict=True):
                checks.append((rule.at(w),
                               SPAM | {"class": cls}, float(value)))
        cumulative = [float(sum(d <= float(le) for d in delays)) for le in DELAY_EDGES]
        checks.append((N.OUTCOME_LABEL_DELAY_MEDIAN.at(w), SPAM,
                       histogram_quantile(0.5, DELAY_EDGES, cumulative)))
        for reason, count in held.rejected.items():
            checks.append((REJECTED.at(w),
                           SPAM | {"reason": reason}, count))
        e = churn[w]
        checks += [(N.OUTCOME_MAE.at(w), CHURN, float(np.mean(np.abs(e)))),
                   (N.OUTCOME_RMSE.at(w), CHURN, float(np.sqrt(np.mean(e ** 2)))),
                   (N.OUTCOME_BIAS.at(w), CHURN, float(np.mean(e))),
                   (N.OUTCOME_LABELLED.at(w), CHURN, float(len(e)))]
    if idle["1h"].actual or not idle["1d"].actual:
        raise ValueError("idle must have labels in 1d and none in 1h")
    checks += [(N.OUTCOME_ACCURACY.at("1d"), IDLE,
                accuracy_score(idle["1d"].actual, idle["1d"].predicted)),
               (N.OUTCOME_ACCURACY.at("1h"), IDLE, None),
               (N.OUTCOME_PRECISION.at("1h"), IDLE, None),
               (N.OUTCOME_LABEL_DELAY_MEDIAN.at("1h"), IDLE, None),
               (N.OUTCOME_LABELLED.at("1h"), IDLE, 0.0)]
    return out.series, checks


def render() -> str:
    series, checks = build()
    lines = [
        "# GENERATED by prometheus/tests/outcome_cases.py (expected values from scikit-learn and",
        "# numpy on the raw pairs). promtool unit tests of the realized-performance rules: two",
        "# replicas and two pushed CLI runs per model, checked at 90m over the 1h, 1d and 7d",
        "# windows. Values are compared as abs(x - v) < 1e-9.",
        "rule_files:", "  - ../recording_rules.yml", "evaluation_interval: 1m", "tests:",
        "  - interval: 1m", "    input_series:"]
    for name, values in series:
        lines += [f"      - series: {json.dumps(name)}", f"        values: {json.dumps(values)}"]
    lines.append("    promql_expr_test:")
    for rule, labels, value in checks:
        expr = rule + _labels(labels)  # every label of the expected sample: no other model
        if value is None:
            lines += [f"      - expr: {json.dumps(expr)}", f"        eval_time: {END}m",
                      "        exp_samples: []"]
            continue
        lines += [f"      - expr: {json.dumps(f'abs({expr} - {value!r}) < bool 1e-9')}",
                  f"        eval_time: {END}m", "        exp_samples:",
                  f"          - labels: {json.dumps(_labels(labels))}", "            value: 1"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
