"""Model overview: is the model up, fast, and seeing the data it was trained on?"""

from panels import (
    FULL_WIDTH,
    MODEL,
    RED,
    YELLOW,
    alert_config,
    bars,
    dashboard,
    layout,
    live_distribution,
    q,
    reference_distribution,
    stat,
    steps,
    table,
    timeseries,
    version_annotation,
)

alerts = alert_config()["alerts"]
psi_floor = alerts["MlmonFeatureDrift"]["psi_floor"]
PSI = steps((psi_floor / 2, YELLOW), (psi_floor, RED))
ERRORS = steps((alerts["MlmonHighErrorRatio"]["max_ratio"], RED))
SLO = steps((alerts["MlmonLatencySLOBreach"]["max_seconds"], RED))

requests = f"sum by (model_version) (rate(mlmon_requests_total{{{MODEL}}}[$__rate_interval]))"
errors = (f'sum by (model_version) (rate(mlmon_requests_total{{{MODEL}, outcome="error"}}'
          "[$__rate_interval]))")
predictions = "sum by (model_version) (rate(mlmon_prediction_value_%s{%s}[$__rate_interval]))"
prediction_buckets = ("sum by (model_version, le) "
                      f"(rate(mlmon_prediction_value_bucket{{{MODEL}}}[$__rate_interval]))")
mean = f"({predictions % ('sum', MODEL)} / {predictions % ('count', MODEL)})"
# Variance around the reference mean c (stable): E[(y-c)^2] - (mean-c)^2.
variance = (f"(sum by (model_version) (rate(mlmon_prediction_centered_sum_squares{{{MODEL}}}"
            f"[$__rate_interval])) / {predictions % ('count', MODEL)}"
            f" - ({mean} - avg by (model_version) (mlmon_prediction_center{{{MODEL}}}))^2)")


def latency(quantile: float) -> str:
    return (f"histogram_quantile({quantile}, sum by (model_version, le) "
            f"(rate(mlmon_inference_latency_seconds_bucket{{{MODEL}}}[$__rate_interval])))")


live = live_distribution("mlmon_prediction_value", "mlmon_prediction_class_total", "class",
                         MODEL)
reference = reference_distribution("mlmon_prediction_reference_cumulative_share",
                                   "mlmon_prediction_class_reference_share", "class", MODEL)


def drift(stat_name: str, window: str) -> str:
    return f"model_feature:mlmon_feature_{stat_name}:{window}{{{MODEL}}}"


panels = layout([
    [(table("Live model versions", [q(f"mlmon_model_info{{{MODEL}}}", instant=True, table=True)],
            description="One row per loaded profile and instance.",
            hide=("Time", "Value", "__name__")), 12),
     (stat("Throughput", [q(f"sum({requests})", "req/s")], unit="reqps"), 4),
     (stat("Error ratio", [q(f"sum({errors}) / sum({requests})")], unit="percentunit",
           thresholds=ERRORS), 4),
     (stat("Firing alerts", [q('count(ALERTS{alertstate="firing", model=~"$model"}) '
                               "or vector(0)")], thresholds=steps((1, RED))), 4)],
    [(timeseries("Throughput by version", [q(requests, "{{model_version}}")], unit="reqps"), 8),
     (timeseries("Error ratio", [q(f"{errors} / {requests}", "{{model_version}}")],
                 unit="percentunit", thresholds=ERRORS), 8),
     (timeseries("Latency", [q(latency(0.5), "p50 {{model_version}}", "A"),
                             q(latency(0.95), "p95 {{model_version}}", "B"),
                             q(latency(0.99), "p99 {{model_version}}", "C")],
                 unit="s", thresholds=SLO), 8)],
    [(timeseries("Prediction mean, median and spread", [
        q(mean, "mean {{model_version}}", "A"),
        q(f"histogram_quantile(0.5, {prediction_buckets})", "median {{model_version}}", "B"),
        q(f"sqrt(clamp_min({variance}, 0))", "std {{model_version}}", "C"),
        q(f"avg by (model_version) (mlmon_prediction_center{{{MODEL}}})",
          "reference mean {{model_version}}", "D")]), 12),
     (timeseries("Prediction min and max (last minute)", [
         q(f"min by (model_version) (mlmon_prediction_window_min{{{MODEL}}})",
           "min {{model_version}}", "A"),
         q(f"max by (model_version) (mlmon_prediction_window_max{{{MODEL}}})",
           "max {{model_version}}", "B")]), 12)],
    [(bars("Predictions, live (time range)", [q(live, "{{bin}}", instant=True)],
           description="Regression: share of predictions <= each reference edge; "
                       "classification: share of each predicted class."), 12),
     (bars("Predictions, reference", [q(reference, "{{bin}}", instant=True)]),
      12)],
    [(table("Feature drift", [
        q(drift("psi", "5m"), "PSI 5m", "A", instant=True, table=True),
        q(drift("psi", "1h"), "PSI 1h", "B", instant=True, table=True),
        q(drift("ks", "1h"), "KS 1h", "C", instant=True, table=True),
        q(drift("js", "1h"), "JS 1h", "D", instant=True, table=True)],
        description="PSI is coloured by the drift alert's floor (alerting/config.yaml).",
        columns={"PSI 5m": PSI, "PSI 1h": PSI}, hide=("Time", "__name__", "job", "instance")),
      FULL_WIDTH)],
    [(table("Firing alerts", [q('ALERTS{alertstate="firing", model=~"$model"}', instant=True,
                                table=True)], hide=("Time", "Value", "__name__", "alertstate")),
      FULL_WIDTH)],
])

dashboard = dashboard(
    "mlmon / Model overview", "mlmon-model-overview",
    "Live versions, traffic, latency, predictions and per-feature drift of one model.",
    panels, annotations=[version_annotation()])
