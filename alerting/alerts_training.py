"""Training pipeline alerts: a failed run, a job late on its schedule, and a trained model
that never reached production. Runs are pushed to the Pushgateway (`mlmon training-run`)."""

from __future__ import annotations

import json

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import selector
from mlmon.alerting.config import duration_seconds
from mlmon.alerting.render import Group


def group(a: AlertBuilder) -> Group:
    undeployed = a.c.alert("MlmonTrainedModelNotDeployed")
    hours = undeployed["max_undeployed_hours"]
    late = a.c.alert("MlmonTrainingLate")["schedules"]
    newest = a.latest(N.TRAINING_MODEL_TRAINED.name)
    live = f"max by (model) ({a.latest(N.MODEL_TRAINED.name)})"
    # Per configured job: the age of its last success, or 1 when it has none at all.
    overdue = "\nor\n".join(
        f"(time() - max by (job, model) "
        f"({a.latest(f'{N.TRAINING_LAST_SUCCESS.name}{{job={json.dumps(job)}}}')}))"
        f" > {duration_seconds(schedule)}\n"
        f"or absent({N.TRAINING_LAST_SUCCESS.name}{{job={json.dumps(job)}}})"
        for job, schedule in sorted(late.items())) or "vector(0) < 0"
    failed_at = ("{{ with " + selector(N.TRAINING_RUN_TIMESTAMP.name, ("job", "model"))
                 + " | query }}{{ . | first | value | humanizeTimestamp }}"
                 "{{ else }}n/a{{ end }}")
    schedule = "".join(f"{{{{ if eq $labels.job {json.dumps(job)} }}}}{duration}{{{{ end }}}}"
                       for job, duration in sorted(late.items()))
    return Group("mlmon.alerts.training", "Training pipelines: failed, late, never deployed.", (
        a.rule(
            "MlmonTrainedModelNotDeployed",
            f"{newest}\n> on (model) group_left\n{live}\n"
            f"and\n(time() - {newest}) > {int(hours) * 3600}",
            "A newer trained model has not been deployed.",
            "Model {{ $labels.model }} version {{ $labels.model_version }} (job "
            "{{ $labels.job }}, trained {{ $value | humanizeTimestamp }}) is newer than "
            f"every live version and has waited more than {hours}h to be deployed.",
            "The training pipeline produced a model that never reached production: a "
            "stuck deployment, or a model rejected without anyone saying so."),
        a.rule(
            "MlmonTrainingFailed",
            f"{a.latest(N.TRAINING_RUN_SUCCESS.name)} == 0",
            "A training run failed.",
            "The last run of training job {{ $labels.job }} for model "
            "{{ $labels.model }} failed (ended " + failed_at + ").",
            "A failed (re)training: the live model keeps aging until a run succeeds."),
        a.rule(
            "MlmonTrainingLate",
            overdue,
            "A training job has not succeeded within its schedule.",
            "{{ if $labels.model }}Training job {{ $labels.job }} last succeeded for model "
            "{{ $labels.model }} {{ humanizeDuration $value }} ago (schedule "
            + schedule + "){{ else }}Training job {{ $labels.job }} has no successful run "
            "recorded{{ end }}.",
            "A retraining that did not run or keeps failing (schedules in "
            "alerting/config.yaml); absent: nothing was ever pushed for the job."),
    ))
