"""Feature drill-down: how one feature's live distribution differs from the reference.

Built on the recording rules in prometheus/recording_rules.yml (both windows).
"""

from panels import (
    FEATURE,
    RED,
    alert_config,
    bars,
    dashboard,
    layout,
    psi_steps,
    q,
    steps,
    timeseries,
    version_annotation,
)

alerts = alert_config()["alerts"]
PSI = psi_steps(alerts)
UNSEEN = steps((alerts["MlmonUnseenCategoriesRising"]["max_share"], RED))
INVALID = steps((alerts["MlmonInvalidValuesRising"]["max_ratio"], RED))
WINDOWS = (("A", "5m"), ("B", "1h"))


def rule(name: str) -> str:
    return f"{name}{{{FEATURE}}}"


# Numeric features: share per reference bin (ending at `le`); categorical: share per category.
LIVE = (f'label_replace({rule("model_feature_le:mlmon_feature_value:bin_share1h")}, "bin", '
        f'"<= $1", "le", "(.*)") or label_replace('
        f'{rule("model_feature_category:mlmon_feature_category:share1h")}, "bin", "$1", '
        '"category", "(.*)")')
REFERENCE = (f'label_replace(avg by (le) ({rule("mlmon_feature_reference_bin_share")}), "bin", '
             '"<= $1", "le", "(.*)") or label_replace(avg by (category) '
             f'({rule("mlmon_feature_category_reference_share")}), "bin", "$1", "category", '
             '"(.*)")')


def over_windows(stat_name: str) -> list:
    return [q(rule(f"model_feature:mlmon_feature_{stat_name}:{window}"),
              f"{window} {{{{model_version}}}}", ref) for ref, window in WINDOWS]


def reference(metric: str, ref: str) -> object:
    return q(f"avg by (model, model_version) ({rule(metric)})", "reference {{model_version}}",
             ref)


panels = layout([
    [(bars("$feature, live (last hour)", [q(LIVE, "{{bin}}", instant=True)],
           description="Share of live values in each reference bin (numeric) or category."),
      12),
     (bars("$feature, reference", [q(REFERENCE, "{{bin}}", instant=True)]), 12)],
    [(timeseries("PSI", over_windows("psi"), thresholds=PSI), 8),
     (timeseries("KS distance", over_windows("ks") + [
         q(rule("model_feature:mlmon_feature_ks_critical:1h"), "critical 1h {{model_version}}",
           "C")], description="The drift alert needs KS above its critical value (1h)."), 8),
     (timeseries("Jensen-Shannon distance", over_windows("js"), soft_max=0.2), 8)],
    [(timeseries("Missing share", [
        q(rule("model_feature:mlmon_feature_missing:ratio5m"), "live {{model_version}}", "A"),
        reference("mlmon_feature_reference_null_rate", "B")], unit="percentunit"), 8),
     (timeseries("Invalid values by reason", [
         q(rule("model_feature_reason:mlmon_feature_invalid:ratio5m"),
           "{{reason}} {{model_version}}")], unit="percentunit", thresholds=INVALID), 8),
     (timeseries("Unseen category share", [
         q(rule(f"model_feature:mlmon_feature_unseen:share{window}"),
           f"{window} {{{{model_version}}}}", ref) for ref, window in WINDOWS],
         unit="percentunit", thresholds=UNSEEN), 8)],
    [(timeseries("Category shares (5m)", [
        q(rule("model_feature_category:mlmon_feature_category:share5m"),
          "{{category}} {{model_version}}")], unit="percentunit", stacked=True), 12),
     (timeseries("Out-of-vocabulary token rate", [
         q(rule("model_feature:mlmon_feature_text_oov:ratio5m"), "live {{model_version}}", "A"),
         reference("mlmon_feature_text_reference_oov_rate", "B")], unit="percentunit"), 12)],
])

dashboard = dashboard(
    "mlmon / Feature drill-down", "mlmon-feature-drill-down",
    "One feature of one model: live against reference, drift over both windows, data quality.",
    panels, feature=True, annotations=[version_annotation()])
