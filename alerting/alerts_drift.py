"""Drift alerts: a feature's or the predictions' distribution moved away from the reference,
and the guard that says when a window holds too few records to judge.

`DriftTest` is the one drift condition: the batch alerts (alerting/alerts_batch.py) apply it
to a job's latest batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import FEATURE, WHERE, lookup, num
from mlmon.alerting.render import Group
from mlmon.names import FEATURE_LABELS, MODEL_LABELS, RuleName


@dataclass(frozen=True)
class DriftTest:
    """The rules of one drift test: PSI (effect size), KS, KS's critical value, the samples.

        FEATURE_DRIFT.condition("1h", 0.1, 100)  # PSI > 0.1 and KS > critical and n >= 100
    """

    psi: RuleName
    ks: RuleName
    critical: RuleName
    samples: RuleName

    def condition(self, window: str, psi_floor: Any, min_samples: int) -> str:
        """Significant for the window's sample size (KS above its Bonferroni critical value)
        AND large enough to matter (PSI above the floor), on at least `min_samples`."""
        return (f"{self.psi.at(window)} > {psi_floor}\n"
                f"and {self.ks.at(window)} > {self.critical.at(window)}\n"
                f"and {self.samples.at(window)} >= {min_samples}")

    def evidence(self, labels: tuple[str, ...], window: str, psi_floor: Any,
                 alpha: Any) -> str:
        """The description's figures: PSI (the alert's value), then KS, its critical value
        and n, looked up for the alert's `labels`."""
        ks = lookup(self.ks.at(window), labels)
        critical = lookup(self.critical.at(window), labels)
        n = lookup(self.samples.at(window), labels, "%.0f")
        return (f"PSI {num()} (floor {psi_floor}), "
                f"KS {ks} > critical {critical} (alpha {alpha}), n = {n}")


FEATURE_DRIFT = DriftTest(N.FEATURE_PSI, N.FEATURE_KS, N.FEATURE_KS_CRITICAL, N.FEATURE_SAMPLES)
PREDICTION_DRIFT = DriftTest(N.PREDICTION_PSI, N.PREDICTION_KS, N.PREDICTION_KS_CRITICAL,
                             N.PREDICTION_SAMPLES)


def group(a: AlertBuilder) -> Group:
    f, p = a.c.alert("MlmonFeatureDrift"), a.c.alert("MlmonPredictionDrift")
    fw, pw = f["window"], p["window"]
    nd = a.c.alert("MlmonNotEnoughData")
    keep = (" Keeps firing for keep_firing_for after the condition stops holding: a window "
            "thinning below min_samples must not resolve it before MlmonNotEnoughData fires.")
    return Group("mlmon.alerts.drift", "Feature and prediction drift, and the no-data guard.", (
        a.rule(
            "MlmonFeatureDrift",
            FEATURE_DRIFT.condition(fw, f["psi_floor"], a.min),
            "A feature's live distribution has drifted from the training data.",
            f"{FEATURE} drifted over the last {fw}: "
            + FEATURE_DRIFT.evidence(FEATURE_LABELS, fw, f["psi_floor"], f["alpha"]) + ".",
            "Significant for the window's sample size (KS above its Bonferroni critical "
            "value) AND large enough to matter (PSI above the floor)." + keep),
        a.rule(
            "MlmonPredictionDrift",
            PREDICTION_DRIFT.condition(pw, p["psi_floor"], a.min),
            "The model's prediction distribution has drifted from the reference.",
            f"Predictions of model {WHERE} drifted over the last {pw}: "
            + PREDICTION_DRIFT.evidence(MODEL_LABELS, pw, p["psi_floor"], p["alpha"]) + ".",
            "Prediction drift: significant and above the effect-size floor, as for features."
            + keep),
        a.rule(
            "MlmonNotEnoughData",
            f"{N.OBSERVATIONS_INCREASE.at(nd['window'])} < {a.min}",
            "Too few observations to judge drift.",
            f"Model {WHERE} saw {num(fmt='%.0f')} records in the last "
            f"{nd['window']} (fewer than {a.min}): drift alerts cannot fire.",
            "An empty or thin window makes drift statistics absent; this alert says so "
            "instead of leaving silence (a firing drift alert holds until this one fires)."),
    ))
