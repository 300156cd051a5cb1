"""Builds batch_test.yml: the `:batch` rules and the batch alerts, on series as a Pushgateway
group exposes them (constant between runs), with expected values from exporter/drift.py.

`python prometheus/tests/batch_cases.py` rewrites the file (make generate); tests/test_rules.py
checks that the committed file equals `render()` and runs promtool on it. The cases reuse the
Case builder of alert_cases.py. They prove:
- every `:batch` drift statistic and critical value equals exporter/drift.py within 1e-9;
- a service replica of the same model beside the batch keeps its own statistics (the online
  rules read only series without `batch_job`), and batch series alone raise no online alert;
- each batch alert fires one evaluation after its `for:`, not before, with exact annotations;
  only the job's most recent run counts (an older version's group left behind is ignored).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.utils import floatToGoString

import mlmon.names as N
from mlmon.alerting.recording import FEATURE_HIST, PREDICTION_HIST, Histogram
from mlmon.exporter import drift

PATH = Path(__file__).with_name("batch_test.yml")
JOB = "nightly-scoring"
CHURN = {"model": "churn", "model_version": "3"}
GROUP = {N.BATCH_LABEL: JOB, **CHURN}  # the grouping key
PUSHED = {"job": N.BATCH_PUSH_JOB, **GROUP}  # labels Prometheus stores (honor_labels)
ALPHA, PSI_FLOOR = 0.01, 0.2  # alerting/config.yaml, MlmonFeatureDrift / MlmonPredictionDrift
MIN_SAMPLES = 100

# The batch: age drifted, income as its reference, city as its reference but 20% missing;
# predictions drifted. Reference sizes m: 1000 values per feature, 1000 rows.
ROWS = 500
AGE_EDGES, AGE_REF, AGE = [25.0, 35.0, 50.0], [0.25, 0.25, 0.25, 0.25], [10, 20, 70, 400]
# income: near its reference (PSI 0.002), not on it: JS = sqrt(...) of a divergence that is 0
# up to rounding would be off by sqrt(rounding), ~1e-9, whatever computes it
INCOME_EDGES, INCOME_REF, INCOME = [1000.0, 2000.0], [0.3, 0.4, 0.3], [140, 210, 150]
CITY_REF = {"paris": 0.6, "rome": 0.3, "__other__": 0.1, "__unseen__": 0.0}
CITY = {"paris": 240, "rome": 120, "__other__": 40, "__unseen__": 0}
CITY_MISSING = ROWS - sum(CITY.values())
PRED_EDGES, PRED_REF, PRED = [-1.0, 0.0, 1.0], [0.15, 0.35, 0.35, 0.15], [10, 40, 150, 300]
REF_M = 1000.0
FEATURES = 3  # age, income, city: the Bonferroni family

# The online replica of the same model beside it: age exactly as its reference, per minute.
ONLINE_AGE = [25, 25, 25, 25]


# alert_cases.py beside this file (a script folder, not a package): its Case builder
sys.path.insert(0, str(Path(__file__).parent))
import alert_cases as C  # noqa: E402

_const = C._const


def _pushed_histogram(case: Any, h: Histogram, at: dict[str, str], edges: list[float],
                      ref: list[float], counts: list[int]) -> None:
    """A pushed histogram: constant cumulative buckets and its reference gauges."""
    les = [floatToGoString(e) for e in edges] + ["+Inf"]
    cumulative = np.cumsum(counts)
    ref_cumulative = np.cumsum(ref)
    for i, le in enumerate(les):
        b = at | {"le": le}
        case.add(f"{h.metric}_bucket", b, _const(float(cumulative[i])))
        case.add(h.reference.bins.name, b, _const(ref[i]))
        case.add(h.reference.cumulative.name, b, _const(float(ref_cumulative[i])))
        if i:
            case.add(h.reference.previous_le.name, b | {"previous_le": les[i - 1]}, _const(1.0))


def _batch_group(case: Any, at: dict[str, str], start: float = 0.0,
                 success: str | None = None) -> None:
    """The series of one pushed successful run (`success`: the run_success values, when the
    case changes them)."""
    _pushed_histogram(case, FEATURE_HIST, at | {"feature": "age"}, AGE_EDGES, AGE_REF, AGE)
    _pushed_histogram(case, FEATURE_HIST, at | {"feature": "income"}, INCOME_EDGES,
                      INCOME_REF, INCOME)
    for name, share in CITY_REF.items():
        c = at | {"feature": "city", "category": name}
        case.add(N.FEATURE_CATEGORY.sample, c, _const(float(CITY[name])))
        case.add(N.FEATURE_CATEGORY_REFERENCE_SHARE.name, c, _const(share))
    for feature in ("age", "income", "city"):
        f = at | {"feature": feature}
        case.add(N.FEATURE_REFERENCE_COUNT.name, f, _const(REF_M))
        case.add(N.FEATURE_REFERENCE_NULL_RATE.name, f, _const(0.0))
        case.add(N.FEATURE_MISSING.sample, f,
                 _const(float(CITY_MISSING if feature == "city" else 0)))
    _pushed_histogram(case, PREDICTION_HIST, at, PRED_EDGES, PRED_REF, PRED)
    case.add(N.REFERENCE_ROWS.name, at, _const(REF_M))
    case.add(N.OBSERVATIONS.sample, at, _const(float(ROWS)))
    case.add(N.COUNTERS_START.name, at, _const(start))
    case.add(N.MODEL_INFO.name, at | {"profile_sha": "abc"}, _const(1.0))
    case.add(N.BATCH_RUN_START.name, at, _const(start))
    case.add(N.BATCH_RUN_ROWS.name, at, _const(float(ROWS)))
    case.add(N.BATCH_RUN_SUCCESS.name, at, success or _const(1.0))
    case.add(N.BATCH_LAST_SUCCESS.name, at, _const(start + 60.0))


def _city() -> drift.Drift:
    return drift.categorical_drift(CITY, CITY_REF)


def _age_critical() -> float:
    return drift.ks_critical(sum(AGE), REF_M, ALPHA, tests=FEATURES)


def _drift_description(subject: str, d: drift.Drift, critical: float) -> str:
    return (f"{subject} in the latest batch of job {JOB} drifted: PSI {d.psi:.3f} "
            f"(floor {PSI_FLOOR}), KS {d.ks:.3f} > critical {critical:.3f} (alpha {ALPHA}), "
            f"n = {d.n}.")


def _equals(case: Any, expr: str, at: str, labels: dict[str, str], value: float) -> None:
    """Premise: `expr` is within 1e-9 of `value` (the difference also drops the rule's name)."""
    case.premise(f"abs({expr} - {value!r}) < bool 1e-9", at, labels)


def statistics() -> Any:
    """Every `:batch` drift statistic and critical value against exporter/drift.py, and the
    online replica's beside it unaffected by the batch."""
    case = C.Case("the :batch statistics equal exporter/drift.py; the online ones keep apart")
    _batch_group(case, PUSHED)
    online = case.replica(CHURN)
    case.histogram(FEATURE_HIST, online | {"feature": "age"}, AGE_EDGES, AGE_REF, ONLINE_AGE)
    case.add(N.FEATURE_REFERENCE_COUNT.name, online | {"feature": "age"}, _const(REF_M))
    case.add(N.OBSERVATIONS.sample, online, C._rising(100))
    expected = {
        "age": drift.binned_drift(AGE, AGE_REF),
        "income": drift.binned_drift(INCOME, INCOME_REF),
        "city": _city(),
    }
    at = "10m"
    b = N.BATCH
    for feature, d in expected.items():
        labels = GROUP | {"feature": feature}
        for stat, rule in N.FEATURE_STATS.items():
            if stat != "chi2" or d.chi2 is not None:
                _equals(case, f'{rule.at(b)}{{feature="{feature}"}}', at, labels,
                        getattr(d, stat))
        _equals(case, f'{N.FEATURE_SAMPLES.at(b)}{{feature="{feature}"}}', at, labels,
                float(d.n))
    criticals = {
        "age": _age_critical(),
        "income": drift.ks_critical(sum(INCOME), REF_M, ALPHA, tests=FEATURES),
        "city": drift.tv_critical(sum(CITY.values()), REF_M, ALPHA, categories=len(CITY_REF),
                                  tests=FEATURES),
    }
    for feature, critical in criticals.items():
        _equals(case, f'{N.FEATURE_KS_CRITICAL.at(b)}{{feature="{feature}"}}', at,
                GROUP | {"feature": feature}, critical)
    pred = drift.binned_drift(PRED, PRED_REF)
    for rule, value in ((N.PREDICTION_PSI, pred.psi), (N.PREDICTION_KS, pred.ks),
                        (N.PREDICTION_JS, pred.js), (N.PREDICTION_SAMPLES, float(pred.n)),
                        (N.PREDICTION_KS_CRITICAL, drift.ks_critical(pred.n, REF_M, ALPHA))):
        _equals(case, rule.at(b), at, GROUP, value)
    _equals(case, f'{N.FEATURE_MISSING_RATIO.at(b)}{{feature="city"}}', at,
            GROUP | {"feature": "city"}, CITY_MISSING / ROWS)
    # The service beside it: its age follows the reference, PSI exactly 0 over 5m and 1h,
    # and its 5m window holds its own 5 minutes of records, not the batch's 500.
    for window in ("5m", "1h"):
        _equals(case, f'{N.FEATURE_PSI.at(window)}{{feature="age"}}', at,
                CHURN | {"feature": "age"}, 0.0)
    _equals(case, N.OBSERVATIONS_INCREASE.at("5m"), at, CHURN, 500.0)
    _equals(case, f'{N.FEATURE_SAMPLES.at("5m")}{{feature="age"}}', at,
            CHURN | {"feature": "age"}, 500.0)
    case.checks.append({"eval_time": at, "alertname": "MlmonFeatureDrift", "exp_alerts": []})
    return case


def batch_alone_raises_no_online_alert() -> Any:
    # Without the online rules' batch_job="" selectors, the batch's constant counters would read
    # as a model with no traffic (rate 0) and too few records, and version 4 beside the
    # service's version 3 as two live versions.
    case = C.Case("a batch job's pushed series raise no alert meant for services")
    _batch_group(case, PUSHED | {"model_version": "4"})
    online = case.replica(CHURN)
    case.add(N.MODEL_INFO.name, online | {"profile_sha": "def"}, _const(1.0))
    case.add(N.OBSERVATIONS.sample, online, C._rising(200))
    case.add("up", {"instance": "a", "job": "mlmon"}, _const(1.0))
    for alert in ("MlmonThroughputZero", "MlmonNotEnoughData", "MlmonMultipleModelVersions",
                  "MlmonFeatureMissing"):
        case.checks.append({"eval_time": "30m", "alertname": alert, "exp_alerts": []})
    return case


def _alert(name: str, labels: dict[str, str], severity: str, summary: str,
           description: str) -> dict[str, Any]:
    return C._alert({"severity": severity, **labels}, summary, description, name)


def feature_drift() -> Any:
    case = C.Case("MlmonBatchFeatureDrift fires 5m after the batch is pushed, for age only")
    _batch_group(case, PUSHED)
    d = drift.binned_drift(AGE, AGE_REF)
    return case.expect("MlmonBatchFeatureDrift", "4m", "5m", [_alert(
        "MlmonBatchFeatureDrift", GROUP | {"feature": "age"}, "warning",
        "A feature of a batch job's latest batch has drifted from the training data.",
        _drift_description("Feature age of model churn version 3", d, _age_critical()))])


def prediction_drift() -> Any:
    case = C.Case("MlmonBatchPredictionDrift fires 5m after the batch is pushed")
    _batch_group(case, PUSHED)
    d = drift.binned_drift(PRED, PRED_REF)
    return case.expect("MlmonBatchPredictionDrift", "4m", "5m", [_alert(
        "MlmonBatchPredictionDrift", GROUP, "warning",
        "The predictions of a batch job's latest batch have drifted from the reference.",
        _drift_description("Predictions of model churn version 3", d,
                           drift.ks_critical(d.n, REF_M, ALPHA)))])


def data_quality() -> Any:
    case = C.Case("MlmonBatchDataQuality fires 5m after the batch for city's missing values")
    _batch_group(case, PUSHED)
    return case.expect("MlmonBatchDataQuality", "4m", "5m", [_alert(
        "MlmonBatchDataQuality", GROUP | {"feature": "city", "check": "missing"}, "warning",
        "A feature of a batch job's latest batch fails a data-quality check.",
        f"Feature city of model churn version 3 in the latest batch of job {JOB}: missing at "
        "20% (thresholds of the services' quality alerts: MlmonFeatureMissing, "
        "MlmonInvalidValuesRising, MlmonUnseenCategoriesRising, MlmonTextOOVRising).")])


def job_failed() -> Any:
    # Version 3's run succeeds at 0 and its next run fails at 10m (POST: outcome 0, start 600).
    # Version 2's group, left from an older run that failed, is not the job's latest: silent.
    case = C.Case("MlmonBatchJobFailed fires at the failed run of the job's latest version only")
    _batch_group(case, PUSHED, success=f"1+0x9 0+0x{C.MINUTES - 10}")
    old = PUSHED | {"model_version": "2"}
    case.add(N.BATCH_RUN_START.name, old, _const(-86400.0))
    case.add(N.BATCH_RUN_SUCCESS.name, old, _const(0.0))
    case.add(N.BATCH_RUN_ROWS.name, old, _const(7.0))
    for i, series in enumerate(case.series):
        if series[0].startswith(N.BATCH_RUN_START.name + "{") and '"3"' in series[0]:
            case.series[i] = (series[0], f"0+0x9 600+0x{C.MINUTES - 10}")
    return case.expect("MlmonBatchJobFailed", "9m", "10m", [_alert(
        "MlmonBatchJobFailed", GROUP, "critical", "The latest run of a batch job failed.",
        f"The latest run of batch job {JOB} (model churn version 3) failed after scoring "
        f"{ROWS} rows.")])


def job_missed() -> Any:
    # The last success ended 93000s before the test's start; the schedule allows 26h = 93600s:
    # at 10m exactly 26h have passed (not more, silent), at 11m 26h 1m (fires). Starting 26h
    # late keeps promtool from evaluating a day of rules. A job without a schedule never alerts.
    case = C.Case("MlmonBatchJobMissed fires once 26h passed since the last success")
    for job in (JOB, "adhoc"):
        at = PUSHED | {N.BATCH_LABEL: job}
        case.add(N.BATCH_LAST_SUCCESS.name, at, _const(-93000.0))
        case.add(N.BATCH_RUN_START.name, at, _const(-93060.0))
    return case.expect("MlmonBatchJobMissed", "10m", "11m", [_alert(
        "MlmonBatchJobMissed", {N.BATCH_LABEL: JOB}, "critical",
        "A batch job has not succeeded within its schedule.",
        f"Batch job {JOB} last succeeded 1d 2h 1m 0s ago, longer than its schedule allows "
        "(alerting/config.yaml schedules).")])


CASES = (statistics, batch_alone_raises_no_online_alert, feature_drift, prediction_drift,
         data_quality, job_failed, job_missed)


def render() -> str:
    return C.render("# GENERATED by prometheus/tests/batch_cases.py: the :batch rules and batch "
                    "alerts.", CASES)


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
