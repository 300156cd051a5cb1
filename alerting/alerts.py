"""Alert rules, generated from the config: thresholds, windows and `for:` come from there only.

Each alert carries `severity` plus the labels of the series it fires on, a fixed one-line
`summary`, a `description` templated with the values, and a `runbook_url` into
alerting/runbook.md (one section per alert, anchored by the lower-cased name).
"""

from __future__ import annotations

from typing import Any

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.config import QUANTILES, Config
from mlmon.alerting.render import Group, Rule
from mlmon.names import FEATURE_LABELS, MODEL_LABELS, RuleName

_WHERE = "{{ $labels.model }} version {{ $labels.model_version }}"
_FEATURE = "Feature {{ $labels.feature }} of model " + _WHERE


def _pct(value: str = "$value") -> str:
    return "{{ " + value + " | humanizePercentage }}"


def _num(value: str = "$value", fmt: str = "%.3f") -> str:
    return '{{ printf "' + fmt + '" ' + value + " }}"


def _selector(metric: str, labels: tuple[str, ...], extra: str = "") -> str:
    """A template pipeline giving the PromQL selector of `metric` for the alert's labels."""
    matchers = ", ".join(f"{name}=%q" for name in labels) + extra
    args = " ".join(f"$labels.{name}" for name in labels)
    return f"printf `{metric}{{{matchers}}}` {args}"


def _lookup(metric: str, labels: tuple[str, ...], fmt: str = "%.3f", extra: str = "") -> str:
    """The value of `metric` for the alert's labels (and the literal matchers `extra`), queried
    when the alert is rendered ("n/a" when the series is absent, e.g. a window emptied while the
    alert keeps firing)."""
    return ("{{ with " + _selector(metric, labels, extra)
            + ' | query }}{{ . | first | value | printf "' + fmt + '" }}{{ else }}n/a{{ end }}')


_MODEL_LABELS = MODEL_LABELS
_FEATURE_LABELS = FEATURE_LABELS


# The rules a drift alert's description looks up: KS, its critical value, the samples.
_FEATURE_DRIFT = (N.FEATURE_KS, N.FEATURE_KS_CRITICAL, N.FEATURE_SAMPLES)
_PREDICTION_DRIFT = (N.PREDICTION_KS, N.PREDICTION_KS_CRITICAL, N.PREDICTION_SAMPLES)


class _Alerts:
    def __init__(self, config: Config) -> None:
        self.c = config
        self.min = config.min_samples

    def latest(self, selector: str) -> str:
        """An exported gauge read at the last successful scrape within restart_grace: an instant
        read would vanish while a scrape fails and restart the alert's `for:`."""
        return q.latest(selector, self.c.restart_grace)

    def rule(self, name: str, expr: str, summary: str, description: str, why: str) -> Rule:
        section: dict[str, Any] = self.c.alert(name)
        keep = section.get("keep_firing_for")
        return Rule(
            name, expr, why, alert=True, for_=str(section["for"]),
            keep_firing_for=None if keep is None else str(keep),
            labels={"severity": str(section["severity"])},
            annotations={"summary": summary, "description": description,
                         "runbook_url": f"{self.c.runbook_base_url}#{name.lower()}"})

    def _drift_values(self, rules: tuple[RuleName, RuleName, RuleName], labels: tuple[str, ...],
                      w: str, alpha: Any) -> str:
        """KS, its critical value and n (`rules`, in that order), looked up for the
        description."""
        ks_rule, critical_rule, samples_rule = rules
        ks = _lookup(ks_rule.at(w), labels)
        critical = _lookup(critical_rule.at(w), labels)
        n = _lookup(samples_rule.at(w), labels, "%.0f")
        return f"KS {ks} > critical {critical} (alpha {alpha}), n = {n}"

    def drift(self) -> list[Rule]:
        f, p = self.c.alert("MlmonFeatureDrift"), self.c.alert("MlmonPredictionDrift")
        fw, pw = f["window"], p["window"]
        nd = self.c.alert("MlmonNotEnoughData")
        keep = (" Keeps firing for keep_firing_for after the condition stops holding: a window "
                "thinning below min_samples must not resolve it before MlmonNotEnoughData fires.")
        return [
            self.rule(
                "MlmonFeatureDrift",
                f"{N.FEATURE_PSI.at(fw)} > {f['psi_floor']}\n"
                f"and {N.FEATURE_KS.at(fw)} > "
                f"{N.FEATURE_KS_CRITICAL.at(fw)}\n"
                f"and {N.FEATURE_SAMPLES.at(fw)} >= {self.min}",
                "A feature's live distribution has drifted from the training data.",
                f"{_FEATURE} drifted over the last {fw}: PSI {_num()} (floor {f['psi_floor']}), "
                + self._drift_values(_FEATURE_DRIFT, _FEATURE_LABELS, fw, f["alpha"]) + ".",
                "Significant for the window's sample size (KS above its Bonferroni critical "
                "value) AND large enough to matter (PSI above the floor)." + keep),
            self.rule(
                "MlmonPredictionDrift",
                f"{N.PREDICTION_PSI.at(pw)} > {p['psi_floor']}\n"
                f"and {N.PREDICTION_KS.at(pw)} > {N.PREDICTION_KS_CRITICAL.at(pw)}\n"
                f"and {N.PREDICTION_SAMPLES.at(pw)} >= {self.min}",
                "The model's prediction distribution has drifted from the reference.",
                f"Predictions of model {_WHERE} drifted over the last {pw}: PSI {_num()} "
                f"(floor {p['psi_floor']}), "
                + self._drift_values(_PREDICTION_DRIFT, _MODEL_LABELS, pw, p["alpha"])
                + ".",
                "Prediction drift: significant and above the effect-size floor, as for features."
                + keep),
            self.rule(
                "MlmonNotEnoughData",
                f"{N.OBSERVATIONS_INCREASE.at(nd['window'])} < {self.min}",
                "Too few observations to judge drift.",
                f"Model {_WHERE} saw {_num(fmt='%.0f')} records in the last "
                f"{nd['window']} (fewer than {self.min}): drift alerts cannot fire.",
                "An empty or thin window makes drift statistics absent; this alert says so "
                "instead of leaving silence (a firing drift alert holds until this one fires)."),
        ]

    def quality(self) -> list[Rule]:
        miss = self.c.alert("MlmonFeatureMissing")
        unseen = self.c.alert("MlmonUnseenCategoriesRising")
        invalid = self.c.alert("MlmonInvalidValuesRising")
        oov = self.c.alert("MlmonTextOOVRising")
        reasons = "|".join(invalid["reasons"])
        invalid_ratio = (N.FEATURE_INVALID_RATIO.at(invalid['window']) +
                         f'{{reason=~"{reasons}"}}')
        by_reason = (
            "{{ range $i, $s := "
            + _selector(N.FEATURE_INVALID_RATIO.at(invalid['window']),
                        _FEATURE_LABELS, f', reason=~"{reasons}"')
            + ' | printf "%s > 0" | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}'
            "{{ $s.Labels.reason }} {{ $s.Value | humanizePercentage }}{{ end }}")
        return [
            self.rule(
                "MlmonFeatureMissing",
                f"{N.FEATURE_MISSING_RATIO.at(miss['window'])}\n"
                f"> on (model, model_version, feature)\n"
                f"(max by (model, model_version, feature) "
                f"({self.latest(N.FEATURE_REFERENCE_NULL_RATE.name)})"
                f" + {miss['max_increase']})\n"
                f"and on (model, model_version)\n"
                f"{N.OBSERVATIONS_INCREASE.at(miss['window'])} >= {self.min}",
                "A feature is missing or null far more often than in training.",
                f"{_FEATURE} is missing in {_pct()} of records over the last {miss['window']} "
                f"(reference null rate + {miss['max_increase']} exceeded).",
                "A feature suddenly absent or null: usually an upstream pipeline change."),
            self.rule(
                "MlmonUnseenCategoriesRising",
                f"{N.FEATURE_UNSEEN_SHARE.at(unseen['window'])} > "
                f"{unseen['max_share']}\n"
                f"and {N.FEATURE_SAMPLES.at(unseen['window'])} "
                f">= {self.min}",
                "A categorical feature receives many categories never seen in training.",
                f"{_FEATURE}: {_pct()} of values over the last {unseen['window']} were never "
                f"seen in training (threshold {unseen['max_share']}).",
                "New categories the model never learned."),
            self.rule(
                "MlmonInvalidValuesRising",
                f"sum without (reason) (\n  {invalid_ratio}\n) > {invalid['max_ratio']}\n"
                f"and on (model, model_version)\n"
                f"{N.OBSERVATIONS_INCREASE.at(invalid['window'])} >= {self.min}",
                "A feature receives many invalid values.",
                f"{_FEATURE}: {_pct()} of records over the last {invalid['window']} were "
                f"invalid ({by_reason}; threshold {invalid['max_ratio']}).",
                "Invalid values summed over the configured reasons (one reason per value), so "
                "several small causes add up; the description breaks the share down by reason."),
            self.rule(
                "MlmonTextOOVRising",
                f"{N.FEATURE_TEXT_OOV_RATIO.at(oov['window'])}\n"
                f"> on (model, model_version, feature)\n"
                "(max by (model, model_version, feature) "
                f"({self.latest(N.FEATURE_TEXT_REFERENCE_OOV_RATE.name)})"
                f" + {oov['max_increase']})\n"
                f"and {N.FEATURE_TEXT_TOKENS_INCREASE.at(oov['window'])} "
                f">= {self.min}",
                "A text feature has many more out-of-vocabulary tokens than in training.",
                f"{_FEATURE}: {_pct()} of tokens over the last {oov['window']} are out of "
                f"vocabulary (reference OOV rate + {oov['max_increase']} exceeded).",
                "Vocabulary drift: new language, a new source, or broken text preprocessing."),
        ]

    def model(self) -> list[Rule]:
        nan = self.c.alert("MlmonPredictionNaN")
        expected = self.c.alert("MlmonUnexpectedModelVersion")["expected_versions"]
        stale = self.c.alert("MlmonModelStale")
        # a challenger in shadow mode is a second live version by design, never the wrong one
        challengers = self.latest(N.MODEL_ROLE_INFO.name + '{role="challenger"}')
        shadow = f"\nunless on (model, model_version)\n{challengers}"
        wrong = "\nor\n".join(
            self.latest(f'{N.MODEL_INFO.name}{{model="{model}", model_version!="{version}"}}')
            for model, version in sorted(expected.items())) or "vector(0) < 0"
        return [
            self.rule(
                "MlmonPredictionNaN",
                N.PREDICTION_INVALID_INCREASE.at(nan["window"]) + '{reason=~"nan|inf"} > 0',
                "The model produces NaN or infinite predictions.",
                f"Model {_WHERE} produced {_num(fmt='%.0f')} {{{{ $labels.reason }}}} "
                f"predictions in the last {nan['window']}.",
                "Numerical instability: any NaN/Inf prediction is a bug."),
            self.rule(
                "MlmonMultipleModelVersions",
                "count by (model) (max by (model, model_version) "
                f"({self.latest(N.MODEL_INFO.name)}{shadow})) > 1",
                "More than one version of a model is live.",
                "Model {{ $labels.model }} has {{ $value }} versions exporting at once.",
                "A stuck rollout or a forgotten replica serving an old version."),
            self.rule(
                "MlmonUnexpectedModelVersion",
                f"max by (model, model_version) (\n(\n{wrong}\n){shadow}\n)",
                "A model version other than the expected one is live.",
                f"Model {_WHERE} is live, but the expected version is another one "
                "(alerting/config.yaml expected_versions).",
                "The wrong model was deployed (expected versions come from the config)."),
            self.rule(
                "MlmonModelStale",
                "(time() - max by (model, model_version) "
                f"({self.latest(N.MODEL_TRAINED.name)}))"
                f" / 86400\n> {stale['max_age_days']}",
                "The live model was trained too long ago.",
                f"Model {_WHERE} was trained {_num(fmt='%.0f')} days ago "
                f"(limit {stale['max_age_days']}).",
                "A stale model: retrain on recent data."),
        ]

    def ops(self) -> list[Rule]:
        slo = self.c.alert("MlmonLatencySLOBreach")
        err = self.c.alert("MlmonHighErrorRatio")
        zero = self.c.alert("MlmonThroughputZero")
        sel = self.c.exporter_selector
        assert slo["quantile"] in QUANTILES
        return [
            self.rule(
                "MlmonLatencySLOBreach",
                f"{N.latency_quantile(slo['quantile']).at(slo['window'])} > "
                f"{slo['max_seconds']}",
                "Inference latency is above its SLO.",
                f"Model {_WHERE}: {slo['quantile']} latency over the last {slo['window']} is "
                "{{ humanizeDuration $value }} (SLO " + f"{slo['max_seconds']}s).",
                "Latency SLO breach."),
            self.rule(
                "MlmonHighErrorRatio",
                f"{N.REQUESTS_ERRORS_RATIO.at(err['window'])} > {err['max_ratio']}",
                "Too many inference requests fail.",
                f"Model {_WHERE}: {_pct()} of requests failed over the last {err['window']} "
                f"(threshold {err['max_ratio']}).",
                "Error ratio of inference requests."),
            self.rule(
                "MlmonThroughputZero",
                f"{N.OBSERVATIONS_RATE.at(zero['window'])} == 0",
                "A model receives no traffic.",
                f"Model {_WHERE} observed no record in the last {zero['window']} while its "
                "exporter is up.",
                "Traffic stopped, or the instrumentation stopped calling observe()."),
            self.rule(
                "MlmonExporterDown",
                f"up{{{sel}}} == 0\nor\nabsent(up{{{sel}}})",
                "An mlmon exporter cannot be scraped.",
                "{{ if $labels.instance }}Target {{ $labels.instance }} of job {{ $labels.job }} "
                "is down.{{ else }}Job {{ $labels.job }} has no target at all.{{ end }}",
                "Without scrapes every other mlmon alert is blind."),
        ]

    def baseline(self, metric: str) -> str:
        """The profile's baseline `metric` per model and version (every replica exports it)."""
        return q.reference(f'{N.BASELINE.name}{{metric="{metric}"}}', MODEL_LABELS,
                           self.c.restart_grace)

    def performance(self) -> list[Rule]:
        perf = self.c.alert("MlmonPerformanceBelowBaseline")
        stopped = self.c.alert("MlmonLabelsStopped")
        out = self.c.alert("MlmonPredictionOutOfRange")
        w, sw, lw, ow = perf["window"], stopped["window"], stopped["lookback"], out["window"]
        on = f"on ({q.by(MODEL_LABELS)})"
        metric_labels = (*MODEL_LABELS, "metric")
        live = f"max by ({q.by(MODEL_LABELS)}) ({self.latest(N.MODEL_INFO.name)})"
        return [
            self.rule(
                "MlmonPerformanceBelowBaseline",
                f"(\n  label_replace(\n    {N.OUTCOME_ACCURACY.at(w)}\n    < {on}\n"
                f"    ({self.baseline('accuracy')} - {perf['accuracy_drop']}),\n"
                f'    "metric", "accuracy", "", ""\n  )\n  or\n'
                f"  label_replace(\n    {N.OUTCOME_MAE.at(w)}\n    > {on}\n"
                f"    ({self.baseline('mae')} * (1 + {perf['mae_increase']})),\n"
                f'    "metric", "mae", "", ""\n  )\n)\n'
                f"and {on}\n{N.OUTCOME_LABELLED.at(w)} >= {perf['min_labelled']}",
                "Realized model performance is worse than its baseline.",
                f"Model {_WHERE}: {{{{ $labels.metric }}}} {_num()} over the labels of the last "
                f"{w}, baseline {_lookup(N.BASELINE.name, metric_labels)} (accuracy drop "
                f"allowed {perf['accuracy_drop']}, MAE increase {perf['mae_increase']}), "
                f"n = {_lookup(N.OUTCOME_LABELLED.at(w), MODEL_LABELS, '%.0f')} labels.",
                "The outcome the proxies (drift, data quality) stand in for: labels show the "
                "model is wrong more often than on the reference data. Fires under concept "
                "drift, when the inputs look normal. Needs min_labelled labels in the window."),
            self.rule(
                "MlmonLabelsStopped",
                f"(\n  {N.OUTCOME_LABELLED.at(lw)} > 0\n  unless {on}\n"
                f"  {N.OUTCOME_LABELLED.at(sw)} > 0\n)\nand {on}\n{live}",
                "Labels stopped arriving for a model that had them.",
                f"Model {_WHERE} got {_num(fmt='%.0f')} labels in the last {lw} but none in the "
                f"last {sw}: realized performance cannot be judged.",
                "A label feed that stops (a failed nightly export, a broken join) silently "
                "freezes every realized metric; only live versions (mlmon_model_info) count."),
            self.rule(
                "MlmonPredictionOutOfRange",
                f'{N.PREDICTION_INVALID_INCREASE.at(ow)}{{reason="out_of_range"}}\n'
                f"/ ignoring (reason) group_left ()\n({N.OBSERVATIONS_INCREASE.at(ow)} > 0)\n"
                f"> {out['max_ratio']}",
                "The model produces predictions outside the allowed range.",
                f"Model {_WHERE}: {_pct()} of records over the last {ow} had a prediction "
                f"outside the profile's allowed range (threshold {out['max_ratio']}).",
                "Outputs that should never happen (a negative price): the profile's allowed "
                "prediction range, from the reference or set with --prediction-range."),
        ]

    def estimation(self) -> list[Rule]:
        est = self.c.alert("MlmonEstimatedPerformanceBelowBaseline")
        w = est["window"]
        on = f"on ({q.by(MODEL_LABELS)})"
        baseline = _lookup(N.BASELINE.name, MODEL_LABELS, extra=', metric="accuracy"')
        return [
            self.rule(
                "MlmonEstimatedPerformanceBelowBaseline",
                f"{N.ESTIMATED_ACCURACY.at(w)}\n< {on}\n"
                f"({self.baseline('accuracy')} - {est['accuracy_drop']})\n"
                f"and {on}\n{N.ESTIMATED_SAMPLES.at(w)} >= {est['min_scored']}",
                "Estimated model accuracy is below its baseline.",
                f"Model {_WHERE}: estimated accuracy {_num()} over the scored predictions of "
                f"the last {w}, baseline {baseline} (drop allowed {est['accuracy_drop']}), n = "
                f"{_lookup(N.ESTIMATED_SAMPLES.at(w), MODEL_LABELS, '%.0f')} predictions.",
                "Before any label: the model's calibrated confidence says it is right less often "
                "than on the reference, because the inputs moved to where it is unsure "
                "(covariate shift). Blind to concept drift: only labels show that."),
        ]


    def challenger(self) -> list[Rule]:
        dis = self.c.alert("MlmonChallengerDisagreement")
        w = dis["window"]
        labels = (*_MODEL_LABELS, "champion_version")
        n = _lookup(N.CHALLENGER_COMPARED_INCREASE.at(w), labels, "%.0f")
        return [self.rule(
            "MlmonChallengerDisagreement",
            f"1 - {N.CHALLENGER_AGREEMENT.at(w)} > {dis['max_disagreement']}\n"
            f"and {N.CHALLENGER_COMPARED_INCREASE.at(w)} >= {self.min}",
            "A challenger model disagrees with the champion too often.",
            f"Challenger {_WHERE} disagrees with champion version "
            "{{ $labels.champion_version }} on " + _pct() + f" of {n} requests over the last "
            f"{w} (threshold {dis['max_disagreement']}).",
            "Shadow mode: the challenger would change many answers; look at where (class "
            "pairs, difference histogram) before promoting it.")]


def alert_groups(config: Config) -> list[Group]:
    """The alert groups, in a stable order."""
    a = _Alerts(config)
    return [
        Group("mlmon.alerts.drift", "Feature and prediction drift, and the no-data guard.",
              tuple(a.drift())),
        Group("mlmon.alerts.quality", "Input data quality.", tuple(a.quality())),
        Group("mlmon.alerts.model", "Prediction sanity and model lifecycle.", tuple(a.model())),
        Group("mlmon.alerts.ops", "Serving: latency, errors, traffic, scrapes.", tuple(a.ops())),
        Group("mlmon.alerts.challenger", "Champion vs challenger (shadow mode).",
              tuple(a.challenger())),
        Group("mlmon.alerts.performance",
              "Realized performance from labels, the label feed, unreasonable outputs.",
              tuple(a.performance())),
        Group("mlmon.alerts.estimation", "Estimated performance from calibrated scores.",
              tuple(a.estimation())),
    ]
