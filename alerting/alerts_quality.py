"""Input data quality alerts: missing values, unseen categories, invalid values, and text
out of vocabulary, each against the training data's rate. The batch alerts
(alerting/alerts_batch.py) apply the same checks with these alerts' thresholds."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder, at_least
from mlmon.alerting.alerts_text import FEATURE, pct, selector
from mlmon.alerting.render import Group
from mlmon.names import FEATURE_LABELS, MODEL_LABELS


def group(a: AlertBuilder) -> Group:
    miss = a.c.alert("MlmonFeatureMissing")
    unseen = a.c.alert("MlmonUnseenCategoriesRising")
    invalid = a.c.alert("MlmonInvalidValuesRising")
    oov = a.c.alert("MlmonTextOOVRising")
    reasons = "|".join(invalid["reasons"])
    invalid_ratio = (N.FEATURE_INVALID_RATIO.at(invalid['window']) +
                     f'{{reason=~"{reasons}"}}')
    by_reason = (
        "{{ range $i, $s := "
        + selector(N.FEATURE_INVALID_RATIO.at(invalid['window']),
                   FEATURE_LABELS, f', reason=~"{reasons}"')
        + ' | printf "%s > 0" | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}'
        "{{ $s.Labels.reason }} {{ $s.Value | humanizePercentage }}{{ end }}")
    return Group("mlmon.alerts.quality", "Input data quality.", (
        a.rule(
            "MlmonFeatureMissing",
            a.beyond_reference(N.FEATURE_MISSING_RATIO.at(miss['window']), ">",
                               N.FEATURE_REFERENCE_NULL_RATE.name, f"+ {miss['max_increase']}",
                               FEATURE_LABELS)
            + "\n" + at_least(N.OBSERVATIONS_INCREASE.at(miss['window']), a.min, MODEL_LABELS),
            "A feature is missing or null far more often than in training.",
            f"{FEATURE} is missing in {pct()} of records over the last {miss['window']} "
            f"(reference null rate + {miss['max_increase']} exceeded).",
            "A feature suddenly absent or null: usually an upstream pipeline change."),
        a.rule(
            "MlmonUnseenCategoriesRising",
            f"{N.FEATURE_UNSEEN_SHARE.at(unseen['window'])} > {unseen['max_share']}\n"
            f"and {N.FEATURE_SAMPLES.at(unseen['window'])} >= {a.min}",
            "A categorical feature receives many categories never seen in training.",
            f"{FEATURE}: {pct()} of values over the last {unseen['window']} were never "
            f"seen in training (threshold {unseen['max_share']}).",
            "New categories the model never learned."),
        a.rule(
            "MlmonInvalidValuesRising",
            f"sum without (reason) (\n  {invalid_ratio}\n) > {invalid['max_ratio']}\n"
            + at_least(N.OBSERVATIONS_INCREASE.at(invalid['window']), a.min, MODEL_LABELS),
            "A feature receives many invalid values.",
            f"{FEATURE}: {pct()} of records over the last {invalid['window']} were "
            f"invalid ({by_reason}; threshold {invalid['max_ratio']}).",
            "Invalid values summed over the configured reasons (one reason per value), so "
            "several small causes add up; the description breaks the share down by reason."),
        a.rule(
            "MlmonTextOOVRising",
            a.beyond_reference(N.FEATURE_TEXT_OOV_RATIO.at(oov['window']), ">",
                               N.FEATURE_TEXT_REFERENCE_OOV_RATE.name,
                               f"+ {oov['max_increase']}", FEATURE_LABELS)
            + f"\nand {N.FEATURE_TEXT_TOKENS_INCREASE.at(oov['window'])} >= {a.min}",
            "A text feature has many more out-of-vocabulary tokens than in training.",
            f"{FEATURE}: {pct()} of tokens over the last {oov['window']} are out of "
            f"vocabulary (reference OOV rate + {oov['max_increase']} exceeded).",
            "Vocabulary drift: new language, a new source, or broken text preprocessing."),
    ))
