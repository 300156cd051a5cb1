"""Realized performance alerts, from labels: worse than the profile's baseline, the label
feed stopped, and predictions outside the allowed range."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.alerts_base import AlertBuilder, at_least, baseline
from mlmon.alerting.alerts_text import WHERE, lookup, num, pct
from mlmon.alerting.render import Group
from mlmon.names import MODEL_LABELS


def _as_metric(metric: str, expr: str) -> str:
    """`expr` labelled metric=`metric`, so one alert tells which metric fell behind."""
    return f'  label_replace(\n{q.indent(expr, 4)},\n    "metric", "{metric}", "", ""\n  )'


def group(a: AlertBuilder) -> Group:
    perf = a.c.alert("MlmonPerformanceBelowBaseline")
    stopped = a.c.alert("MlmonLabelsStopped")
    out = a.c.alert("MlmonPredictionOutOfRange")
    w, sw, lw, ow = perf["window"], stopped["window"], stopped["lookback"], out["window"]
    on = f"on ({q.by(MODEL_LABELS)})"
    metric_labels = (*MODEL_LABELS, "metric")
    live = f"max by ({q.by(MODEL_LABELS)}) ({a.latest(N.MODEL_INFO.name)})"
    accuracy = a.beyond_reference(N.OUTCOME_ACCURACY.at(w), "<", baseline("accuracy"),
                                  f"- {perf['accuracy_drop']}", MODEL_LABELS)
    mae = a.beyond_reference(N.OUTCOME_MAE.at(w), ">", baseline("mae"),
                             f"* (1 + {perf['mae_increase']})", MODEL_LABELS)
    return Group(
        "mlmon.alerts.performance",
        "Realized performance from labels, the label feed, unreasonable outputs.", (
            a.rule(
                "MlmonPerformanceBelowBaseline",
                f"(\n{_as_metric('accuracy', accuracy)}\n  or\n{_as_metric('mae', mae)}\n)\n"
                + at_least(N.OUTCOME_LABELLED.at(w), perf['min_labelled'], MODEL_LABELS),
                "Realized model performance is worse than its baseline.",
                f"Model {WHERE}: {{{{ $labels.metric }}}} {num()} over the labels of the last "
                f"{w}, baseline {lookup(N.BASELINE.name, metric_labels)} (accuracy drop "
                f"allowed {perf['accuracy_drop']}, MAE increase {perf['mae_increase']}), "
                f"n = {lookup(N.OUTCOME_LABELLED.at(w), MODEL_LABELS, '%.0f')} labels.",
                "The outcome the proxies (drift, data quality) stand in for: labels show the "
                "model is wrong more often than on the reference data. Fires under concept "
                "drift, when the inputs look normal. Needs min_labelled labels in the window."),
            a.rule(
                "MlmonLabelsStopped",
                f"(\n  {N.OUTCOME_LABELLED.at(lw)} > 0\n  unless {on}\n"
                f"  {N.OUTCOME_LABELLED.at(sw)} > 0\n)\nand {on}\n{live}",
                "Labels stopped arriving for a model that had them.",
                f"Model {WHERE} got {num(fmt='%.0f')} labels in the last {lw} but none in the "
                f"last {sw}: realized performance cannot be judged.",
                "A label feed that stops (a failed nightly export, a broken join) silently "
                "freezes every realized metric; only live versions (mlmon_model_info) count."),
            a.rule(
                "MlmonPredictionOutOfRange",
                f'{N.PREDICTION_INVALID_INCREASE.at(ow)}{{reason="{N.OUT_OF_RANGE}"}}\n'
                f"/ ignoring (reason) group_left ()\n({N.OBSERVATIONS_INCREASE.at(ow)} > 0)\n"
                f"> {out['max_ratio']}",
                "The model produces predictions outside the allowed range.",
                f"Model {WHERE}: {pct()} of records over the last {ow} had a prediction "
                f"outside the profile's allowed range (threshold {out['max_ratio']}).",
                "Outputs that should never happen (a negative price): the profile's allowed "
                "prediction range, from the reference or set with --prediction-range."),
        ))
