"""Batch job alerts: the services' drift and quality tests on the `:batch` rules, plus the
run's outcome and schedule. Each reads only a job's most recent run (BATCH_LATEST_RUN), with
the thresholds of the services' alerts (alerting/alerts_drift.py, alerts_quality.py)."""

from __future__ import annotations

import json

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.alerts_base import AlertBuilder, at_least
from mlmon.alerting.alerts_drift import FEATURE_DRIFT, PREDICTION_DRIFT
from mlmon.alerting.alerts_text import WHERE, lookup, pct
from mlmon.alerting.config import duration_seconds
from mlmon.alerting.render import Group, Rule
from mlmon.names import BATCH_LABEL, BATCH_LABELS

BATCH_FEATURE = (*BATCH_LABELS, "feature")
_JOB = "{{ $labels.batch_job }}"
_BATCH_WHERE = WHERE + " in the latest batch of job " + _JOB


def _latest_run(expr: str) -> str:
    """`expr` only on the series of each job's most recent run."""
    return f"{expr}\nand on ({q.by(BATCH_LABELS)})\n{N.BATCH_LATEST_RUN.at(N.BATCH)}"


def _of_job(metric: str, job: str) -> str:
    """`metric{batch_job="job"}`; json.dumps quotes the name as a PromQL string literal."""
    return f"{metric}{{{BATCH_LABEL}={json.dumps(job)}}}"


def _drift(a: AlertBuilder) -> list[Rule]:
    b = N.BATCH
    f, p = a.c.alert("MlmonFeatureDrift"), a.c.alert("MlmonPredictionDrift")
    return [
        a.rule(
            "MlmonBatchFeatureDrift",
            _latest_run(FEATURE_DRIFT.condition(b, f["psi_floor"], a.min)),
            "A feature of a batch job's latest batch has drifted from the training data.",
            f"Feature {{{{ $labels.feature }}}} of model {_BATCH_WHERE} drifted: "
            + FEATURE_DRIFT.evidence(BATCH_FEATURE, b, f["psi_floor"], f["alpha"]) + ".",
            "The services' drift test (MlmonFeatureDrift: KS above its Bonferroni critical "
            "value and PSI above the floor) on the latest pushed batch of the job."),
        a.rule(
            "MlmonBatchPredictionDrift",
            _latest_run(PREDICTION_DRIFT.condition(b, p["psi_floor"], a.min)),
            "The predictions of a batch job's latest batch have drifted from the reference.",
            f"Predictions of model {_BATCH_WHERE} drifted: "
            + PREDICTION_DRIFT.evidence(BATCH_LABELS, b, p["psi_floor"], p["alpha"]) + ".",
            "The services' prediction drift test on the latest pushed batch of the job."),
    ]


def _quality(a: AlertBuilder) -> Rule:
    b = N.BATCH
    miss = a.c.alert("MlmonFeatureMissing")
    unseen = a.c.alert("MlmonUnseenCategoriesRising")
    invalid = a.c.alert("MlmonInvalidValuesRising")
    oov = a.c.alert("MlmonTextOOVRising")
    reasons = "|".join(invalid["reasons"])
    checks = {
        "missing": a.beyond_reference(N.FEATURE_MISSING_RATIO.at(b), ">",
                                      N.FEATURE_REFERENCE_NULL_RATE.name,
                                      f"+ {miss['max_increase']}", BATCH_FEATURE, q.pushed),
        "invalid": (f"sum without (reason) ({N.FEATURE_INVALID_RATIO.at(b)}"
                    f'{{reason=~"{reasons}"}}) > {invalid["max_ratio"]}'),
        "unseen": f"{N.FEATURE_UNSEEN_SHARE.at(b)} > {unseen['max_share']}",
        "oov": a.beyond_reference(N.FEATURE_TEXT_OOV_RATIO.at(b), ">",
                                  N.FEATURE_TEXT_REFERENCE_OOV_RATE.name,
                                  f"+ {oov['max_increase']}", BATCH_FEATURE, q.pushed),
    }
    failing = "\nor\n".join(f'label_replace(\n{q.indent(expr, 2)},\n  "check", "{name}", '
                             '"", ""\n)' for name, expr in checks.items())
    return a.rule(
        "MlmonBatchDataQuality",
        _latest_run(f"(\n{failing}\n)\n" + at_least(N.OBSERVATIONS_INCREASE.at(b), a.min,
                                                     BATCH_LABELS)),
        "A feature of a batch job's latest batch fails a data-quality check.",
        f"Feature {{{{ $labels.feature }}}} of model {_BATCH_WHERE}: "
        "{{ $labels.check }} at " + pct() + " (thresholds of the services' quality "
        "alerts: MlmonFeatureMissing, MlmonInvalidValuesRising, "
        "MlmonUnseenCategoriesRising, MlmonTextOOVRising).",
        "The services' four quality checks on the latest pushed batch, one alert per "
        "feature and failing check (label `check`), with the services' thresholds.")


def _runs(a: AlertBuilder) -> list[Rule]:
    missed = a.c.alert("MlmonBatchJobMissed")
    rows = lookup(N.BATCH_RUN_ROWS.name, BATCH_LABELS, "%.0f")
    overdue = "\nor\n".join(
        f"time() - {a.pushed(_of_job(N.BATCH_LAST_SUCCESS.name, job), (BATCH_LABEL,))}"
        f" > {duration_seconds(limit)}"
        for job, limit in sorted(missed["schedules"].items())) or "vector(0) < 0"
    return [
        a.rule(
            "MlmonBatchJobFailed",
            _latest_run(f"{a.pushed(N.BATCH_RUN_SUCCESS.name)} == 0"),
            "The latest run of a batch job failed.",
            f"The latest run of batch job {_JOB} (model {WHERE}) failed after scoring "
            f"{rows} rows.",
            "The job pushed outcome 0 (an exception in the job, or `mlmon batch` could not "
            "read its file); the drift statistics still describe its last successful run."),
        a.rule(
            "MlmonBatchJobMissed",
            overdue,
            "A batch job has not succeeded within its schedule.",
            f"Batch job {_JOB} last succeeded "
            "{{ humanizeDuration $value }} ago, longer than its schedule allows "
            "(alerting/config.yaml schedules).",
            "From the job's last-success time, over all its model versions: the job did "
            "not run, failed, or its pushes do not reach the Pushgateway."),
    ]


def group(a: AlertBuilder) -> Group:
    return Group("mlmon.alerts.batch", "Batch jobs: drift, data quality, failed and missed runs.",
                 (*_drift(a), _quality(a), *_runs(a)))
