"""Feature drill-down: how one feature's live distribution differs from the reference."""

from panels import (
    FEATURE,
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
    steps,
    timeseries,
    version_annotation,
)

alerts = alert_config()["alerts"]
psi_floor = alerts["MlmonFeatureDrift"]["psi_floor"]
PSI = steps((psi_floor / 2, YELLOW), (psi_floor, RED))
UNSEEN = steps((alerts["MlmonUnseenCategoriesRising"]["max_share"], RED))
INVALID = steps((alerts["MlmonInvalidValuesRising"]["max_ratio"], RED))

by = "model, model_version"
observations = f"sum by ({by}) (rate(mlmon_observations_total{{{MODEL}}}[$__rate_interval]))"
categories = f"rate(mlmon_feature_category_total{{{FEATURE}}}[$__rate_interval])"


live = live_distribution("mlmon_feature_value", "mlmon_feature_category_total", "category",
                         FEATURE)
reference = reference_distribution("mlmon_feature_reference_cumulative_share",
                                   "mlmon_feature_category_reference_share", "category", FEATURE)


def over_windows(stat_name: str) -> list:
    return [q(f"model_feature:mlmon_feature_{stat_name}:{window}{{{FEATURE}}}",
              f"{window} {{{{model_version}}}}", ref)
            for ref, window in (("A", "5m"), ("B", "1h"))]


panels = layout([
    [(bars("$feature, live (time range)", [q(live, "{{bin}}", instant=True)],
           description="Numeric: share of values <= each reference edge (the KS distance is "
                       "the largest gap to the reference); categorical: share of each category."),
      12),
     (bars("$feature, reference", [q(reference, "{{bin}}", instant=True)]), 12)],
    [(timeseries("PSI", over_windows("psi"), thresholds=PSI), 8),
     (timeseries("KS distance", over_windows("ks"), soft_max=0.2), 8),
     (timeseries("Jensen-Shannon distance", over_windows("js"), soft_max=0.2), 8)],
    [(timeseries("Missing share", [
        q(f"sum by ({by}) (rate(mlmon_feature_missing_total{{{FEATURE}}}[$__rate_interval])) "
          f"/ {observations}", "live {{model_version}}", "A"),
        q(f"avg by ({by}) (mlmon_feature_reference_null_rate{{{FEATURE}}})",
          "reference {{model_version}}", "B")], unit="percentunit"), 8),
     (timeseries("Invalid values by reason", [
         q(f"sum by ({by}, reason) (rate(mlmon_feature_invalid_total{{{FEATURE}}}"
           f"[$__rate_interval])) / on ({by}) group_left {observations}",
           "{{reason}} {{model_version}}")], unit="percentunit", thresholds=INVALID), 8),
     (timeseries("Unseen category share", [
         q(f'sum by ({by}) (rate(mlmon_feature_category_total{{{FEATURE}, '
           f'category="__unseen__"}}[$__rate_interval])) / sum by ({by}) ({categories})',
           "{{model_version}}")], unit="percentunit", thresholds=UNSEEN), 8)],
    [(timeseries("Category shares", [
        q(f"sum by ({by}, category) ({categories}) / on ({by}) group_left "
          f"sum by ({by}) ({categories})", "{{category}} {{model_version}}")],
        unit="percentunit", stacked=True), 12),
     (timeseries("Out-of-vocabulary token rate", [
         q(f"sum by ({by}) (rate(mlmon_feature_text_oov_tokens_total{{{FEATURE}}}"
           f"[$__rate_interval])) / sum by ({by}) (rate(mlmon_feature_text_tokens_total"
           f"{{{FEATURE}}}[$__rate_interval]))", "live {{model_version}}", "A"),
         q(f"avg by ({by}) (mlmon_feature_text_reference_oov_rate{{{FEATURE}}})",
           "reference {{model_version}}", "B")], unit="percentunit"), 12)],
])

dashboard = dashboard(
    "mlmon / Feature drill-down", "mlmon-feature-drill-down",
    "One feature of one model: live against reference, drift over both windows, data quality.",
    panels, feature=True, annotations=[version_annotation()])
