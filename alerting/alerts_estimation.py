"""Estimated performance alerts, before any label: the accuracy the model's calibrated scores
predict (alerting/estimation.py's rules) below the profile's baseline."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder, at_least, baseline
from mlmon.alerting.alerts_text import WHERE, lookup, num
from mlmon.alerting.render import Group
from mlmon.names import MODEL_LABELS


def group(a: AlertBuilder) -> Group:
    est = a.c.alert("MlmonEstimatedPerformanceBelowBaseline")
    w = est["window"]
    baseline_value = lookup(N.BASELINE.name, MODEL_LABELS, extra=', metric="accuracy"')
    return Group("mlmon.alerts.estimation", "Estimated performance from calibrated scores.", (
        a.rule(
            "MlmonEstimatedPerformanceBelowBaseline",
            a.beyond_reference(N.ESTIMATED_ACCURACY.at(w), "<", baseline("accuracy"),
                               f"- {est['accuracy_drop']}", MODEL_LABELS)
            + "\n" + at_least(N.ESTIMATED_SAMPLES.at(w), est['min_scored'], MODEL_LABELS),
            "Estimated model accuracy is below its baseline.",
            f"Model {WHERE}: estimated accuracy {num()} over the scored predictions of "
            f"the last {w}, baseline {baseline_value} (drop allowed {est['accuracy_drop']}), "
            f"n = {lookup(N.ESTIMATED_SAMPLES.at(w), MODEL_LABELS, '%.0f')} predictions.",
            "Before any label: the model's calibrated confidence says it is right less often "
            "than on the reference, because the inputs moved to where it is unsure "
            "(covariate shift). Blind to concept drift: only labels show that."),
    ))
