"""Feature drill-down: how one feature's live distribution differs from the reference.

Built on the recording rules in prometheus/recording_rules.yml (every configured window).
"""

from panels import (
    FEATURE,
    RED,
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
    steps,
    timeseries,
    version_annotation,
)

import mlmon.names as N
from mlmon.alerting.recording import FEATURE_CATS, FEATURE_HIST

config = alert_config()
PSI = psi_steps(config)
UNSEEN = steps((config.alert("MlmonUnseenCategoriesRising")["max_share"], RED))
INVALID = steps((config.alert("MlmonInvalidValuesRising")["max_ratio"], RED))
WINDOWS = tuple((ref_id(i), w) for i, w in enumerate(config.windows))
SHORT, LONG = short_window(config), long_window(config)
# The KS critical value exists for the drift alert's window only (alerting/recording.py).
DRIFT = config.alert("MlmonFeatureDrift")["window"]


def rule(name: str) -> str:
    return f"{name}{{{FEATURE}}}"


# Numeric features: share per reference bin (ending at `le`); categorical: share per category.
LIVE = (f'label_replace({rule(FEATURE_HIST.bins(LONG))}, "bin", '
        f'"<= $1", "le", "(.*)") or label_replace('
        f'{rule(FEATURE_CATS.shares(LONG))}, "bin", "$1", '
        '"category", "(.*)")')
REFERENCE = (f'label_replace(avg by (le) ({rule(N.FEATURE_REFERENCE.bins.name)}), "bin", '
             '"<= $1", "le", "(.*)") or label_replace(avg by (category) '
             f'({rule(N.FEATURE_CATEGORY_REFERENCE_SHARE.name)}), "bin", "$1", "category", '
             '"(.*)")')


def over_windows(stat: N.RuleName) -> list:
    return [q(rule(stat.at(window)), f"{window} {{{{model_version}}}}", ref)
            for ref, window in WINDOWS]


def reference(metric: str, ref: str) -> object:
    return q(f"avg by (model, model_version) ({rule(metric)})", "reference {{model_version}}",
             ref)


panels = layout([
    [(bars(f"$feature, live (last {span(LONG)})", [q(LIVE, "{{bin}}", instant=True)],
           description="Share of live values in each reference bin (numeric) or category."),
      12),
     (bars("$feature, reference", [q(REFERENCE, "{{bin}}", instant=True)]), 12)],
    [(timeseries("PSI", over_windows(N.FEATURE_PSI), thresholds=PSI), 8),
     (timeseries("KS distance", over_windows(N.FEATURE_KS) + [
         q(rule(N.FEATURE_KS_CRITICAL.at(DRIFT)), f"critical {DRIFT} {{{{model_version}}}}",
           "C")], description=f"The drift alert needs KS above its critical value ({DRIFT})."),
      8),
     (timeseries("Jensen-Shannon distance", over_windows(N.FEATURE_JS), soft_max=0.2), 8)],
    [(timeseries("Missing share", [
        q(rule(N.FEATURE_MISSING_RATIO.at(config.alert("MlmonFeatureMissing")["window"])),
          "live {{model_version}}", "A"),
        reference(N.FEATURE_REFERENCE_NULL_RATE.name, "B")], unit="percentunit"), 8),
     (timeseries("Invalid values by reason", [
         q(rule(N.FEATURE_INVALID_RATIO.at(config.alert("MlmonInvalidValuesRising")["window"])),
           "{{reason}} {{model_version}}")], unit="percentunit", thresholds=INVALID), 8),
     (timeseries("Unseen category share", over_windows(N.FEATURE_UNSEEN_SHARE),
                 unit="percentunit", thresholds=UNSEEN), 8)],
    [(timeseries(f"Category shares ({SHORT})", [
        q(rule(FEATURE_CATS.shares(SHORT)), "{{category}} {{model_version}}")],
        unit="percentunit", stacked=True), 12),
     (timeseries("Out-of-vocabulary token rate", [
         q(rule(N.FEATURE_TEXT_OOV_RATIO.at(config.alert("MlmonTextOOVRising")["window"])),
           "live {{model_version}}", "A"),
         reference(N.FEATURE_TEXT_REFERENCE_OOV_RATE.name, "B")], unit="percentunit"), 12)],
])

dashboard = dashboard(
    "mlmon / Feature drill-down", "mlmon-feature-drill-down",
    "One feature of one model: live against reference, drift over both windows, data quality.",
    panels, feature=True, annotations=[version_annotation()])
