"""Builds drift_recording_test.yml: known inputs, expected values from exporter/drift.py.

`python prometheus/tests/drift_cases.py` rewrites the file; tests/test_rules.py checks that the
committed file equals `render()`, so the expected values always come from exporter/drift.py.

Two replicas (instances a and b) of model churn version 3 (regression) and of model spam
version 1 (a classifier: predicted classes and score). Per-minute increments change at t=5m, so
at t=10m the 5m window holds only the second phase and the 1h window both phases. Also the KS
critical values of both models against exporter/drift.py's ks_critical and tv_critical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from prometheus_client.utils import floatToGoString

import mlmon.names as N
from mlmon.alerting.config import load as load_config
from mlmon.alerting.recording import (
    FEATURE_CATS,
    FEATURE_HIST,
    PREDICTION_CLASSES,
    PREDICTION_HIST,
    SCORE_HIST,
    Histogram,
)
from mlmon.exporter import drift
from mlmon.names import COUNTERS_START

PATH = Path(__file__).with_name("drift_recording_test.yml")
REPLICAS = ("a", "b")
MODEL = {"model": "churn", "model_version": "3"}

AGE_EDGES = [25.0, 35.0, 50.0]
AGE_REF = [0.25, 0.25, 0.25, 0.25]
# replica -> (bin increments per minute in phase 1, in phase 2)
AGE = {"a": ([4, 6, 6, 4], [1, 2, 3, 14]), "b": ([6, 4, 4, 6], [0, 3, 7, 10])}
CITY_REF = {"paris": 0.6, "rome": 0.3, "__other__": 0.1, "__unseen__": 0.0}
CITY = {"a": ({"paris": 6, "rome": 3, "__other__": 1, "__unseen__": 0},
              {"paris": 2, "rome": 3, "__other__": 1, "__unseen__": 4}),
        "b": ({"paris": 12, "rome": 6, "__other__": 2, "__unseen__": 0},
              {"paris": 4, "rome": 4, "__other__": 0, "__unseen__": 2})}
PRED_EDGES = [-1.0, 0.0, 1.0]
PRED_REF = [0.15, 0.35, 0.35, 0.15]
PRED = {"a": ([3, 7, 7, 3], [0, 2, 8, 10]), "b": ([3, 7, 7, 3], [1, 1, 9, 9])}
# Reference sizes m behind the critical values: non-null reference values per feature, rows.
REF_COUNT = {"age": 1000.0, "city": 800.0}
REF_ROWS = 1200.0

# A classifier, model spam version 1, on the same two replicas: predicted classes and the score
# (probability of the predicted class) on its reference edges.
SPAM = {"model": "spam", "model_version": "1"}
CLASS_REF = {"ham": 0.7, "spam": 0.3}
CLASSES = {"a": ({"ham": 7, "spam": 3}, {"ham": 2, "spam": 8}),
           "b": ({"ham": 14, "spam": 6}, {"ham": 5, "spam": 5})}
SCORE_EDGES = [0.6, 0.8]
SCORE_REF = [0.2, 0.5, 0.3]
SCORE = {"a": ([2, 5, 3], [6, 3, 1]), "b": ([4, 10, 6], [4, 4, 2])}
SPAM_ROWS = 500.0


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _counter(first: float, second: float) -> str:
    """A counter from 0 rising by `first` per minute until 5m, then by `second` until 10m."""
    return f"0+{first}x5 {5 * first + second}+{second}x4"


def _gauge(value: float) -> str:
    return f"{value!r}+0x10"


def _les(edges: list[float]) -> list[str]:
    return [floatToGoString(e) for e in edges] + ["+Inf"]


def _histogram(series: list[tuple[str, str]], h: Histogram, labels: dict[str, str],
               edges: list[float], ref: list[float], bins: tuple[list[int], list[int]]) -> None:
    """The exporter's series of histogram `h`: buckets and its reference distribution."""
    les = _les(edges)
    cum1, cum2 = np.cumsum(bins[0]), np.cumsum(bins[1])
    ref_cum = np.cumsum(ref)
    for i, le in enumerate(les):
        at = labels | {"le": le}
        series.append((f"{h.metric}_bucket{_labels(at)}", _counter(cum1[i], cum2[i])))
        series.append((f"{h.reference.bins.name}{_labels(at)}", _gauge(ref[i])))
        series.append((f"{h.reference.cumulative.name}{_labels(at)}",
                       _gauge(float(ref_cum[i]))))
        if i:
            series.append((f"{h.reference.previous_le.name}"
                           f"{_labels(at | {'previous_le': les[i - 1]})}", "1+0x10"))


def input_series() -> list[tuple[str, str]]:
    series: list[tuple[str, str]] = []
    for replica in REPLICAS:
        at = MODEL | {"instance": replica, "job": "mlmon"}
        series.append((f"{COUNTERS_START.name}{_labels(at)}", "0+0x10"))
        _histogram(series, FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF,
                   AGE[replica])
        for cat in sorted(CITY_REF):
            cat_at = at | {"feature": "city", "category": cat}
            series.append((f"{FEATURE_CATS.counter}{_labels(cat_at)}",
                           _counter(CITY[replica][0][cat], CITY[replica][1][cat])))
            series.append((f"{FEATURE_CATS.ref_share}{_labels(cat_at)}",
                           _gauge(CITY_REF[cat])))
        for feature, m in REF_COUNT.items():
            series.append((f"{N.FEATURE_REFERENCE_COUNT.name}{_labels(at | {'feature': feature})}",
                           _gauge(m)))
        _histogram(series, PREDICTION_HIST, at, PRED_EDGES, PRED_REF, PRED[replica])
        series.append((f"{N.REFERENCE_ROWS.name}{_labels(at)}", _gauge(REF_ROWS)))
        spam = SPAM | {"instance": replica, "job": "mlmon"}
        series.append((f"{COUNTERS_START.name}{_labels(spam)}", "0+0x10"))
        for cls in sorted(CLASS_REF):
            cls_at = spam | {"class": cls}
            series.append((f"{PREDICTION_CLASSES.counter}{_labels(cls_at)}",
                           _counter(CLASSES[replica][0][cls], CLASSES[replica][1][cls])))
            series.append((f"{PREDICTION_CLASSES.ref_share}{_labels(cls_at)}",
                           _gauge(CLASS_REF[cls])))
        _histogram(series, SCORE_HIST, spam, SCORE_EDGES, SCORE_REF, SCORE[replica])
        series.append((f"{N.REFERENCE_ROWS.name}{_labels(spam)}", _gauge(SPAM_ROWS)))
    return series


def _pooled(per_replica: dict, window: str) -> np.ndarray:
    """Pooled bin counts in the window at t=10m: phase 2 only (5m) or both phases (1h)."""
    phases = (1,) if window == "5m" else (0, 1)
    return sum(np.array(per_replica[r][p], dtype=float) * 5 for r in REPLICAS for p in phases)


def _pooled_cats(per_replica: dict, window: str) -> dict[str, float]:
    phases = (1,) if window == "5m" else (0, 1)
    names = per_replica[REPLICAS[0]][0]
    return {c: float(sum(per_replica[r][p][c] * 5 for r in REPLICAS for p in phases))
            for c in names}


def _critical_values() -> list[tuple[str, dict[str, str], float]]:
    """The KS critical values at t=10m over the 1h window, from exporter/drift.py."""
    config = load_config()
    w = config.alert("MlmonFeatureDrift")["window"]
    if w != "1h" or config.alert("MlmonPredictionDrift")["window"] != "1h":
        raise ValueError("the cases assume 1h drift windows (alerting/config.yaml)")
    alpha_f = float(config.alert("MlmonFeatureDrift")["alpha"])
    alpha_p = float(config.alert("MlmonPredictionDrift")["alpha"])
    features = len(REF_COUNT)  # Bonferroni over the model's features (age, city)
    n_age = float(_pooled(AGE, w).sum())
    n_city = sum(_pooled_cats(CITY, w).values())
    n_pred = float(_pooled(PRED, w).sum())
    n_cls = sum(_pooled_cats(CLASSES, w).values())
    return [
        (N.FEATURE_KS_CRITICAL.at(w) + '{feature="age"}',
         MODEL | {"feature": "age"},
         drift.ks_critical(n_age, REF_COUNT["age"], alpha_f, tests=features)),
        (N.FEATURE_KS_CRITICAL.at(w) + '{feature="city"}',
         MODEL | {"feature": "city"},
         drift.tv_critical(n_city, REF_COUNT["city"], alpha_f, categories=len(CITY_REF),
                           tests=features)),
        (N.PREDICTION_KS_CRITICAL.at(w) + '{model="churn"}', MODEL,
         drift.ks_critical(n_pred, REF_ROWS, alpha_p)),
        (N.PREDICTION_KS_CRITICAL.at(w) + '{model="spam"}', SPAM,
         drift.tv_critical(n_cls, SPAM_ROWS, alpha_p, categories=len(CLASS_REF))),
    ]


def expectations() -> list[tuple[str, dict[str, str], float]]:
    """(PromQL selector, expected labels, expected value) at t=10m."""
    out: list[tuple[str, dict[str, str], float]] = []
    age, city = MODEL | {"feature": "age"}, MODEL | {"feature": "city"}
    for w in ("5m", "1h"):
        counts = _pooled(AGE, w)
        d = drift.binned_drift(counts, AGE_REF)
        for stat in ("psi", "ks", "js"):
            out.append((N.FEATURE_STATS[stat].at(w)
                        + '{feature="age"}', age,
                        getattr(d, stat)))
        cats = _pooled_cats(CITY, w)
        dc = drift.categorical_drift(cats, CITY_REF)
        for stat in ("psi", "ks", "js", "chi2"):
            out.append((N.FEATURE_STATS[stat].at(w)
                        + '{feature="city"}', city,
                        getattr(dc, stat)))
        out.append((N.FEATURE_UNSEEN_SHARE.at(w), city,
                    cats["__unseen__"] / sum(cats.values())))
        for le, share in zip(_les(AGE_EDGES), counts / counts.sum(), strict=True):
            out.append((FEATURE_HIST.bins(w) + f'{{le="{le}"}}',
                        age | {"le": le}, float(share)))
        out.append((N.FEATURE_SAMPLES.at(w) + '{feature="age"}', age,
                    float(counts.sum())))
        dp = drift.binned_drift(_pooled(PRED, w), PRED_REF)
        for stat in ("psi", "ks", "js"):
            out.append((N.prediction_stat(stat).at(w) + '{model="churn"}', MODEL,
                        getattr(dp, stat)))
        dcls = drift.categorical_drift(_pooled_cats(CLASSES, w), CLASS_REF)
        dscore = drift.binned_drift(_pooled(SCORE, w), SCORE_REF)
        for stat in ("psi", "ks", "js"):
            out.append((N.prediction_stat(stat).at(w) + '{model="spam"}', SPAM,
                        getattr(dcls, stat)))
            out.append((N.prediction_stat(f"score_{stat}").at(w), SPAM,
                        getattr(dscore, stat)))
    return out + _critical_values()


def render() -> str:
    lines = [
        "# GENERATED by prometheus/tests/drift_cases.py (expected values from exporter/drift.py).",
        "# promtool unit tests of the drift recording rules on known inputs: two replicas; the",
        "# per-minute increments change at 5m, so at 10m the 5m window holds the second phase only",
        "# and the 1h window both. Values are compared as abs(x - v) < 1e-9.",
        "rule_files:", "  - ../recording_rules.yml", "evaluation_interval: 1m", "tests:",
        "  - interval: 1m", "    input_series:"]
    for series, values in input_series():
        lines += [f"      - series: {json.dumps(series)}", f"        values: {json.dumps(values)}"]
    lines.append("    promql_expr_test:")
    for expr, labels, value in expectations():
        lines += [f"      - expr: {json.dumps(f'abs({expr} - {float(value)!r}) < bool 1e-9')}",
                  "        eval_time: 10m", "        exp_samples:",
                  f"          - labels: {json.dumps(_labels(labels))}", "            value: 1"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
