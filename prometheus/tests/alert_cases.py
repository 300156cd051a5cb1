"""Builds alerts_test.yml: one promtool test per alert, with literal expected labels/annotations.

`python prometheus/tests/alert_cases.py` rewrites the file; tests/test_rules.py checks that the
committed file equals `render()`. Each case has a series that breaks the rule and one that does
not, and checks the alert one evaluation before its `for:` elapses (nothing) and at it (exactly
the expected alert). Expected numbers come from exporter/drift.py or are worked out in comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.utils import floatToGoString

import mlmon.names as N
from mlmon.alerting.alerts import alert_groups
from mlmon.alerting.config import load as load_config
from mlmon.alerting.recording import FEATURE_HIST, PREDICTION_HIST, Histogram, recording_groups
from mlmon.exporter import drift
from mlmon.names import COUNTERS_START

PATH = Path(__file__).with_name("alerts_test.yml")
RUNBOOK = "https://github.com/mlmon/mlmon/blob/main/alerting/runbook.md#"
CHURN = {"model": "churn", "model_version": "3"}
FRAUD = {"model": "fraud", "model_version": "1"}
MINUTES = 90  # every input series runs this long


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _rising(per_minute: float, stop: int | None = None) -> str:
    """A counter rising by `per_minute` (until minute `stop`, then flat)."""
    if stop is None:
        return f"0+{per_minute}x{MINUTES}"
    return f"0+{per_minute}x{stop} {per_minute * stop}+0x{MINUTES - stop}"


def _const(value: float) -> str:
    return f"{value!r}+0x{MINUTES}"


class Case:
    """One promtool test: input series plus alert expectations."""

    def __init__(self, name: str, demo: str = "retime") -> None:
        self.name = name
        self.interval = "1m"  # of the input series (label_alert_cases.py: hours)
        # How demo_alert_cases.py reuses the case: "retime" (the checks are pairs before / at
        # `for:`, moved to the demo `for:`), "as_is" (silent cases: a shorter `for:` must not
        # make them fire) or "skip" (the timing under test is not the demo's).
        self.demo = demo
        self.series: list[tuple[str, str]] = []
        self.checks: list[dict[str, Any]] = []
        # (PromQL, eval time, expected labels, value): the premise of a case, checked too.
        self.premises: list[tuple[str, str, dict[str, str], float]] = []
        # The expected alerts as a function of the evaluation minute, for alerts whose
        # description depends on it (n of the window): demo_alert_cases.py re-derives them.
        self.alerts_at: Callable[[int], list[dict[str, Any]]] | None = None

    def add(self, metric: str, labels: dict[str, str], values: str) -> Case:
        self.series.append((metric + _labels(labels), values))
        return self

    def replica(self, model: dict[str, str], instance: str = "a") -> dict[str, str]:
        at = model | {"instance": instance, "job": "mlmon"}
        self.add(COUNTERS_START.name, at, _const(0.0))
        return at

    def histogram(self, h: Histogram, at: dict[str, str], edges: list[float], ref: list[float],
                  per_minute_bins: list[int], stop: int | None = None) -> Case:
        """Bucket counters of `h` rising by `per_minute_bins` a minute (until minute `stop`),
        and its reference distribution."""
        les = [floatToGoString(e) for e in edges] + ["+Inf"]
        for i, le in enumerate(les):
            b = at | {"le": le}
            self.add(f"{h.metric}_bucket", b,
                     _rising(int(np.sum(per_minute_bins[:i + 1])), stop))
            self.add(h.reference.bins.name, b, _const(ref[i]))
            self.add(h.reference.cumulative.name, b, _const(float(np.cumsum(ref)[i])))
            if i:
                self.add(h.reference.previous_le.name, b | {"previous_le": les[i - 1]},
                         _const(1.0))
        return self

    def categories(self, counter: str, ref_metric: str, at: dict[str, str], label: str,
                   ref: dict[str, float], per_minute: dict[str, int]) -> Case:
        for name, share in ref.items():
            c = at | {label: name}
            self.add(counter, c, _rising(per_minute.get(name, 0)))
            self.add(ref_metric, c, _const(share))
        return self

    def scrapes_fail(self, *minutes: int) -> Case:
        """Fail the scrapes at `minutes`: every series of the case gets a staleness marker
        there, as Prometheus writes them when a target's scrape fails."""
        for i, (series, values) in enumerate(self.series):
            match = re.fullmatch(r"([-0-9.e]+)\+([-0-9.e]+)x(\d+)", values)
            if match is None or int(match[3]) != MINUTES:
                raise ValueError(f"{series}: only a plain a+bx{MINUTES} series can fail")
            a, b = float(match[1]), float(match[2])
            tokens, first = [], 0  # runs of successful scrapes in promtool's a+bxn notation
            for stop in [*sorted(minutes), MINUTES + 1]:
                if stop > first:
                    tokens.append(f"{a + b * first!r}+{b!r}x{stop - first - 1}")
                if stop <= MINUTES:
                    tokens.append("stale")
                first = stop + 1
            self.series[i] = (series, " ".join(tokens))
        return self

    def premise(self, expr: str, at: str, labels: dict[str, str], value: float = 1.0) -> Case:
        self.premises.append((expr, at, labels, value))
        return self

    def expect(self, alert: str, before: str, at: str,
               alerts: list[dict[str, Any]] | Callable[[int], list[dict[str, Any]]]) -> Case:
        """No alert at `before` (for: not elapsed), exactly `alerts` at `at` (a list, or a
        function of the evaluation minute)."""
        if callable(alerts):
            self.alerts_at = alerts
            alerts = alerts(int(at.removesuffix("m")))
        self.checks.append({"eval_time": before, "alertname": alert, "exp_alerts": []})
        self.checks.append({"eval_time": at, "alertname": alert, "exp_alerts": alerts})
        return self


def _alert(labels: dict[str, str], summary: str, description: str, name: str) -> dict[str, Any]:
    return {"exp_labels": labels,
            "exp_annotations": {"summary": summary, "description": description,
                                "runbook_url": RUNBOOK + name.lower()}}


ALPHA, PSI_FLOOR = 0.01, 0.2  # alerting/config.yaml, MlmonFeatureDrift / MlmonPredictionDrift


def _drift_text(subject: str, d: drift.Drift, critical: float) -> str:
    """The drift alerts' description for the statistics `d` and the KS critical value."""
    return (f"{subject} drifted over the last 1h: PSI {d.psi:.3f} (floor {PSI_FLOOR}), "
            f"KS {d.ks:.3f} > critical {critical:.3f} (alpha {ALPHA}), n = {d.n}.")


def _feature_drift_alert(feature: str, d: drift.Drift, critical: float) -> dict[str, Any]:
    return _alert({"severity": "warning", **CHURN, "feature": feature},
                  "A feature's live distribution has drifted from the training data.",
                  _drift_text(f"Feature {feature} of model churn version 3", d, critical),
                  "MlmonFeatureDrift")


AGE_EDGES, AGE_REF = [25.0, 35.0, 50.0], [0.25, 0.25, 0.25, 0.25]


def feature_drift() -> Case:
    # age drifts hard (KS 0.55, far above its critical value ~0.07 for n=1600, m=1000, F=2);
    # income follows its reference exactly (PSI 0): no alert for it.
    case = Case("MlmonFeatureDrift fires for the drifted feature after 15m, not for the stable one")
    at = case.replica(CHURN)
    live_age = [5, 5, 10, 80]
    case.histogram(FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF, live_age)
    case.histogram(FEATURE_HIST, at | {"feature": "income"}, [1000.0, 2000.0], [0.3, 0.4, 0.3],
                   [30, 40, 30])
    for feature in ("age", "income"):
        case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": feature}, _const(1000.0))
    # n reaches min_samples (100) at 1m, so the condition holds from 1m and fires at 1m + 15m,
    # when the 1h window holds 16 minutes of 100 records.

    def alerts(minute: int) -> list[dict[str, Any]]:
        d = drift.binned_drift(np.array(live_age) * minute, AGE_REF)
        return [_feature_drift_alert("age", d, drift.ks_critical(d.n, 1000, ALPHA, tests=2))]
    return case.expect("MlmonFeatureDrift", "15m", "16m", alerts)


CITY_REF = {"paris": 0.6, "rome": 0.3, "__other__": 0.1, "__unseen__": 0.0}


def feature_drift_through_failed_scrapes() -> Case:
    # feature_drift, with one of the target's scrapes failing every third minute inside the
    # for: period (1m to 16m). The statistics read the reference gauges at the last successful
    # scrape (within restart_grace), so they stay present (an absent condition would restart
    # for: at each failure, and the alert would never fire) and exact: at 7m the 1h window's
    # counts are increase()'s, every bucket scaled alike, so the shares are the live ones.
    case = feature_drift()
    case.name = "MlmonFeatureDrift fires on time though scrapes fail now and then in its for:"
    case.demo = "skip"
    case.scrapes_fail(4, 7, 10, 13)
    d = drift.binned_drift(np.array([5, 5, 10, 80]), AGE_REF)
    for stat in ("psi", "ks"):
        case.premise(f'abs(model_feature:mlmon_feature_{stat}:1h{{feature="age"}} - '
                     f"{getattr(d, stat)!r}) < bool 1e-9", "7m", CHURN | {"feature": "age"})
    return case


def feature_drift_categorical() -> Case:
    # city: paris loses most of its share to rome, __other__ and never-seen cities; plan follows
    # its reference. The critical value is the Bretagnolle-Huber-Carol bound over 4 categories.
    case = Case("MlmonFeatureDrift fires after 15m for a drifted categorical feature")
    at = case.replica(CHURN)
    live = {"paris": 20, "rome": 30, "__other__": 30, "__unseen__": 20}
    plan_ref = {"free": 0.7, "pro": 0.3, "__other__": 0.0, "__unseen__": 0.0}
    case.categories(N.FEATURE_CATEGORY.sample, N.FEATURE_CATEGORY_REFERENCE_SHARE.name,
                    at | {"feature": "city"}, "category", CITY_REF, live)
    case.categories(N.FEATURE_CATEGORY.sample, N.FEATURE_CATEGORY_REFERENCE_SHARE.name,
                    at | {"feature": "plan"}, "category", plan_ref, {"free": 70, "pro": 30})
    for feature in ("city", "plan"):
        case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": feature}, _const(1000.0))

    def alerts(minute: int) -> list[dict[str, Any]]:
        d = drift.categorical_drift({k: v * minute for k, v in live.items()}, CITY_REF)
        return [_feature_drift_alert(
            "city", d, drift.tv_critical(d.n, 1000, ALPHA, categories=4, tests=2))]
    return case.expect("MlmonFeatureDrift", "15m", "16m", alerts)


def drift_below_psi_floor() -> Case:
    # 1000 records a minute against a reference of 100,000: a small shift is highly significant
    # (KS 0.05 far above its critical value) but PSI stays below the floor: no alert.
    case = Case("MlmonFeatureDrift stays silent on a significant shift below the PSI floor",
                demo="as_is")
    at = case.replica(CHURN)
    live = [250, 200, 300, 250]
    case.histogram(FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF, live)
    case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": "age"}, _const(100000.0))
    d = drift.binned_drift(np.array(live) * 40, AGE_REF)
    if not (d.psi < PSI_FLOOR and d.ks > drift.ks_critical(d.n, 100000, ALPHA)):
        raise ValueError("the case must be significant and below the PSI floor")
    case.premise(f"count({N.FEATURE_KS.at('1h')} > {N.FEATURE_KS_CRITICAL.at('1h')})", "40m",
                 {})
    case.premise(f"count({N.FEATURE_PSI.at('1h')} < {PSI_FLOOR})", "40m", {})
    for t in ("20m", "40m", "65m"):
        case.checks.append({"eval_time": t, "alertname": "MlmonFeatureDrift", "exp_alerts": []})
    return case


def drift_not_significant() -> Case:
    # 120 records in the first 6 minutes, then none: PSI 0.21 is above the floor, but for n=120
    # the KS distance 0.15 stays below its critical value (0.157): no alert.
    case = Case("MlmonFeatureDrift stays silent on a PSI above the floor that is not significant",
                demo="as_is")
    at = case.replica(CHURN)
    live = [5, 2, 8, 5]
    case.histogram(FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF, live, stop=6)
    case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": "age"}, _const(1000.0))
    d = drift.binned_drift(np.array(live) * 6, AGE_REF)
    if not (d.psi > PSI_FLOOR and d.ks < drift.ks_critical(d.n, 1000, ALPHA) and d.n >= 100):
        raise ValueError("the case must be above the PSI floor, not significant, n >= 100")
    case.premise(f"count({N.FEATURE_PSI.at('1h')} > {PSI_FLOOR})", "40m", {})
    case.premise(f"count({N.FEATURE_KS.at('1h')} < {N.FEATURE_KS_CRITICAL.at('1h')})", "40m",
                 {})
    for t in ("20m", "40m"):
        case.checks.append({"eval_time": t, "alertname": "MlmonFeatureDrift", "exp_alerts": []})
    return case


def drift_held_while_window_thins() -> Case:
    # 10 drifted records a minute until 15m, then no traffic. The 1h window holds 100 records
    # from 10m (condition true, fires at 25m) until 65m; from 66m it holds 90 (< min_samples).
    # keep_firing_for (15m) holds the drift alert until MlmonNotEnoughData fires (66m + 15m):
    # at every evaluation one of the two fires. The description is the last one rendered (65m).
    case = Case("MlmonFeatureDrift keeps firing on a thinning window until MlmonNotEnoughData "
                "fires", demo="skip")
    at = case.replica(CHURN)
    live = [0, 0, 1, 9]
    case.histogram(FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF, live, stop=15)
    case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": "age"}, _const(1000.0))
    case.add(N.OBSERVATIONS.sample, at, _rising(10, stop=15))
    fired = [_feature_drift_alert("age", d, drift.ks_critical(d.n, 1000, ALPHA))
             for d in (drift.binned_drift(np.array(live) * 15, AGE_REF),   # n at 25m
                       drift.binned_drift(np.array(live) * 10, AGE_REF))]  # n at 65m
    seen_at_81m = 10 * (min(81, 15) - min(81 - 60, 15))  # records in (21m, 81m]: none
    no_data = _alert({"severity": "warning", **CHURN}, "Too few observations to judge drift.",
                     f"Model churn version 3 saw {seen_at_81m} records in the last 1h (fewer "
                     "than 100): drift alerts cannot fire.", "MlmonNotEnoughData")
    case.checks += [
        {"eval_time": "24m", "alertname": "MlmonFeatureDrift", "exp_alerts": []},
        {"eval_time": "25m", "alertname": "MlmonFeatureDrift", "exp_alerts": [fired[0]]},
        {"eval_time": "80m", "alertname": "MlmonFeatureDrift", "exp_alerts": [fired[1]]},
        {"eval_time": "80m", "alertname": "MlmonNotEnoughData", "exp_alerts": []},
        {"eval_time": "81m", "alertname": "MlmonNotEnoughData", "exp_alerts": [no_data]},
        {"eval_time": "81m", "alertname": "MlmonFeatureDrift", "exp_alerts": []}]
    return case


def _prediction_drift_alert(model: dict[str, str], d: drift.Drift,
                            critical: float) -> dict[str, Any]:
    subject = f"Predictions of model {model['model']} version {model['model_version']}"
    return _alert({"severity": "warning", **model},
                  "The model's prediction distribution has drifted from the reference.",
                  _drift_text(subject, d, critical), "MlmonPredictionDrift")


def prediction_drift() -> Case:
    case = Case("MlmonPredictionDrift fires for the drifted model after 15m, not the stable one")
    edges, ref = [-1.0, 0.0, 1.0], [0.15, 0.35, 0.35, 0.15]
    live = [0, 0, 10, 90]
    for model, bins in ((CHURN, live), (FRAUD, [15, 35, 35, 15])):
        at = case.replica(model)
        case.histogram(PREDICTION_HIST, at, edges, ref, bins)
        case.add(N.REFERENCE_ROWS.name, at, _const(1000.0))

    def alerts(minute: int) -> list[dict[str, Any]]:
        d = drift.binned_drift(np.array(live) * minute, ref)
        return [_prediction_drift_alert(CHURN, d, drift.ks_critical(d.n, 1000, ALPHA))]
    return case.expect("MlmonPredictionDrift", "15m", "16m", alerts)


SPAM = {"model": "spam", "model_version": "1"}


def prediction_drift_classes() -> Case:
    # A classifier: spam predicted 70% of the time against 20% in the reference; fraud's classes
    # follow theirs. The predicted classes' total variation against the BHC bound over 2 classes.
    case = Case("MlmonPredictionDrift fires after 15m for a classifier's predicted classes")
    ref = {"spam": 0.2, "ham": 0.8}
    live = {"spam": 70, "ham": 30}
    for model, per_minute in ((SPAM, live), (FRAUD, {"spam": 20, "ham": 80})):
        at = case.replica(model)
        case.categories(N.PREDICTION_CLASS.sample, N.PREDICTION_CLASS_REFERENCE_SHARE.name,
                        at, "class", ref, per_minute)
        case.add(N.REFERENCE_ROWS.name, at, _const(1000.0))

    def alerts(minute: int) -> list[dict[str, Any]]:
        d = drift.categorical_drift({k: v * minute for k, v in live.items()}, ref)
        return [_prediction_drift_alert(SPAM, d, drift.tv_critical(d.n, 1000, ALPHA,
                                                                   categories=2))]
    return case.expect("MlmonPredictionDrift", "15m", "16m", alerts)


def not_enough_data() -> Case:
    # churn: 1 record a minute, 15 in the 1h window at 15m (< 100) from the start;
    # fraud: 10 a minute reaches 100 at 10m and stops the condition.
    case = Case("MlmonNotEnoughData fires after 15m of a thin window")
    case.add(N.OBSERVATIONS.sample, case.replica(CHURN), _rising(1))
    case.add(N.OBSERVATIONS.sample, case.replica(FRAUD), _rising(10))
    return case.expect("MlmonNotEnoughData", "14m", "15m", [_alert(
        {"severity": "warning", **CHURN}, "Too few observations to judge drift.",
        "Model churn version 3 saw 15 records in the last 1h (fewer than 100): drift alerts "
        "cannot fire.", "MlmonNotEnoughData")])


def _quality_case(name: str) -> tuple[Case, dict[str, str]]:
    case = Case(name)
    at = case.replica(CHURN)
    case.add(N.OBSERVATIONS.sample, at, _rising(100))
    return case, at


def feature_missing() -> Case:
    # age: 50 of 100 records missing (50% > 1% + 10%); income: 5% (< 0% + 10%).
    case, at = _quality_case("MlmonFeatureMissing fires after 10m of a mostly missing feature")
    for feature, missing, null_rate in (("age", 50, 0.01), ("income", 5, 0.0)):
        case.add(N.FEATURE_MISSING.sample, at | {"feature": feature}, _rising(missing))
        case.add(N.FEATURE_REFERENCE_NULL_RATE.name, at | {"feature": feature}, _const(null_rate))
    return case.expect("MlmonFeatureMissing", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "age"},
        "A feature is missing or null far more often than in training.",
        "Feature age of model churn version 3 is missing in 50% of records over the last 5m "
        "(reference null rate + 0.1 exceeded).", "MlmonFeatureMissing")])


def unseen_categories() -> Case:
    # city: 10 of 100 values a minute unseen (10% > 5%); country: none unseen.
    case = Case("MlmonUnseenCategoriesRising fires after 10m of unseen categories")
    at = case.replica(CHURN)
    shares = {"paris": 0.6, "rome": 0.3, "__other__": 0.1, "__unseen__": 0.0}
    for feature, counts in (("city", {"paris": 60, "rome": 20, "__other__": 10, "__unseen__": 10}),
                            ("country", {"paris": 60, "rome": 30, "__other__": 10,
                                         "__unseen__": 0})):
        for cat, count in counts.items():
            c = at | {"feature": feature, "category": cat}
            case.add(N.FEATURE_CATEGORY.sample, c, _rising(count))
            case.add(N.FEATURE_CATEGORY_REFERENCE_SHARE.name, c, _const(shares[cat]))
    return case.expect("MlmonUnseenCategoriesRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "city"},
        "A categorical feature receives many categories never seen in training.",
        "Feature city of model churn version 3: 10% of values over the last 5m were never seen "
        "in training (threshold 0.05).", "MlmonUnseenCategoriesRising")])


def invalid_values() -> Case:
    # age: 3% out_of_range + 3% wrong_type = 6% (> 5%), although no reason alone exceeds 5%;
    # income: 1% out_of_range + 1% inf = 2%. A reason at 0 is left out of the breakdown.
    case, at = _quality_case("MlmonInvalidValuesRising fires after 10m on the sum over reasons")
    for feature, reason, count in (("age", "out_of_range", 3), ("age", "wrong_type", 3),
                                   ("age", "inf", 0), ("income", "out_of_range", 1),
                                   ("income", "inf", 1)):
        case.add(N.FEATURE_INVALID.sample, at | {"feature": feature, "reason": reason},
                 _rising(count))
    return case.expect("MlmonInvalidValuesRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "age"},
        "A feature receives many invalid values.",
        "Feature age of model churn version 3: 6% of records over the last 5m were invalid "
        "(out_of_range 3%, wrong_type 3%; threshold 0.05).", "MlmonInvalidValuesRising")])


def invalid_all_inf() -> Case:
    # Every value of score turns infinite: observe() counts it as invalid (reason inf), neither
    # missing nor in the histogram, so only this alert can see it. (A NaN is missing: the
    # missing-rate alert's case.)
    case, at = _quality_case(
        "MlmonInvalidValuesRising fires after 10m when a feature turns infinite")
    case.add(N.FEATURE_INVALID.sample, at | {"feature": "score", "reason": "inf"},
             _rising(100))
    case.add(N.FEATURE_MISSING.sample, at | {"feature": "score"}, _const(0.0))
    return case.expect("MlmonInvalidValuesRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "score"},
        "A feature receives many invalid values.",
        "Feature score of model churn version 3: 100% of records over the last 5m were invalid "
        "(inf 100%; threshold 0.05).", "MlmonInvalidValuesRising")])


def text_oov() -> Case:
    # review: 30% OOV tokens (> 10% + 10%); comment: 10% (not above 20%).
    case = Case("MlmonTextOOVRising fires after 10m of a high OOV rate")
    at = case.replica(CHURN)
    for feature, oov in (("review", 300), ("comment", 100)):
        f = at | {"feature": feature}
        case.add(N.FEATURE_TEXT_TOKENS.sample, f, _rising(1000))
        case.add(N.FEATURE_TEXT_OOV_TOKENS.sample, f, _rising(oov))
        case.add(N.FEATURE_TEXT_REFERENCE_OOV_RATE.name, f, _const(0.1))
    return case.expect("MlmonTextOOVRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "review"},
        "A text feature has many more out-of-vocabulary tokens than in training.",
        "Feature review of model churn version 3: 30% of tokens over the last 5m are out of "
        "vocabulary (reference OOV rate + 0.1 exceeded).", "MlmonTextOOVRising")])


def prediction_nan() -> Case:
    # One NaN prediction scraped at 6m; wrong_type predictions do not count.
    case = Case("MlmonPredictionNaN fires at the first NaN prediction")
    at = case.replica(CHURN)
    case.add(N.PREDICTION_INVALID.sample, at | {"reason": "nan"}, f"0+0x5 1+0x{MINUTES - 6}")
    case.add(N.PREDICTION_INVALID.sample, at | {"reason": "inf"}, _const(0.0))
    case.add(N.PREDICTION_INVALID.sample, at | {"reason": "wrong_type"}, _rising(5))
    return case.expect("MlmonPredictionNaN", "5m", "6m", [_alert(
        {"severity": "critical", **CHURN, "reason": "nan"},
        "The model produces NaN or infinite predictions.",
        "Model churn version 3 produced 1 nan predictions in the last 5m.", "MlmonPredictionNaN")])


def _info(case: Case, model: str, version: str) -> None:
    case.add(N.MODEL_INFO.name, {"model": model, "model_version": version, "instance": version,
                                  "job": "mlmon", "profile_sha": "abc"}, _const(1.0))


def multiple_versions() -> Case:
    case = Case("MlmonMultipleModelVersions fires after 30m of two live versions")
    for model, version in (("churn", "3"), ("churn", "4"), ("fraud", "1")):
        _info(case, model, version)
    return case.expect("MlmonMultipleModelVersions", "29m", "30m", [_alert(
        {"severity": "warning", "model": "churn"}, "More than one version of a model is live.",
        "Model churn has 2 versions exporting at once.", "MlmonMultipleModelVersions")])


def unexpected_version() -> Case:
    # config expects churn version 3; fraud is not configured, so any version is fine.
    case = Case("MlmonUnexpectedModelVersion fires for a version other than the expected one")
    for model, version in (("churn", "3"), ("churn", "4"), ("fraud", "9")):
        _info(case, model, version)
    return case.expect("MlmonUnexpectedModelVersion", "4m", "5m", [_alert(
        {"severity": "critical", "model": "churn", "model_version": "4"},
        "A model version other than the expected one is live.",
        "Model churn version 4 is live, but the expected version is another one "
        "(alerting/config.yaml expected_versions).", "MlmonUnexpectedModelVersion")])


def model_stale() -> Case:
    # churn trained 100 days before t=0 (100.04 days at 1h, printed as 100); fraud 10 days.
    case = Case("MlmonModelStale fires after 1h for a model trained over 90 days ago")
    for model, days in ((CHURN, 100), (FRAUD, 10)):
        case.add(N.MODEL_TRAINED.name, model | {"instance": "a", "job": "mlmon"},
                 _const(-days * 86400.0))
    return case.expect("MlmonModelStale", "59m", "60m", [_alert(
        {"severity": "warning", **CHURN}, "The live model was trained too long ago.",
        "Model churn version 3 was trained 100 days ago (limit 90).", "MlmonModelStale")])


def latency_slo() -> Case:
    # churn per minute: 50 <= 0.1s, 40 in (0.1, 0.5], 10 in (0.5, 1]: p99 = 0.5 + 0.5 * 9/10
    # = 0.95s. fraud: everything <= 0.1s.
    case = Case("MlmonLatencySLOBreach fires after 10m of p99 above 0.5s")
    for model, cumulative in ((CHURN, (50, 90, 100, 100)), (FRAUD, (100, 100, 100, 100))):
        at = model | {"instance": "a", "job": "mlmon"}
        for le, count in zip(("0.1", "0.5", "1.0", "+Inf"), cumulative, strict=True):
            case.add(N.INFERENCE_LATENCY.bucket, at | {"le": le}, _rising(count))
    return case.expect("MlmonLatencySLOBreach", "10m", "11m", [_alert(
        {"severity": "critical", **CHURN}, "Inference latency is above its SLO.",
        "Model churn version 3: p99 latency over the last 5m is 950ms (SLO 0.5s).",
        "MlmonLatencySLOBreach")])


def error_ratio() -> Case:
    case = Case("MlmonHighErrorRatio fires after 5m of 10% errors")
    for model, errors in ((CHURN, 10), (FRAUD, 1)):
        at = model | {"instance": "a", "job": "mlmon"}
        case.add(N.REQUESTS.sample, at | {"outcome": "ok"}, _rising(100 - errors))
        case.add(N.REQUESTS.sample, at | {"outcome": "error"}, _rising(errors))
    return case.expect("MlmonHighErrorRatio", "5m", "6m", [_alert(
        {"severity": "critical", **CHURN}, "Too many inference requests fail.",
        "Model churn version 3: 10% of requests failed over the last 5m (threshold 0.05).",
        "MlmonHighErrorRatio")])


def throughput_zero() -> Case:
    case = Case("MlmonThroughputZero fires after 10m without observations")
    case.add(N.OBSERVATIONS.sample, CHURN | {"instance": "a", "job": "mlmon"}, _const(100.0))
    case.add(N.OBSERVATIONS.sample, FRAUD | {"instance": "a", "job": "mlmon"}, _rising(10))
    return case.expect("MlmonThroughputZero", "10m", "11m", [_alert(
        {"severity": "critical", **CHURN}, "A model receives no traffic.",
        "Model churn version 3 observed no record in the last 5m while its exporter is up.",
        "MlmonThroughputZero")])


def exporter_down() -> Case:
    case = Case("MlmonExporterDown fires after 5m for the target that cannot be scraped")
    case.add("up", {"instance": "a:8000", "job": "mlmon"}, _const(0.0))
    case.add("up", {"instance": "b:8000", "job": "mlmon"}, _const(1.0))
    case.add("up", {"instance": "c:9100", "job": "node"}, _const(0.0))
    return case.expect("MlmonExporterDown", "4m", "5m", [_alert(
        {"severity": "critical", "instance": "a:8000", "job": "mlmon"},
        "An mlmon exporter cannot be scraped.",
        "Target a:8000 of job mlmon is down.",
        "MlmonExporterDown")])


def exporter_absent() -> Case:
    case = Case("MlmonExporterDown fires after 5m when the job has no target at all")
    case.add("up", {"instance": "c:9100", "job": "node"}, _const(1.0))
    return case.expect("MlmonExporterDown", "4m", "5m", [_alert(
        {"severity": "critical", "job": "mlmon"}, "An mlmon exporter cannot be scraped.",
        "Job mlmon has no target at all.", "MlmonExporterDown")])


def worker_file_errors() -> Case:
    # churn on instance a: from minute 10 to 39 a worker without its file answers every third
    # scrape, showing its failures (2 at first, one more at each failed retry); the other
    # workers answer with the files' 0. At minute 40 its file opens: every worker shows 12.
    # fraud: 3 failures long ago, already in the files: nothing new, no alert.
    case = Case("MlmonWorkerFileErrors fires at once while a worker's failures show now and "
                "then, and resolves within 15m of its file opening", demo="skip")
    flapping = [0.0] * 10 + [2.0 + minute // 3 if minute % 3 == 0 else 0.0
                             for minute in range(30)] + [12.0] * (MINUTES - 39)
    case.add(N.WORKER_FILE_ERRORS.sample, CHURN | {"reason": "no_space", "instance": "a",
                                                   "job": "mlmon"},
             " ".join(f"{v!r}" for v in flapping))
    case.add(N.WORKER_FILE_ERRORS.sample, FRAUD | {"reason": "no_space", "instance": "a",
                                                   "job": "mlmon"}, _const(3.0))
    alert = [_alert(
        {"severity": "warning", **CHURN, "reason": "no_space", "instance": "a", "job": "mlmon"},
        "A worker process cannot open its multi-process file and counts in memory.",
        "Model churn version 3 on a: a worker process failed to open its file in the "
        "multi-process directory within the last 15m (reason no_space). It counts in memory "
        "and retries; if it exits before a retry succeeds, what it counted is lost. Free disk "
        "space or inodes, make the directory writable, or raise the open-files limit, as the "
        "reason says.", "MlmonWorkerFileErrors")]
    case.expect("MlmonWorkerFileErrors", "9m", "10m", alert)
    # still firing between the scrapes that worker answers (each 15m window holds rises); the
    # last rise is from minute 39 to 40 (0 to 12): within the window at 53m, out of it at 55m
    # (at 54m it depends on whether the window includes its start, which Prometheus 3 changed)
    for minute, expected in ((35, alert), (53, alert), (55, [])):
        case.checks.append({"eval_time": f"{minute}m", "alertname": "MlmonWorkerFileErrors",
                            "exp_alerts": expected})
    return case


def healthy() -> Case:
    """No alert of any kind on a healthy model (other than the listed ones)."""
    case = Case("a healthy, busy model raises no alert", demo="as_is")
    at = case.replica(CHURN)
    case.add("up", {"instance": "a", "job": "mlmon"}, _const(1.0))
    _info(case, "churn", "3")
    case.add(N.MODEL_TRAINED.name, at, _const(-86400.0))
    case.add(N.OBSERVATIONS.sample, at, _rising(200))
    case.add(N.REQUESTS.sample, at | {"outcome": "ok"}, _rising(200))
    case.add(N.REQUESTS.sample, at | {"outcome": "error"}, _const(0.0))
    case.histogram(FEATURE_HIST, at | {"feature": "age"}, [25.0, 35.0, 50.0],
                   [0.25, 0.25, 0.25, 0.25], [50, 50, 50, 50])
    case.add(N.FEATURE_REFERENCE_COUNT.name, at | {"feature": "age"}, _const(1000.0))
    case.histogram(PREDICTION_HIST, at, [0.0], [0.5, 0.5], [100, 100])
    case.add(N.REFERENCE_ROWS.name, at, _const(1000.0))
    case.add(N.WORKER_FILE_ERRORS.sample, at | {"reason": "no_space"}, _const(0.0))
    for alert in ("MlmonFeatureDrift", "MlmonPredictionDrift", "MlmonNotEnoughData",
                  "MlmonThroughputZero", "MlmonExporterDown", "MlmonMultipleModelVersions",
                  "MlmonUnexpectedModelVersion", "MlmonModelStale", "MlmonHighErrorRatio",
                  "MlmonWorkerFileErrors"):
        case.checks.append({"eval_time": "65m", "alertname": alert, "exp_alerts": []})
    return case


PERFORMANCE = ("Realized model performance is worse than its baseline.",
               "MlmonPerformanceBelowBaseline")


def _performance_alert(model: dict[str, str], metric: str, value: float, baseline: float,
                       n: int) -> dict[str, Any]:
    return _alert({"severity": "warning", **model, "metric": metric}, PERFORMANCE[0],
                  f"Model {model['model']} version {model['model_version']}: {metric} "
                  f"{value:.3f} over the labels of the last 1d, baseline {baseline:.3f} "
                  f"(accuracy drop allowed 0.05, MAE increase 0.2), n = {n} labels.",
                  PERFORMANCE[1])


def _baseline(case: Case, at: dict[str, str], metric: str, value: float) -> None:
    case.add(N.BASELINE.name, at | {"metric": metric}, _const(value))


def _confusion(case: Case, at: dict[str, str], per_minute: dict[tuple[str, str], int]) -> None:
    for (predicted, actual), count in per_minute.items():
        case.add(N.OUTCOME_CLASS.sample, at | {"predicted_class": predicted,
                                               "actual_class": actual}, _rising(count))


def performance_below_baseline() -> Case:
    # Baseline accuracy 0.9 everywhere (alert below 0.9 - 0.05). spam: 10 labels a minute, 7
    # correct (accuracy 0.7); it reaches min_labelled (200) at 20m and fires at 20m + 1h.
    # fraud: accuracy 0.9, fine. thin: accuracy 0.5 on 2 labels a minute, 180 at 90m: too few.
    # quiet: a baseline but no labels at all: nothing to judge.
    case = Case("MlmonPerformanceBelowBaseline fires after 1h of accuracy below baseline, "
                "with enough labels")
    thin, quiet = {"model": "thin", "model_version": "1"}, {"model": "quiet", "model_version": "1"}
    for model, matrix in (
            (SPAM, {("spam", "spam"): 3, ("ham", "ham"): 4, ("spam", "ham"): 2,
                    ("ham", "spam"): 1}),
            (FRAUD, {("spam", "spam"): 4, ("ham", "ham"): 5, ("spam", "ham"): 1}),
            (thin, {("spam", "spam"): 1, ("spam", "ham"): 1}),
            (quiet, {})):
        at = case.replica(model)
        _baseline(case, at, "accuracy", 0.9)
        _confusion(case, at, matrix)
    case.premise(f'abs({N.OUTCOME_ACCURACY.at("1d")}{{model="spam"}} - 0.7) < bool 1e-9', "30m",
                 SPAM)
    return case.expect(PERFORMANCE[1], "79m", "80m", lambda minute: [
        _performance_alert(SPAM, "accuracy", 0.7, 0.9, 10 * minute)])


def performance_mae_above_baseline() -> Case:
    # Baseline MAE 1.0 (alert above 1.0 * 1.2). churn: MAE 1.5 on 10 labels a minute; fraud:
    # MAE 1.1. churn reaches 200 labels at 20m.
    case = Case("MlmonPerformanceBelowBaseline fires after 1h of an MAE above baseline")
    for model, absolute in ((CHURN, 15.0), (FRAUD, 11.0)):
        at = case.replica(model)
        _baseline(case, at, "mae", 1.0)
        case.add(N.OUTCOME_ERROR.count, at, _rising(10))
        case.add(N.OUTCOME_ABSOLUTE_ERROR.sample, at, _rising(absolute))
    return case.expect(PERFORMANCE[1], "79m", "80m", lambda minute: [
        _performance_alert(CHURN, "mae", 1.5, 1.0, 10 * minute)])


def prediction_out_of_range() -> Case:
    # churn: 5 of 100 records a minute out of range (5% > 1%); fraud: 0.5%.
    case = Case("MlmonPredictionOutOfRange fires after 10m of predictions outside the range")
    for model, count in ((CHURN, 5.0), (FRAUD, 0.5)):
        at = case.replica(model)
        case.add(N.OBSERVATIONS.sample, at, _rising(100))
        case.add(N.PREDICTION_INVALID.sample, at | {"reason": "out_of_range"}, _rising(count))
    return case.expect("MlmonPredictionOutOfRange", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "reason": "out_of_range"},
        "The model produces predictions outside the allowed range.",
        "Model churn version 3: 5% of records over the last 5m had a prediction outside the "
        "profile's allowed range (threshold 0.01).", "MlmonPredictionOutOfRange")])


CASES = (feature_drift, feature_drift_through_failed_scrapes, feature_drift_categorical,
         drift_below_psi_floor, drift_not_significant,
         drift_held_while_window_thins, prediction_drift, prediction_drift_classes,
         not_enough_data, feature_missing, unseen_categories, invalid_values, invalid_all_inf,
         text_oov, prediction_nan, multiple_versions, unexpected_version, model_stale,
         latency_slo, error_ratio, throughput_zero, exporter_down, exporter_absent,
         worker_file_errors, healthy,
         performance_below_baseline, performance_mae_above_baseline, prediction_out_of_range)


def group_order() -> list[str]:
    """Recording groups first, then alerts: as if each alert saw this evaluation's statistics
    (real Prometheus runs groups independently, so it may fire up to one interval later)."""
    config = load_config()
    return [g.name for g in recording_groups(config)] + [g.name for g in alert_groups(config)]


def render(header: str = "# GENERATED by prometheus/tests/alert_cases.py: one promtool test "
           "per alert.", cases: tuple[Callable[[], Case], ...] = CASES) -> str:
    """A promtool test file of `cases` against the production rules (batch_cases.py too)."""
    lines = [
        header,
        "rule_files:", "  - ../recording_rules.yml", "  - ../../alerting/alert_rules.yml",
        "evaluation_interval: 1m", f"group_eval_order: {json.dumps(group_order())}", "tests:"]
    for make in cases:
        lines += case_lines(make())
    return "\n".join(lines) + "\n"


def case_lines(case: Case) -> list[str]:
    """One test of the promtool test file (also used by demo_alert_cases.py)."""
    lines = [f"  # {case.name}", f"  - interval: {case.interval}", "    input_series:"]
    for series, values in case.series:
        lines += [f"      - series: {json.dumps(series)}",
                  f"        values: {json.dumps(values)}"]
    lines.append("    alert_rule_test:")
    lines += [f"      - {json.dumps(check, sort_keys=False)}" for check in case.checks]
    if case.premises:
        lines.append("    promql_expr_test:")
    for expr, at, labels, value in case.premises:
        lines += [f"      - expr: {json.dumps(expr)}", f"        eval_time: {at}",
                  "        exp_samples:", f"          - labels: {json.dumps(_labels(labels))}",
                  f"            value: {value!r}"]
    return lines


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
