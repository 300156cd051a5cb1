"""Model performance: what the labels say, once they arrive, against the reference baseline.

Realized accuracy (classifiers) or MAE, RMSE and bias (regression) per outcome window, the
profile's baseline beside them with the line MlmonPerformanceBelowBaseline alerts at, per-class
precision and recall, how many labels arrived (and were rejected), and how late. Built on the
realized-performance rules (alerting/outcomes.py, windows `outcome_windows` in
alerting/config.yaml). A model is a classifier or a regression model: the other kind's panels
stay empty.

Rows are a list (ROWS): a new kind of performance (estimated from scores, a challenger beside
the champion) is one more row appended there; the estimated row (ESTIMATED) shows what the
calibrated scores expect before labels arrive, beside the realized accuracy; the challenger rows
(CHALLENGER, SHADOW_DETAIL) show a challenger in shadow mode beside the champion.
"""

from panels import (
    FULL_WIDTH,
    MODEL,
    RED,
    alert_config,
    dashboard,
    layout,
    q,
    ref_id,
    span,
    stat,
    steps,
    table,
    timeseries,
    version_annotation,
)

import mlmon.names as N
from mlmon.alerting.outcomes import OUTCOME_CONFUSION, REJECTED

config = alert_config()
WINDOWS = config.outcome_windows
PERF = config.alert("MlmonPerformanceBelowBaseline")
W = PERF["window"]  # the window the performance alert judges
OUT_OF_RANGE = config.alert("MlmonPredictionOutOfRange")


def rule(name: str, extra: str = "") -> str:
    """`name` for the selected model and versions; `extra`: more matchers."""
    return f"{name}{{{MODEL}{', ' + extra if extra else ''}}}"


def baseline(metric: str) -> str:
    """The profile's baseline `metric`, one series per version (every replica exports it)."""
    return (f"max by (model, model_version) "
            f'({N.BASELINE.name}{{{MODEL}, metric="{metric}"}})')


def per_window(rule_name: N.RuleName, label: str) -> list:
    """One target per outcome window, refIds A, B, ..."""
    return [q(rule(rule_name.at(w)), f"{label} {w} {{{{model_version}}}}", ref_id(i))
            for i, w in enumerate(WINDOWS)]


def with_baseline(targets: list, metric: str, alert_at: str) -> list:
    """`targets`, then the baseline and the level the performance alert fires beyond."""
    n = len(targets)
    return [*targets,
            q(baseline(metric), "baseline {{model_version}}", ref_id(n)),
            q(alert_at, "alert line {{model_version}}", ref_id(n + 1))]


ACCURACY_LINE = f"{baseline('accuracy')} - {PERF['accuracy_drop']}"
MAE_LINE = f"{baseline('mae')} * (1 + {PERF['mae_increase']})"
LABELLED_W = rule(N.OUTCOME_LABELLED.at(W))
OUT_OF_RANGE_COUNT = rule(N.PREDICTION_INVALID_INCREASE.at(OUT_OF_RANGE["window"]),
                          f'reason="{N.OUT_OF_RANGE}"')
ENOUGH = steps((PERF["min_labelled"], "green"))
ENOUGH[0]["color"] = RED  # below min_labelled the alert cannot judge

SUMMARY = [
    (stat(f"Accuracy (last {span(W)}) and baseline", [
        q(f"max({rule(N.OUTCOME_ACCURACY.at(W))})", "realized", "A"),
        q(f"max({baseline('accuracy')})", "baseline", "B")], unit="percentunit",
        description="Classifiers: share of labelled predictions that were right."), 6),
    (stat(f"MAE (last {span(W)}) and baseline", [
        q(f"max({rule(N.OUTCOME_MAE.at(W))})", "realized", "A"),
        q(f"max({baseline('mae')})", "baseline", "B")],
        description="Regression: mean absolute error of labelled predictions."), 6),
    (stat(f"Labels (last {span(W)})", [q(f"sum({LABELLED_W})", "labelled")],
          thresholds=ENOUGH,
          description=f"Red below {PERF['min_labelled']}: too few labels for the performance "
                      "alert to judge."), 6),
    (stat(f"Median label delay (last {span(W)})",
          [q(f"max({rule(N.OUTCOME_LABEL_DELAY_MEDIAN.at(W))})", "median")], unit="s",
          description="Time from prediction to label arrival."), 6),
]

REALIZED = [
    (timeseries("Accuracy: realized vs baseline",
                with_baseline(per_window(N.OUTCOME_ACCURACY, "accuracy"), "accuracy",
                              ACCURACY_LINE), unit="percentunit",
                description="Each outcome window counts the labels that arrived in it. The "
                            "alert line is baseline - accuracy_drop (alerting/config.yaml)."),
     12),
    (timeseries("MAE: realized vs baseline",
                with_baseline(per_window(N.OUTCOME_MAE, "MAE"), "mae", MAE_LINE),
                description="The alert line is baseline * (1 + mae_increase)."), 12),
]

DETAIL = [
    (table(f"Precision and recall per class (last {span(W)})", [
        q(rule(N.OUTCOME_PRECISION.at(W)), "precision", "A", instant=True, table=True),
        q(rule(N.OUTCOME_RECALL.at(W)), "recall", "B", instant=True, table=True),
        q(rule(OUTCOME_CONFUSION.per_class("actual").at(W)), "labels (support)", "C",
          instant=True, table=True),
        q(rule(OUTCOME_CONFUSION.per_class("predicted").at(W)), "predicted", "D",
          instant=True, table=True)],
        description="Which class broke: precision = right among those predicted as the "
                    "class, recall = found among those that were the class.",
        hide=("Time", "__name__")), 12),
    (timeseries("RMSE and bias",
                [*per_window(N.OUTCOME_RMSE, "RMSE"),
                 *[q(rule(N.OUTCOME_BIAS.at(w)), f"bias {w} {{{{model_version}}}}",
                     ref_id(len(WINDOWS) + i)) for i, w in enumerate(WINDOWS)],
                 q(baseline("rmse"), "baseline RMSE {{model_version}}",
                   ref_id(2 * len(WINDOWS)))],
                description="Regression. Bias is the mean error (prediction - actual): above "
                            "0 the model overestimates."), 12),
]

VOLUME = [
    (timeseries("Labelled volume", [
        *per_window(N.OUTCOME_LABELLED, "labelled"),
        q(f"sum by (model_version, reason) ({rule(REJECTED.at(WINDOWS[0]))})",
          f"rejected {WINDOWS[0]} {{{{reason}}}} {{{{model_version}}}}", ref_id(len(WINDOWS)))],
        description="Labels counted per outcome window, and labels not counted (unknown id, "
                    "duplicate, wrong type, ...)."), 8),
    (timeseries("Median label delay", per_window(N.OUTCOME_LABEL_DELAY_MEDIAN, "median"),
                unit="s", description="Time from prediction to label arrival, median of the "
                                      "labels that arrived in each window."), 8),
    (timeseries(f"Predictions out of range ({OUT_OF_RANGE['window']})", [
        q(f"sum by (model_version) ({OUT_OF_RANGE_COUNT})", "out of range {{model_version}}")],
        description="Predictions outside the profile's allowed range "
                    "(MlmonPredictionOutOfRange)."), 8),
]

# Estimated performance (alerting/estimation.py): from calibrated scores, before any label, over
# the drift windows; the estimated alert judges EST_W.
EST = config.alert("MlmonEstimatedPerformanceBelowBaseline")
EST_W = EST["window"]
ESTIMATED_ACCURACY_LINE = f"{baseline('accuracy')} - {EST['accuracy_drop']}"
SCORED = steps((EST["min_scored"], "green"))
SCORED[0]["color"] = RED  # below min_scored the estimated alert cannot judge

ESTIMATED = [
    (timeseries("Accuracy: estimated (before labels) vs realized vs baseline", [
        *[q(rule(N.ESTIMATED_ACCURACY.at(w)), f"estimated {w} {{{{model_version}}}}",
            ref_id(i)) for i, w in enumerate(config.windows)],
        q(rule(N.OUTCOME_ACCURACY.at(W)), f"realized {W} {{{{model_version}}}}",
          ref_id(len(config.windows))),
        q(baseline("accuracy"), "baseline {{model_version}}", ref_id(len(config.windows) + 1)),
        q(ESTIMATED_ACCURACY_LINE, "estimated alert line {{model_version}}",
          ref_id(len(config.windows) + 2))], unit="percentunit",
        description="Estimated: the accuracy the model's calibrated scores expect on the "
                    "inputs it sees now (docs/estimation.md). It follows covariate shift "
                    "before any label arrives, and is blind to concept drift: when realized "
                    "falls away from estimated, the world changed, not the inputs."), 12),
    (table(f"Estimated precision and recall per class (last {span(EST_W)})", [
        q(rule(N.ESTIMATED_PRECISION.at(EST_W)), "precision", "A", instant=True, table=True),
        q(rule(N.ESTIMATED_RECALL.at(EST_W)), "recall", "B", instant=True, table=True)],
        description="From the expected confusion matrix: expected right among those "
                    "predicted as the class, and among those expected to be the class.",
        hide=("Time", "__name__")), 8),
    (stat(f"Scored predictions (last {span(EST_W)})",
          [q(f"sum({rule(N.ESTIMATED_SAMPLES.at(EST_W))})", "scored")], thresholds=SCORED,
          description=f"Red below {EST['min_scored']}: too few for the estimated alert to "
                      f"judge. Estimation uses raw scores when "
                      f'{N.ESTIMATION_INFO.name}{{calibrated="false"}}.'), 4),
]

# ---- champion vs challenger (docs/challenger.md): a challenger in shadow mode beside the live
# model, each line labelled with its role through mlmon_model_role_info; empty without one.
SHADOW = config.alert("MlmonChallengerDisagreement")
SHADOW_W = SHADOW["window"]
ROLES = f"max by (model, model_version, role) ({N.MODEL_ROLE_INFO.name}{{{MODEL}}})"


def with_role(expr: str) -> str:
    """`expr` (per model version) with the version's role as a label, for the legend."""
    return f"{expr} * on (model, model_version) group_left (role) {ROLES}"


def gap(rule_name: N.RuleName, window: str, label: str, ref: str) -> object:
    return q(rule(N.challenger_gap(rule_name).at(window)),
             f"{label} {window} {{{{model_version}}}} - {{{{champion_version}}}}", ref)


CHALLENGER = [
    (timeseries("Champion vs challenger: accuracy", [
        q(with_role(rule(N.OUTCOME_ACCURACY.at(W))), f"realized {W} {{{{role}}}} "
          "{{model_version}}", "A"),
        q(with_role(rule(N.ESTIMATED_ACCURACY.at(EST_W))), f"estimated {EST_W} {{{{role}}}} "
          "{{model_version}}", "B")], unit="percentunit",
        description="Side by side on the same requests: realized from the same labels, "
                    "estimated from each version's calibrated scores."), 8),
    (timeseries("Champion vs challenger: MAE", [
        q(with_role(rule(N.OUTCOME_MAE.at(w))), f"MAE {w} {{{{role}}}} {{{{model_version}}}}",
          ref_id(i)) for i, w in enumerate(WINDOWS)],
        description="Regression: realized mean absolute error of each version, from the same "
                    "labels."), 8),
    (timeseries("Performance gap: challenger - champion", [
        gap(N.OUTCOME_ACCURACY, W, "accuracy", "A"), gap(N.OUTCOME_MAE, W, "MAE", "B"),
        gap(N.ESTIMATED_ACCURACY, EST_W, "estimated accuracy", "C")],
        description="Accuracy gap > 0: the challenger is right more often. MAE gap > 0: the "
                    "challenger errs more."), 8),
]

SHADOW_DETAIL = [
    (timeseries("Agreement with the champion", [
        *[q(rule(N.CHALLENGER_AGREEMENT.at(w)),
            f"agreement {w} {{{{model_version}}}} vs {{{{champion_version}}}}", ref_id(i))
          for i, w in enumerate(config.windows)],
        q(f"{1 - SHADOW['max_disagreement']:g} + 0 * {rule(N.CHALLENGER_AGREEMENT.at(SHADOW_W))}",
          "alert line {{model_version}}", ref_id(len(config.windows)))], unit="percentunit",
        description="Share of requests on which the challenger gives the champion's answer "
                    "(regression: within the tolerance). MlmonChallengerDisagreement fires "
                    "below the alert line."), 8),
    (table(f"Where they differ (last {span(SHADOW_W)})", [
        q(f"{rule(N.CHALLENGER_CLASS_PAIR_INCREASE.at(SHADOW_W))} > 0", "requests", "A",
          instant=True, table=True)],
        description="Classification: requests per (champion class, challenger class).",
        hide=("Time", "__name__")), 6),
    (timeseries("Regression: mean challenger - champion", [
        q(rule(N.CHALLENGER_DIFFERENCE_MEAN.at(w)), f"{w} {{{{model_version}}}}", ref_id(i))
        for i, w in enumerate(config.windows)],
        description="A systematic offset between the two versions' predictions."), 5),
    (timeseries("Challenger work shed or failed", [
        q(f"sum by (model_version, reason) "
          f"(rate({N.CHALLENGER_SKIPPED.sample}{{{MODEL}}}[$__rate_interval])) > 0",
          "{{reason}} {{model_version}}")], unit="reqps",
        description="queue_full: the challenger fell behind and requests were not run on "
                    "it; predict_error: it raised; closed: pending at shutdown; "
                    "process_died / predict_timeout: its process exited / did not answer "
                    "(replaced)."), 5),
]

ALERTS = [
    (table("Firing performance alerts", [q(
        'ALERTS{alertstate="firing", model=~"$model", alertname=~"MlmonPerformanceBelowBaseline'
        '|MlmonLabelsStopped|MlmonPredictionOutOfRange|MlmonEstimatedPerformanceBelowBaseline'
        '|MlmonChallengerDisagreement"}',
        instant=True, table=True)],
        hide=("Time", "Value", "__name__", "alertstate")), FULL_WIDTH),
]

ROWS = [SUMMARY, REALIZED, DETAIL, VOLUME, ESTIMATED, CHALLENGER, SHADOW_DETAIL, ALERTS]

dashboard = dashboard(
    "mlmon / Model performance", "mlmon-model-performance",
    "Realized performance from delayed labels against the profile's baseline.",
    layout(ROWS), annotations=[version_annotation()], time_from="now-7d")
