"""Model overview: is the model up, fast, and seeing the data it was trained on?

Built on the recording rules in prometheus/recording_rules.yml (generated from
alerting/config.yaml), so the dashboard shows exactly what the alerts evaluate.
"""

from panels import (
    FULL_WIDTH,
    MODEL,
    RED,
    YELLOW,
    alert_config,
    bars,
    dashboard,
    layout,
    long_window,
    psi_steps,
    q,
    ref_id,
    short_window,
    span,
    stat,
    steps,
    table,
    timeseries,
    version_annotation,
)

import mlmon.names as N
from mlmon.alerting.recording import PREDICTION_CLASSES, PREDICTION_HIST

config = alert_config()
PSI = psi_steps(config)
KS_RATIO = steps((0.8, YELLOW), (1.0, RED))  # KS over its critical value: 1 = significant
ERROR_ALERT = config.alert("MlmonHighErrorRatio")
SLO_ALERT = config.alert("MlmonLatencySLOBreach")
ERRORS = steps((ERROR_ALERT["max_ratio"], RED))
SLO = steps((SLO_ALERT["max_seconds"], RED))
SHORT, LONG = short_window(config), long_window(config)
# The feature drift table shows what MlmonFeatureDrift evaluates (its KS critical value exists
# for that window only), beside the short window's PSI.
DRIFT = config.alert("MlmonFeatureDrift")["window"]


def rule(name: str) -> str:
    return f"{name}{{{MODEL}}}"


def by_version(name: str) -> str:
    return f"sum by (model_version) ({rule(name)})"


# Live bins over the long window against the reference (regression: value bins ending at `le`;
# classification: predicted classes), renamed to one `bin` label so one panel serves both.
LIVE = (f'label_replace({rule(PREDICTION_HIST.bins(LONG))}, "bin", "<= $1", '
        f'"le", "(.*)") or label_replace({rule(PREDICTION_CLASSES.shares(LONG))}, '
        '"bin", "$1", "class", "(.*)")')
REFERENCE = (f'label_replace(avg by (le) ({rule(N.PREDICTION_REFERENCE.bins.name)}), '
             '"bin", "<= $1", "le", "(.*)") or label_replace(avg by (class) '
             f'({rule(N.PREDICTION_CLASS_REFERENCE_SHARE.name)}), "bin", "$1", "class", "(.*)")')


def drift_column(name: str, legend: str, ref: str) -> object:
    return q(rule(name), legend, ref, instant=True, table=True)


def prediction_stats(stats: tuple[str, ...]) -> list:
    """One target per prediction statistic over the short window, refIds A, B, ..."""
    return [q(rule(N.prediction_stat(s).at(SHORT)), f"{s} {{{{model_version}}}}",
              ref_id(i)) for i, s in enumerate(stats)]


# PSI then KS, each over every window, the long one first
PREDICTION_DRIFT = [(stat_rule, label, window)
                    for stat_rule, label in ((N.PREDICTION_PSI, "PSI"), (N.PREDICTION_KS, "KS"))
                    for window in reversed(config.windows)]
THROUGHPUT = N.REQUESTS_RATE.at(SHORT)
ERROR_RATIO = N.REQUESTS_ERRORS_RATIO.at(ERROR_ALERT["window"])

panels = layout([
    [(table("Live model versions", [q(rule(N.MODEL_INFO.name), instant=True, table=True)],
            description="One row per loaded profile and instance.",
            hide=("Time", "Value", "__name__")), 12),
     (stat("Throughput", [q(f"sum({rule(THROUGHPUT)})", "req/s")], unit="reqps"), 4),
     (stat("Error ratio", [q(f"max({rule(ERROR_RATIO)})")],
           unit="percentunit", thresholds=ERRORS), 4),
     (stat("Firing alerts", [q('count(ALERTS{alertstate="firing", model=~"$model"}) '
                               "or vector(0)")], thresholds=steps((1, RED))), 4)],
    [(timeseries("Throughput by version", [q(by_version(THROUGHPUT), "{{model_version}}")],
                 unit="reqps"), 8),
     (timeseries("Error ratio", [q(rule(ERROR_RATIO), "{{model_version}}")],
                 unit="percentunit", thresholds=ERRORS), 8),
     (timeseries("Latency", [
         q(rule(N.latency_quantile(p).at(SLO_ALERT["window"])), f"{p} {{{{model_version}}}}",
           ref) for ref, p in (("A", "p50"), ("B", "p95"), ("C", "p99"))],
         unit="s", thresholds=SLO), 8)],
    [(timeseries(f"Prediction mean, median and spread ({SHORT})",
                 prediction_stats(("mean", "median", "std", "p10", "p90"))), 12),
     (timeseries(f"Prediction min and max ({SHORT})", prediction_stats(("min", "max"))), 12)],
    [(bars(f"Predictions, live (last {span(LONG)})", [q(LIVE, "{{bin}}", instant=True)],
           description="Share of predictions in each reference bin (regression) or class."), 12),
     (bars("Predictions, reference", [q(REFERENCE, "{{bin}}", instant=True)]), 12)],
    [(timeseries("Prediction drift", [
        q(rule(stat_rule.at(window)), f"{label} {window} {{{{model_version}}}}", ref_id(i))
        for i, (stat_rule, label, window) in enumerate(PREDICTION_DRIFT)],
        thresholds=PSI), 8),
     (table(f"Feature drift (last {span(DRIFT)})", [
         drift_column(N.FEATURE_PSI.at(DRIFT), "PSI", "A"),
         drift_column(N.FEATURE_KS.at(DRIFT), "KS", "B"),
         q(f"{rule(N.FEATURE_KS.at(DRIFT))} / "
           f"{rule(N.FEATURE_KS_CRITICAL.at(DRIFT))}", "KS / critical", "C",
           instant=True, table=True),
         drift_column(N.FEATURE_JS.at(DRIFT), "JS", "D"),
         drift_column(N.FEATURE_PSI.at(SHORT), f"PSI {SHORT}", "E")],
         description="Coloured by the MlmonFeatureDrift thresholds: PSI against its floor, KS "
                     "against its critical value (alerting/config.yaml). The alert needs both.",
         columns={"PSI": PSI, f"PSI {SHORT}": PSI, "KS / critical": KS_RATIO},
         hide=("Time", "__name__", "job", "instance")), 16)],
    [(table("Firing alerts", [q('ALERTS{alertstate="firing", model=~"$model"}', instant=True,
                                table=True)], hide=("Time", "Value", "__name__", "alertstate")),
      FULL_WIDTH)],
])

dashboard = dashboard(
    "mlmon / Model overview", "mlmon-model-overview",
    "Live versions, traffic, latency, predictions and per-feature drift of one model.",
    panels, annotations=[version_annotation()])
