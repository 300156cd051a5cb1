"""Alert rules, generated from the config: thresholds, windows and `for:` come from there only.

Each alert carries `severity` plus the labels of the series it fires on, a fixed one-line
`summary`, a `description` templated with the values, and a `runbook_url` into
alerting/runbook.md (one section per alert, anchored by the lower-cased name).
"""

from __future__ import annotations

from typing import Any

from mlmon.alerting import promql as q
from mlmon.alerting.config import QUANTILES, Config
from mlmon.alerting.render import Group, Rule

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


def _lookup(metric: str, labels: tuple[str, ...], fmt: str = "%.3f") -> str:
    """The value of `metric` for the alert's labels, queried when the alert is rendered ("n/a"
    when the series is absent, e.g. a window emptied while the alert keeps firing)."""
    return ("{{ with " + _selector(metric, labels) + ' | query }}{{ . | first | value | printf "'
            + fmt + '" }}{{ else }}n/a{{ end }}')


_MODEL_LABELS = ("model", "model_version")
_FEATURE_LABELS = ("model", "model_version", "feature")


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

    def _drift_values(self, level: str, stat: str, labels: tuple[str, ...], w: str,
                      alpha: Any) -> str:
        """KS, its critical value and n, looked up for the description."""
        ks = _lookup(f"{level}:{stat}_ks:{w}", labels)
        critical = _lookup(f"{level}:{stat}_ks_critical:{w}", labels)
        n = _lookup(f"{level}:{stat}_samples:increase{w}", labels, "%.0f")
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
                f"model_feature:mlmon_feature_psi:{fw} > {f['psi_floor']}\n"
                f"and model_feature:mlmon_feature_ks:{fw} > "
                f"model_feature:mlmon_feature_ks_critical:{fw}\n"
                f"and model_feature:mlmon_feature_samples:increase{fw} >= {self.min}",
                "A feature's live distribution has drifted from the training data.",
                f"{_FEATURE} drifted over the last {fw}: PSI {_num()} (floor {f['psi_floor']}), "
                + self._drift_values("model_feature", "mlmon_feature", _FEATURE_LABELS, fw,
                                     f["alpha"]) + ".",
                "Significant for the window's sample size (KS above its Bonferroni critical "
                "value) AND large enough to matter (PSI above the floor)." + keep),
            self.rule(
                "MlmonPredictionDrift",
                f"model:mlmon_prediction_psi:{pw} > {p['psi_floor']}\n"
                f"and model:mlmon_prediction_ks:{pw} > model:mlmon_prediction_ks_critical:{pw}\n"
                f"and model:mlmon_prediction_samples:increase{pw} >= {self.min}",
                "The model's prediction distribution has drifted from the reference.",
                f"Predictions of model {_WHERE} drifted over the last {pw}: PSI {_num()} "
                f"(floor {p['psi_floor']}), "
                + self._drift_values("model", "mlmon_prediction", _MODEL_LABELS, pw, p["alpha"])
                + ".",
                "Prediction drift: significant and above the effect-size floor, as for features."
                + keep),
            self.rule(
                "MlmonNotEnoughData",
                f"model:mlmon_observations:increase{nd['window']} < {self.min}",
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
        invalid_ratio = (f"model_feature_reason:mlmon_feature_invalid:ratio{invalid['window']}"
                         f'{{reason=~"{reasons}"}}')
        by_reason = (
            "{{ range $i, $s := "
            + _selector(f"model_feature_reason:mlmon_feature_invalid:ratio{invalid['window']}",
                        _FEATURE_LABELS, f', reason=~"{reasons}"')
            + ' | printf "%s > 0" | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}'
            "{{ $s.Labels.reason }} {{ $s.Value | humanizePercentage }}{{ end }}")
        return [
            self.rule(
                "MlmonFeatureMissing",
                f"model_feature:mlmon_feature_missing:ratio{miss['window']}\n"
                f"> on (model, model_version, feature)\n"
                f"(max by (model, model_version, feature) "
                f"({self.latest('mlmon_feature_reference_null_rate')})"
                f" + {miss['max_increase']})\n"
                f"and on (model, model_version)\n"
                f"model:mlmon_observations:increase{miss['window']} >= {self.min}",
                "A feature is missing or null far more often than in training.",
                f"{_FEATURE} is missing in {_pct()} of records over the last {miss['window']} "
                f"(reference null rate + {miss['max_increase']} exceeded).",
                "A feature suddenly absent or null: usually an upstream pipeline change."),
            self.rule(
                "MlmonUnseenCategoriesRising",
                f"model_feature:mlmon_feature_unseen:share{unseen['window']} > "
                f"{unseen['max_share']}\n"
                f"and model_feature:mlmon_feature_samples:increase{unseen['window']} "
                f">= {self.min}",
                "A categorical feature receives many categories never seen in training.",
                f"{_FEATURE}: {_pct()} of values over the last {unseen['window']} were never "
                f"seen in training (threshold {unseen['max_share']}).",
                "New categories the model never learned."),
            self.rule(
                "MlmonInvalidValuesRising",
                f"sum without (reason) (\n  {invalid_ratio}\n) > {invalid['max_ratio']}\n"
                f"and on (model, model_version)\n"
                f"model:mlmon_observations:increase{invalid['window']} >= {self.min}",
                "A feature receives many invalid values.",
                f"{_FEATURE}: {_pct()} of records over the last {invalid['window']} were "
                f"invalid ({by_reason}; threshold {invalid['max_ratio']}).",
                "Invalid values summed over the configured reasons (one reason per value), so "
                "several small causes add up; the description breaks the share down by reason."),
            self.rule(
                "MlmonTextOOVRising",
                f"model_feature:mlmon_feature_text_oov:ratio{oov['window']}\n"
                f"> on (model, model_version, feature)\n"
                f"(max by (model, model_version, feature) "
                f"({self.latest('mlmon_feature_text_reference_oov_rate')})"
                f" + {oov['max_increase']})\n"
                f"and model_feature:mlmon_feature_text_tokens:increase{oov['window']} "
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
        wrong = "\nor\n".join(
            self.latest(f'mlmon_model_info{{model="{model}", model_version!="{version}"}}')
            for model, version in sorted(expected.items())) or "vector(0) < 0"
        return [
            self.rule(
                "MlmonPredictionNaN",
                f'model_reason:mlmon_prediction_invalid:increase{nan["window"]}'
                f'{{reason=~"nan|inf"}} > 0',
                "The model produces NaN or infinite predictions.",
                f"Model {_WHERE} produced {_num(fmt='%.0f')} {{{{ $labels.reason }}}} "
                f"predictions in the last {nan['window']}.",
                "Numerical instability: any NaN/Inf prediction is a bug."),
            self.rule(
                "MlmonMultipleModelVersions",
                "count by (model) (max by (model, model_version) "
                f"({self.latest('mlmon_model_info')})) > 1",
                "More than one version of a model is live.",
                "Model {{ $labels.model }} has {{ $value }} versions exporting at once.",
                "A stuck rollout or a forgotten replica serving an old version."),
            self.rule(
                "MlmonUnexpectedModelVersion",
                f"max by (model, model_version) (\n{wrong}\n)",
                "A model version other than the expected one is live.",
                f"Model {_WHERE} is live, but the expected version is another one "
                "(alerting/config.yaml expected_versions).",
                "The wrong model was deployed (expected versions come from the config)."),
            self.rule(
                "MlmonModelStale",
                "(time() - max by (model, model_version) "
                f"({self.latest('mlmon_model_trained_timestamp_seconds')}))"
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
                f"model:mlmon_inference_latency_seconds:{slo['quantile']}_{slo['window']} > "
                f"{slo['max_seconds']}",
                "Inference latency is above its SLO.",
                f"Model {_WHERE}: {slo['quantile']} latency over the last {slo['window']} is "
                "{{ humanizeDuration $value }} (SLO " + f"{slo['max_seconds']}s).",
                "Latency SLO breach."),
            self.rule(
                "MlmonHighErrorRatio",
                f"model:mlmon_requests_errors:ratio{err['window']} > {err['max_ratio']}",
                "Too many inference requests fail.",
                f"Model {_WHERE}: {_pct()} of requests failed over the last {err['window']} "
                f"(threshold {err['max_ratio']}).",
                "Error ratio of inference requests."),
            self.rule(
                "MlmonThroughputZero",
                f"model:mlmon_observations:rate{zero['window']} == 0",
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


def alert_groups(config: Config) -> list[Group]:
    """The alert groups, in a stable order."""
    a = _Alerts(config)
    return [
        Group("mlmon.alerts.drift", "Feature and prediction drift, and the no-data guard.",
              tuple(a.drift())),
        Group("mlmon.alerts.quality", "Input data quality.", tuple(a.quality())),
        Group("mlmon.alerts.model", "Prediction sanity and model lifecycle.", tuple(a.model())),
        Group("mlmon.alerts.ops", "Serving: latency, errors, traffic, scrapes.", tuple(a.ops())),
    ]
