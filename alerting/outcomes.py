"""Recording rules of realized performance: labels joined to predictions, pooled over replicas.

One group per outcome window (alerting/config.yaml `outcome_windows`, apart from the drift
windows: labels arrive late and in bursts). Every count is the restart-aware window count of
alerting/promql.py summed over replicas, so a service's replicas and the outcomes CLI's pushed
runs (each a Pushgateway group with its own `mlmon_counters_start_timestamp_seconds`: a
process that started inside the window) pool into one number per model and version. A window
counts the labels that ARRIVED in it, whenever their predictions were made.

`confusion_rules` turns any counter shaped like a confusion matrix (labels predicted_class,
actual_class) into accuracy and per-class precision and recall; it serves the realized counts
here and any other matrix (e.g. expected counts from calibrated scores) under names of its own:

    names = ConfusionNames(matrix=RuleName("model_predicted_class_actual_class",
                                           "mlmon_estimated_outcome_class", "increase"),
                           accuracy=..., precision=..., recall=...)
    rules = confusion_rules("mlmon_estimated_outcome_class_total", names, config, "1h")

Every ratio is absent, not NaN, over an empty window (a denominator filtered by `> 0`).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.config import Config, duration_seconds
from mlmon.alerting.render import Group, Rule
from mlmon.names import MODEL_LABELS, RuleName

MODEL = MODEL_LABELS
PREDICTED, ACTUAL, CLASS = "predicted_class", "actual_class", "class"

# The regression sums behind MAE, RMSE and the bias, pooled over replicas.
ERROR_COUNT = RuleName("model", N.OUTCOME_ERROR.count, "increase")
ERROR_SUM = RuleName("model", N.OUTCOME_ERROR.sum, "increase")
ABSOLUTE_ERROR = RuleName("model", N.OUTCOME_ABSOLUTE_ERROR.name, "increase")
SQUARED_ERROR = RuleName("model", N.OUTCOME_SQUARED_ERROR.name, "increase")
LABEL_DELAY_BUCKETS = RuleName("model_le", N.OUTCOME_LABEL_DELAY.bucket, "increase")
REJECTED = RuleName("model_reason", N.OUTCOME_REJECTED.name, "increase")


@dataclass(frozen=True)
class ConfusionNames:
    """The rule names `confusion_rules` records for one confusion-matrix-shaped counter.

    `matrix` (level model_predicted_class_actual_class) names the pooled matrix; the per-class
    counts behind precision and recall derive from its metric (`per_class`). `total`, when
    given, also records the matrix's sum per model.
    """

    matrix: RuleName
    accuracy: RuleName
    precision: RuleName
    recall: RuleName
    total: RuleName | None = None

    def per_class(self, what: str) -> RuleName:
        """model_class:<matrix metric>_<what>:increase<w>: predicted, actual, correct."""
        return RuleName("model_class", f"{self.matrix.metric}_{what}", "increase")


OUTCOME_CONFUSION = ConfusionNames(N.OUTCOME_CLASS_INCREASE, N.OUTCOME_ACCURACY,
                                   N.OUTCOME_PRECISION, N.OUTCOME_RECALL)


def _summed(config: Config, window: str, metric: str, group: tuple[str, ...],
            extra: tuple[str, ...], counter: bool = True) -> str:
    return q.summed_window_count(metric, window, duration_seconds(window),
                                 duration_seconds(config.restart_grace), group, extra, counter)


def _by_class(expr: str, label: str) -> str:
    """`expr`'s values summed per class, the class read from `label`."""
    return (f"sum by ({q.by((*MODEL, CLASS))}) (\n  label_replace(\n{q.indent(expr, 4)},\n"
            f'    "{CLASS}", "$1", "{label}", "(.*)"\n  )\n)')


def confusion_rules(counter: str, names: ConfusionNames, config: Config, window: str,
                    what: str = "labelled predictions") -> list[Rule]:
    """Pooled matrix, per-class counts, accuracy, precision and recall of `counter` over
    `window`.

    `counter` is the sample name PromQL selects (`..._total`), with labels predicted_class and
    actual_class beside model and model_version; its increments may be fractional. A pair of
    `__unseen__` classes (values outside the profile) is never counted correct: two unseen
    values need not be equal, so accuracy errs low rather than high; `__unseen__` gets no
    precision or recall of its own.
    """
    w = window
    matrix = names.matrix.at(w)
    predicted, actual = names.per_class("predicted").at(w), names.per_class("actual").at(w)
    correct = names.per_class("correct").at(w)
    known = f'{{{PREDICTED}!="{N.UNSEEN_CLASS}"}}'
    diagonal = (f"{matrix}\nand on ({q.by((*MODEL, PREDICTED, ACTUAL))})\n"
                f"label_replace(\n  group by ({q.by((*MODEL, PREDICTED))}) ({matrix}{known}),\n"
                f'  "{ACTUAL}", "$1", "{PREDICTED}", "(.*)"\n)')
    total = f"sum by ({q.by(MODEL)}) ({matrix})"
    rules = [
        Rule(matrix, _summed(config, w, counter, (*MODEL, PREDICTED, ACTUAL), (PREDICTED, ACTUAL)),
             f"The confusion matrix of {what} over {w}, pooled over replicas (restart-aware "
             "window counts): the base of accuracy, precision and recall."),
        Rule(predicted, _by_class(matrix, PREDICTED),
             f"{what.capitalize()} per predicted class over {w} (precision's denominator)."),
        Rule(actual, _by_class(matrix, ACTUAL),
             f"{what.capitalize()} per actual class over {w} (recall's denominator, the support)."),
        Rule(correct,
             f"{_by_class(diagonal, PREDICTED)}\nor\n0 * {predicted}\nor\n"
             f"0 * {actual}",
             f"Correct {what} per class over {w}: the matrix's diagonal (0 for a class that "
             f"appears only off it; never for `{N.UNSEEN_CLASS}`)."),
    ]
    if names.total is not None:
        rules.append(Rule(names.total.at(w), total,
                          f"{what.capitalize()} over {w}, pooled over replicas."))
        total = names.total.at(w)
    class_known = f'{{{CLASS}!="{N.UNSEEN_CLASS}"}}'
    rules += [
        Rule(names.accuracy.at(w),
             f"sum by ({q.by(MODEL)}) ({correct})\n/\n({total} > 0)",
             f"Headline: accuracy of {what} over {w}, the matrix's diagonal over its sum; absent "
             "for an empty window."),
        Rule(names.precision.at(w), f"{correct}{class_known}\n/\n({predicted} > 0)",
             f"Precision per class (label `class`) of {what} over {w}: correct / predicted as "
             "the class; absent for a class not predicted in the window."),
        Rule(names.recall.at(w), f"{correct}{class_known}\n/\n({actual} > 0)",
             f"Recall per class (label `class`) of {what} over {w}: correct / actually of the "
             "class; absent for a class absent from the window's labels."),
    ]
    return rules


def _regression_rules(config: Config, w: str) -> list[Rule]:
    n = f"({ERROR_COUNT.at(w)} > 0)"
    return [
        Rule(ERROR_COUNT.at(w), _summed(config, w, N.OUTCOME_ERROR.count, MODEL, ()),
             f"Labelled regression predictions over {w}, pooled over replicas."),
        Rule(ERROR_SUM.at(w),
             _summed(config, w, N.OUTCOME_ERROR.sum, MODEL, (), counter=False),
             f"Sum of errors (prediction - actual) over {w} (a histogram's `_sum` may go down: "
             "delta, not increase, when no exact count exists)."),
        Rule(ABSOLUTE_ERROR.at(w), _summed(config, w, N.OUTCOME_ABSOLUTE_ERROR.sample, MODEL, ()),
             f"Sum of absolute errors over {w}."),
        Rule(SQUARED_ERROR.at(w), _summed(config, w, N.OUTCOME_SQUARED_ERROR.sample, MODEL, ()),
             f"Sum of squared errors over {w}."),
        Rule(N.OUTCOME_MAE.at(w), f"{ABSOLUTE_ERROR.at(w)}\n/\n{n}",
             f"Headline: mean absolute error of labelled regression predictions over {w}."),
        Rule(N.OUTCOME_RMSE.at(w), f"sqrt(\n  {SQUARED_ERROR.at(w)}\n  /\n  {n}\n)",
             f"Headline: root mean squared error of labelled regression predictions over {w}."),
        Rule(N.OUTCOME_BIAS.at(w), f"{ERROR_SUM.at(w)}\n/\n{n}",
             f"Mean error (prediction - actual) over {w}: > 0 the model overestimates."),
    ]


def outcome_group(config: Config, w: str) -> Group:
    """The realized-performance rules of one outcome window."""
    buckets = LABEL_DELAY_BUCKETS.at(w)
    rules = [
        *confusion_rules(N.OUTCOME_CLASS.sample, OUTCOME_CONFUSION, config, w),
        *_regression_rules(config, w),
        Rule(N.OUTCOME_LABELLED.at(w),
             f"sum by ({q.by(MODEL)}) ({N.OUTCOME_CLASS_INCREASE.at(w)})\nor\n"
             f"{ERROR_COUNT.at(w)}",
             f"Headline: labels counted over {w} (as the counters moved; classifier: the "
             "matrix's sum; regression: the errors' count)."),
        Rule(buckets, _summed(config, w, N.OUTCOME_LABEL_DELAY.bucket, (*MODEL, "le"), ("le",)),
             f"Label delay (prediction to label arrival) histogram over {w}, pooled."),
        Rule(N.OUTCOME_LABEL_DELAY_MEDIAN.at(w),
             f"histogram_quantile(0.5, {buckets})\nand\n"
             f'(sum without (le) ({buckets}{{le="+Inf"}}) > 0)',
             f"Median label delay of the labels counted over {w}, interpolated in the "
             "bins; absent without labels."),
        Rule(REJECTED.at(w),
             _summed(config, w, N.OUTCOME_REJECTED.sample, (*MODEL, "reason"), ("reason",)),
             f"Labels not counted over {w}, by reason (unknown id, duplicate, wrong type, ...)."),
    ]
    return Group(f"mlmon.outcomes.{w}",
                 f"Realized performance of the labels counted over {w} (evaluated every "
                 f"{config.outcome_evaluation_interval}: labels arrive in bursts, and each "
                 "evaluation reads the whole window).", tuple(rules),
                 interval=config.outcome_evaluation_interval)


def outcome_groups(config: Config) -> list[Group]:
    """One group per outcome window, shortest first."""
    return [outcome_group(config, w) for w in config.outcome_windows]
