"""Builds alerts_test.yml: one promtool test per alert, with literal expected labels/annotations.

`python prometheus/tests/alert_cases.py` rewrites the file; tests/test_rules.py checks that the
committed file equals `render()`. Each case has a series that breaks the rule and one that does
not, and checks the alert one evaluation before its `for:` elapses (nothing) and at it (exactly
the expected alert). Expected numbers come from exporter/drift.py or are worked out in comments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.utils import floatToGoString

from alerting.alerts import alert_groups
from alerting.config import load as load_config
from alerting.recording import recording_groups
from exporter import drift

PATH = Path(__file__).with_name("alerts_test.yml")
RUNBOOK = "https://github.com/mlmon/mlmon/blob/main/alerting/runbook.md#"
CHURN = {"model": "churn", "model_version": "3"}
FRAUD = {"model": "fraud", "model_version": "1"}
MINUTES = 70  # every input series runs this long


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _rising(per_minute: float) -> str:
    return f"0+{per_minute}x{MINUTES}"


def _const(value: float) -> str:
    return f"{value!r}+0x{MINUTES}"


class Case:
    """One promtool test: input series plus alert expectations."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.series: list[tuple[str, str]] = []
        self.checks: list[dict[str, Any]] = []

    def add(self, metric: str, labels: dict[str, str], values: str) -> Case:
        self.series.append((metric + _labels(labels), values))
        return self

    def replica(self, model: dict[str, str], instance: str = "a") -> dict[str, str]:
        at = model | {"instance": instance, "job": "mlmon"}
        self.add("mlmon_profile_loaded_timestamp_seconds", at, _const(0.0))
        return at

    def histogram(self, prefix: str, at: dict[str, str], edges: list[float], ref: list[float],
                  per_minute_bins: list[int]) -> Case:
        les = [floatToGoString(e) for e in edges] + ["+Inf"]
        for i, le in enumerate(les):
            b = at | {"le": le}
            self.add(f"{prefix}_value_bucket", b, _rising(int(np.sum(per_minute_bins[:i + 1]))))
            self.add(f"{prefix}_reference_bin_share", b, _const(ref[i]))
            self.add(f"{prefix}_reference_cumulative_share", b, _const(float(np.cumsum(ref)[i])))
            if i:
                self.add(f"{prefix}_bucket_previous_le_info", b | {"previous_le": les[i - 1]},
                         _const(1.0))
        return self

    def expect(self, alert: str, before: str, at: str, alerts: list[dict[str, Any]]) -> Case:
        """No alert at `before` (for: not elapsed), exactly `alerts` at `at`."""
        self.checks.append({"eval_time": before, "alertname": alert, "exp_alerts": []})
        self.checks.append({"eval_time": at, "alertname": alert, "exp_alerts": alerts})
        return self


def _alert(labels: dict[str, str], summary: str, description: str, name: str) -> dict[str, Any]:
    return {"exp_labels": labels,
            "exp_annotations": {"summary": summary, "description": description,
                                "runbook_url": RUNBOOK + name.lower()}}


def feature_drift() -> Case:
    # age drifts hard (KS 0.55, far above its critical value ~0.07 for n=1600, m=1000, F=2);
    # income follows its reference exactly (PSI 0): no alert for it.
    case = Case("MlmonFeatureDrift fires for the drifted feature after 15m, not for the stable one")
    at = case.replica(CHURN)
    ref_age = [0.25, 0.25, 0.25, 0.25]
    live_age = [5, 5, 10, 80]
    case.histogram("mlmon_feature", at | {"feature": "age"}, [25.0, 35.0, 50.0], ref_age, live_age)
    case.histogram("mlmon_feature", at | {"feature": "income"}, [1000.0, 2000.0], [0.3, 0.4, 0.3],
                   [30, 40, 30])
    for feature in ("age", "income"):
        case.add("mlmon_feature_reference_count", at | {"feature": feature}, _const(1000.0))
    psi = drift.binned_drift(live_age, ref_age).psi
    # n reaches min_samples (100) at 1m, so the condition holds from 1m and fires at 1m + 15m.
    return case.expect("MlmonFeatureDrift", "15m", "16m", [_alert(
        {"severity": "warning", **CHURN, "feature": "age"},
        "A feature's live distribution has drifted from the training data.",
        f"Feature age of model churn version 3 drifted over the last 1h: PSI {psi:.3f} "
        "(floor 0.2), and the KS distance exceeds its critical value at alpha 0.01.",
        "MlmonFeatureDrift")])


def prediction_drift() -> Case:
    case = Case("MlmonPredictionDrift fires for the drifted model after 15m, not the stable one")
    edges, ref = [-1.0, 0.0, 1.0], [0.15, 0.35, 0.35, 0.15]
    live = [0, 0, 10, 90]
    for model, bins in ((CHURN, live), (FRAUD, [15, 35, 35, 15])):
        at = case.replica(model)
        case.histogram("mlmon_prediction", at, edges, ref, bins)
        case.add("mlmon_reference_rows", at, _const(1000.0))
    psi = drift.binned_drift(live, ref).psi
    return case.expect("MlmonPredictionDrift", "15m", "16m", [_alert(
        {"severity": "warning", **CHURN},
        "The model's prediction distribution has drifted from the reference.",
        f"Predictions of model churn version 3 drifted over the last 1h: PSI {psi:.3f} "
        "(floor 0.2), and the KS distance exceeds its critical value at alpha 0.01.",
        "MlmonPredictionDrift")])


def not_enough_data() -> Case:
    # churn: 1 record a minute, 30 in the 1h window at 30m (< 100) from the start;
    # fraud: 10 a minute reaches 100 at 10m and stops the condition.
    case = Case("MlmonNotEnoughData fires after 30m of a thin window")
    case.add("mlmon_observations_total", case.replica(CHURN), _rising(1))
    case.add("mlmon_observations_total", case.replica(FRAUD), _rising(10))
    return case.expect("MlmonNotEnoughData", "29m", "30m", [_alert(
        {"severity": "warning", **CHURN}, "Too few observations to judge drift.",
        "Model churn version 3 saw 30 records in the last 1h (fewer than 100): drift alerts "
        "cannot fire.", "MlmonNotEnoughData")])


def _quality_case(name: str) -> tuple[Case, dict[str, str]]:
    case = Case(name)
    at = case.replica(CHURN)
    case.add("mlmon_observations_total", at, _rising(100))
    return case, at


def feature_missing() -> Case:
    # age: 50 of 100 records missing (50% > 1% + 10%); income: 5% (< 0% + 10%).
    case, at = _quality_case("MlmonFeatureMissing fires after 10m of a mostly missing feature")
    for feature, missing, null_rate in (("age", 50, 0.01), ("income", 5, 0.0)):
        case.add("mlmon_feature_missing_total", at | {"feature": feature}, _rising(missing))
        case.add("mlmon_feature_reference_null_rate", at | {"feature": feature}, _const(null_rate))
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
            case.add("mlmon_feature_category_total", c, _rising(count))
            case.add("mlmon_feature_category_reference_share", c, _const(shares[cat]))
    return case.expect("MlmonUnseenCategoriesRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "city"},
        "A categorical feature receives many categories never seen in training.",
        "Feature city of model churn version 3: 10% of values over the last 5m were never seen "
        "in training (threshold 0.05).", "MlmonUnseenCategoriesRising")])


def invalid_values() -> Case:
    # age out_of_range 10% (> 5%); age nan 10% (nan is not a listed reason); income 1%.
    case, at = _quality_case("MlmonInvalidValuesRising fires after 10m, per reason")
    for feature, reason, count in (("age", "out_of_range", 10), ("age", "nan", 10),
                                   ("income", "out_of_range", 1)):
        case.add("mlmon_feature_invalid_total", at | {"feature": feature, "reason": reason},
                 _rising(count))
    return case.expect("MlmonInvalidValuesRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "age", "reason": "out_of_range"},
        "A feature receives many invalid values.",
        "Feature age of model churn version 3: 10% of records over the last 5m were invalid "
        "(out_of_range; threshold 0.05).", "MlmonInvalidValuesRising")])


def text_oov() -> Case:
    # review: 30% OOV tokens (> 10% + 10%); comment: 10% (not above 20%).
    case = Case("MlmonTextOOVRising fires after 10m of a high OOV rate")
    at = case.replica(CHURN)
    for feature, oov in (("review", 300), ("comment", 100)):
        f = at | {"feature": feature}
        case.add("mlmon_feature_text_tokens_total", f, _rising(1000))
        case.add("mlmon_feature_text_oov_tokens_total", f, _rising(oov))
        case.add("mlmon_feature_text_reference_oov_rate", f, _const(0.1))
    return case.expect("MlmonTextOOVRising", "10m", "11m", [_alert(
        {"severity": "warning", **CHURN, "feature": "review"},
        "A text feature has many more out-of-vocabulary tokens than in training.",
        "Feature review of model churn version 3: 30% of tokens over the last 5m are out of "
        "vocabulary (reference OOV rate + 0.1 exceeded).", "MlmonTextOOVRising")])


def prediction_nan() -> Case:
    # One NaN prediction scraped at 6m; wrong_type predictions do not count.
    case = Case("MlmonPredictionNaN fires at the first NaN prediction")
    at = case.replica(CHURN)
    case.add("mlmon_prediction_invalid_total", at | {"reason": "nan"}, f"0+0x5 1+0x{MINUTES - 6}")
    case.add("mlmon_prediction_invalid_total", at | {"reason": "inf"}, _const(0.0))
    case.add("mlmon_prediction_invalid_total", at | {"reason": "wrong_type"}, _rising(5))
    return case.expect("MlmonPredictionNaN", "5m", "6m", [_alert(
        {"severity": "critical", **CHURN, "reason": "nan"},
        "The model produces NaN or infinite predictions.",
        "Model churn version 3 produced 1 nan predictions in the last 5m.", "MlmonPredictionNaN")])


def _info(case: Case, model: str, version: str) -> None:
    case.add("mlmon_model_info", {"model": model, "model_version": version, "instance": version,
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
        case.add("mlmon_model_trained_timestamp_seconds", model | {"instance": "a", "job": "mlmon"},
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
            case.add("mlmon_inference_latency_seconds_bucket", at | {"le": le}, _rising(count))
    return case.expect("MlmonLatencySLOBreach", "10m", "11m", [_alert(
        {"severity": "critical", **CHURN}, "Inference latency is above its SLO.",
        "Model churn version 3: p99 latency over the last 5m is 950ms (SLO 0.5s).",
        "MlmonLatencySLOBreach")])


def error_ratio() -> Case:
    case = Case("MlmonHighErrorRatio fires after 5m of 10% errors")
    for model, errors in ((CHURN, 10), (FRAUD, 1)):
        at = model | {"instance": "a", "job": "mlmon"}
        case.add("mlmon_requests_total", at | {"outcome": "ok"}, _rising(100 - errors))
        case.add("mlmon_requests_total", at | {"outcome": "error"}, _rising(errors))
    return case.expect("MlmonHighErrorRatio", "5m", "6m", [_alert(
        {"severity": "critical", **CHURN}, "Too many inference requests fail.",
        "Model churn version 3: 10% of requests failed over the last 5m (threshold 0.05).",
        "MlmonHighErrorRatio")])


def throughput_zero() -> Case:
    case = Case("MlmonThroughputZero fires after 10m without observations")
    case.add("mlmon_observations_total", CHURN | {"instance": "a", "job": "mlmon"}, _const(100.0))
    case.add("mlmon_observations_total", FRAUD | {"instance": "a", "job": "mlmon"}, _rising(10))
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
        "Target a:8000 of job mlmon is down, or the job has no target at all.",
        "MlmonExporterDown")])


def exporter_absent() -> Case:
    case = Case("MlmonExporterDown fires after 5m when the job has no target at all")
    case.add("up", {"instance": "c:9100", "job": "node"}, _const(1.0))
    return case.expect("MlmonExporterDown", "4m", "5m", [_alert(
        {"severity": "critical", "job": "mlmon"}, "An mlmon exporter cannot be scraped.",
        "Target  of job mlmon is down, or the job has no target at all.", "MlmonExporterDown")])


def healthy() -> Case:
    """No alert of any kind on a healthy model (other than the listed ones)."""
    case = Case("a healthy, busy model raises no alert")
    at = case.replica(CHURN)
    case.add("up", {"instance": "a", "job": "mlmon"}, _const(1.0))
    _info(case, "churn", "3")
    case.add("mlmon_model_trained_timestamp_seconds", at, _const(-86400.0))
    case.add("mlmon_observations_total", at, _rising(200))
    case.add("mlmon_requests_total", at | {"outcome": "ok"}, _rising(200))
    case.add("mlmon_requests_total", at | {"outcome": "error"}, _const(0.0))
    case.histogram("mlmon_feature", at | {"feature": "age"}, [25.0, 35.0, 50.0],
                   [0.25, 0.25, 0.25, 0.25], [50, 50, 50, 50])
    case.add("mlmon_feature_reference_count", at | {"feature": "age"}, _const(1000.0))
    case.histogram("mlmon_prediction", at, [0.0], [0.5, 0.5], [100, 100])
    case.add("mlmon_reference_rows", at, _const(1000.0))
    for alert in ("MlmonFeatureDrift", "MlmonPredictionDrift", "MlmonNotEnoughData",
                  "MlmonThroughputZero", "MlmonExporterDown", "MlmonMultipleModelVersions",
                  "MlmonUnexpectedModelVersion", "MlmonModelStale", "MlmonHighErrorRatio"):
        case.checks.append({"eval_time": "65m", "alertname": alert, "exp_alerts": []})
    return case


CASES = (feature_drift, prediction_drift, not_enough_data, feature_missing, unseen_categories,
         invalid_values, text_oov, prediction_nan, multiple_versions, unexpected_version,
         model_stale, latency_slo, error_ratio, throughput_zero, exporter_down, exporter_absent,
         healthy)


def group_order() -> list[str]:
    """Recording groups first, then alerts: as if each alert saw this evaluation's statistics
    (real Prometheus runs groups independently, so it may fire up to one interval later)."""
    config = load_config()
    return [g.name for g in recording_groups(config)] + [g.name for g in alert_groups(config)]


def render() -> str:
    lines = [
        "# GENERATED by prometheus/tests/alert_cases.py: one promtool test per alert.",
        "rule_files:", "  - ../recording_rules.yml", "  - ../../alerting/alert_rules.yml",
        "evaluation_interval: 1m", f"group_eval_order: {json.dumps(group_order())}", "tests:"]
    for make in CASES:
        lines += case_lines(make())
    return "\n".join(lines) + "\n"


def case_lines(case: Case) -> list[str]:
    """One test of the promtool test file (also used by demo_alert_cases.py)."""
    lines = [f"  # {case.name}", "  - interval: 1m", "    input_series:"]
    for series, values in case.series:
        lines += [f"      - series: {json.dumps(series)}",
                  f"        values: {json.dumps(values)}"]
    lines.append("    alert_rule_test:")
    lines += [f"      - {json.dumps(check, sort_keys=False)}" for check in case.checks]
    return lines


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
