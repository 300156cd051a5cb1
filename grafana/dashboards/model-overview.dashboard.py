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
    psi_steps,
    q,
    stat,
    steps,
    table,
    timeseries,
    version_annotation,
)

alerts = alert_config()["alerts"]
PSI = psi_steps(alerts)
KS_RATIO = steps((0.8, YELLOW), (1.0, RED))  # KS over its critical value: 1 = significant
ERRORS = steps((alerts["MlmonHighErrorRatio"]["max_ratio"], RED))
SLO = steps((alerts["MlmonLatencySLOBreach"]["max_seconds"], RED))


def rule(name: str) -> str:
    return f"{name}{{{MODEL}}}"


def by_version(name: str) -> str:
    return f"sum by (model_version) ({rule(name)})"


# Live bins over the last hour against the reference (regression: value bins ending at `le`;
# classification: predicted classes), renamed to one `bin` label so one panel serves both.
LIVE = (f'label_replace({rule("model_le:mlmon_prediction_value:bin_share1h")}, "bin", "<= $1", '
        f'"le", "(.*)") or label_replace({rule("model_class:mlmon_prediction_class:share1h")}, '
        '"bin", "$1", "class", "(.*)")')
REFERENCE = (f'label_replace(avg by (le) ({rule("mlmon_prediction_reference_bin_share")}), '
             '"bin", "<= $1", "le", "(.*)") or label_replace(avg by (class) '
             f'({rule("mlmon_prediction_class_reference_share")}), "bin", "$1", "class", "(.*)")')


def drift_column(name: str, legend: str, ref: str) -> object:
    return q(rule(name), legend, ref, instant=True, table=True)


panels = layout([
    [(table("Live model versions", [q(rule("mlmon_model_info"), instant=True, table=True)],
            description="One row per loaded profile and instance.",
            hide=("Time", "Value", "__name__")), 12),
     (stat("Throughput", [q(f"sum({rule('model:mlmon_requests:rate5m')})", "req/s")],
           unit="reqps"), 4),
     (stat("Error ratio", [q(f"max({rule('model:mlmon_requests_errors:ratio5m')})")],
           unit="percentunit", thresholds=ERRORS), 4),
     (stat("Firing alerts", [q('count(ALERTS{alertstate="firing", model=~"$model"}) '
                               "or vector(0)")], thresholds=steps((1, RED))), 4)],
    [(timeseries("Throughput by version", [q(by_version("model:mlmon_requests:rate5m"),
                                             "{{model_version}}")], unit="reqps"), 8),
     (timeseries("Error ratio", [q(rule("model:mlmon_requests_errors:ratio5m"),
                                   "{{model_version}}")], unit="percentunit",
                 thresholds=ERRORS), 8),
     (timeseries("Latency", [
         q(rule(f"model:mlmon_inference_latency_seconds:{p}_5m"), f"{p} {{{{model_version}}}}",
           ref) for ref, p in (("A", "p50"), ("B", "p95"), ("C", "p99"))],
         unit="s", thresholds=SLO), 8)],
    [(timeseries("Prediction mean, median and spread (5m)", [
        q(rule(f"model:mlmon_prediction_{s}:5m"), f"{s} {{{{model_version}}}}", ref)
        for ref, s in (("A", "mean"), ("B", "median"), ("C", "std"), ("D", "p10"),
                       ("E", "p90"))]), 12),
     (timeseries("Prediction min and max (5m)", [
         q(rule(f"model:mlmon_prediction_{s}:5m"), f"{s} {{{{model_version}}}}", ref)
         for ref, s in (("A", "min"), ("B", "max"))]), 12)],
    [(bars("Predictions, live (last hour)", [q(LIVE, "{{bin}}", instant=True)],
           description="Share of predictions in each reference bin (regression) or class."), 12),
     (bars("Predictions, reference", [q(REFERENCE, "{{bin}}", instant=True)]), 12)],
    [(timeseries("Prediction drift", [
        q(rule("model:mlmon_prediction_psi:1h"), "PSI 1h {{model_version}}", "A"),
        q(rule("model:mlmon_prediction_psi:5m"), "PSI 5m {{model_version}}", "B"),
        q(rule("model:mlmon_prediction_ks:1h"), "KS 1h {{model_version}}", "C"),
        q(rule("model:mlmon_prediction_ks:5m"), "KS 5m {{model_version}}", "D")],
        thresholds=PSI), 8),
     (table("Feature drift (last hour)", [
         drift_column("model_feature:mlmon_feature_psi:1h", "PSI", "A"),
         drift_column("model_feature:mlmon_feature_ks:1h", "KS", "B"),
         q(f"{rule('model_feature:mlmon_feature_ks:1h')} / "
           f"{rule('model_feature:mlmon_feature_ks_critical:1h')}", "KS / critical", "C",
           instant=True, table=True),
         drift_column("model_feature:mlmon_feature_js:1h", "JS", "D"),
         drift_column("model_feature:mlmon_feature_psi:5m", "PSI 5m", "E")],
         description="Coloured by the MlmonFeatureDrift thresholds: PSI against its floor, KS "
                     "against its critical value (alerting/config.yaml). The alert needs both.",
         columns={"PSI": PSI, "PSI 5m": PSI, "KS / critical": KS_RATIO},
         hide=("Time", "__name__", "job", "instance")), 16)],
    [(table("Firing alerts", [q('ALERTS{alertstate="firing", model=~"$model"}', instant=True,
                                table=True)], hide=("Time", "Value", "__name__", "alertstate")),
      FULL_WIDTH)],
])

dashboard = dashboard(
    "mlmon / Model overview", "mlmon-model-overview",
    "Live versions, traffic, latency, predictions and per-feature drift of one model.",
    panels, annotations=[version_annotation()])
