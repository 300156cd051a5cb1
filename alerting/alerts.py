"""Alert rules, generated from the config: thresholds, windows and `for:` come from there only.

Each alert carries `severity` plus the labels of the series it fires on, a fixed one-line
`summary`, a `description` templated with the values, and a `runbook_url` into
alerting/runbook.md (one section per alert, anchored by the lower-cased name).
"""

from __future__ import annotations

import json
from typing import Any

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.config import QUANTILES, Config, duration_seconds
from mlmon.alerting.render import Group, Rule
from mlmon.names import BATCH_LABEL, BATCH_LABELS, FEATURE_LABELS, MODEL_LABELS, RuleName

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
BATCH = BATCH_LABELS
BATCH_FEATURE = (*BATCH_LABELS, "feature")
_JOB = "{{ $labels.batch_job }}"
_BATCH_WHERE = _WHERE + " in the latest batch of job " + _JOB


# The rules a drift alert's description looks up: KS, its critical value, the samples.
_FEATURE_DRIFT = (N.FEATURE_KS, N.FEATURE_KS_CRITICAL, N.FEATURE_SAMPLES)
_PREDICTION_DRIFT = (N.PREDICTION_KS, N.PREDICTION_KS_CRITICAL, N.PREDICTION_SAMPLES)


class _Alerts:
    def __init__(self, config: Config) -> None:
        self.c = config
        self.min = config.min_samples

    def latest(self, selector: str) -> str:
        """A service's exported gauge (never a batch run's: `q.online`) read at the last
        successful scrape within restart_grace: an instant read would vanish while a scrape
        fails and restart the alert's `for:`."""
        return q.latest(q.online(selector), self.c.restart_grace)

    def pushed(self, selector: str, group: tuple[str, ...] = BATCH) -> str:
        """A batch run's pushed gauge, as `latest`, one value per `group`."""
        return f"max by ({q.by(group)}) ({q.latest(q.pushed(selector), self.c.restart_grace)})"

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
        challengers = self.latest(f'{N.MODEL_ROLE_INFO.name}{{role="{N.CHALLENGER_ROLE}"}}')
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
                f'{N.PREDICTION_INVALID_INCREASE.at(ow)}{{reason="{N.OUT_OF_RANGE}"}}\n'
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

    def training(self) -> list[Rule]:
        undeployed = self.c.alert("MlmonTrainedModelNotDeployed")
        hours = undeployed["max_undeployed_hours"]
        late = self.c.alert("MlmonTrainingLate")["schedules"]
        newest = self.latest(N.TRAINING_MODEL_TRAINED.name)
        live = f"max by (model) ({self.latest(N.MODEL_TRAINED.name)})"
        # Per configured job: the age of its last success, or 1 when it has none at all.
        overdue = "\nor\n".join(
            f"(time() - max by (job, model) "
            f"({self.latest(f'{N.TRAINING_LAST_SUCCESS.name}{{job={json.dumps(job)}}}')}))"
            f" > {duration_seconds(schedule)}\n"
            f"or absent({N.TRAINING_LAST_SUCCESS.name}{{job={json.dumps(job)}}})"
            for job, schedule in sorted(late.items())) or "vector(0) < 0"
        failed_at = ("{{ with " + _selector(N.TRAINING_RUN_TIMESTAMP.name, ("job", "model"))
                     + " | query }}{{ . | first | value | humanizeTimestamp }}"
                     "{{ else }}n/a{{ end }}")
        schedule = "".join(f"{{{{ if eq $labels.job {json.dumps(job)} }}}}{duration}{{{{ end }}}}"
                           for job, duration in sorted(late.items()))
        return [
            self.rule(
                "MlmonTrainedModelNotDeployed",
                f"{newest}\n> on (model) group_left\n{live}\n"
                f"and\n(time() - {newest}) > {int(hours) * 3600}",
                "A newer trained model has not been deployed.",
                "Model {{ $labels.model }} version {{ $labels.model_version }} (job "
                "{{ $labels.job }}, trained {{ $value | humanizeTimestamp }}) is newer than "
                f"every live version and has waited more than {hours}h to be deployed.",
                "The training pipeline produced a model that never reached production: a "
                "stuck deployment, or a model rejected without anyone saying so."),
            self.rule(
                "MlmonTrainingFailed",
                f"{self.latest(N.TRAINING_RUN_SUCCESS.name)} == 0",
                "A training run failed.",
                "The last run of training job {{ $labels.job }} for model "
                "{{ $labels.model }} failed (ended " + failed_at + ").",
                "A failed (re)training: the live model keeps aging until a run succeeds."),
            self.rule(
                "MlmonTrainingLate",
                overdue,
                "A training job has not succeeded within its schedule.",
                "{{ if $labels.model }}Training job {{ $labels.job }} last succeeded for model "
                "{{ $labels.model }} {{ humanizeDuration $value }} ago (schedule "
                + schedule + "){{ else }}Training job {{ $labels.job }} has no successful run "
                "recorded{{ end }}.",
                "A retraining that did not run or keeps failing (schedules in "
                "alerting/config.yaml); absent: nothing was ever pushed for the job."),
        ]

    def host(self) -> list[Rule]:
        pushgateway = self.c.alert("MlmonPushgatewayDown")["selector"]
        disk = self.c.alert("MlmonHostDiskFilling")
        sel = disk["selector"]
        free = f"node_filesystem_avail_bytes{{{sel}}} / node_filesystem_size_bytes{{{sel}}}"
        horizon = duration_seconds(disk["horizon"])
        return [
            self.rule(
                "MlmonPushgatewayDown",
                f"up{{{pushgateway}}} == 0",
                "The Pushgateway cannot be scraped.",
                "Pushgateway {{ $labels.instance }} (job {{ $labels.job }}) is down: batch and "
                "training runs pushed to it are not seen.",
                "Batch jobs and training runs reach Prometheus only through it: their alerts go "
                "blind, and the late-run ones report jobs as never run."),
            self.rule(
                "MlmonHostDiskFilling",
                f"(\n  {free} < {disk['min_free_ratio']}\n  or\n"
                f"  ({free} < {disk['predict_free_ratio']}\n"
                f"   and predict_linear(node_filesystem_avail_bytes{{{sel}}}"
                f"[{disk['lookback']}], {horizon}) < 0)\n)\n"
                f"and node_filesystem_readonly{{{sel}}} == 0",
                "A filesystem of the monitoring host is filling up.",
                "Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} has "
                f"{_pct()} free (below {disk['min_free_ratio']}, or below "
                f"{disk['predict_free_ratio']} and running out within {disk['horizon']} "
                f"at the rate of the last {disk['lookback']}).",
                "A full disk stops the shipper's spool (records are then dropped, counted) "
                "and Prometheus' storage."),
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


def _of_job(metric: str, job: str) -> str:
    """`metric{batch_job="job"}`; json.dumps quotes the name as a PromQL string literal."""
    return f"{metric}{{{BATCH_LABEL}={json.dumps(job)}}}"


class _BatchAlerts(_Alerts):
    """Batch jobs: the services' drift and quality tests on the `:batch` rules, plus the run
    outcome and schedule. Each reads only a job's most recent run (BATCH_LATEST_RUN)."""

    def latest_run(self, expr: str) -> str:
        return (f"{expr}\nand on ({q.by(BATCH)})\n{N.BATCH_LATEST_RUN.at(N.BATCH)}")

    def drift(self) -> list[Rule]:
        b = N.BATCH
        f, p = self.c.alert("MlmonFeatureDrift"), self.c.alert("MlmonPredictionDrift")
        return [
            self.rule(
                "MlmonBatchFeatureDrift",
                self.latest_run(
                    f"{N.FEATURE_PSI.at(b)} > {f['psi_floor']}\n"
                    f"and {N.FEATURE_KS.at(b)} > {N.FEATURE_KS_CRITICAL.at(b)}\n"
                    f"and {N.FEATURE_SAMPLES.at(b)} >= {self.min}"),
                "A feature of a batch job's latest batch has drifted from the training data.",
                f"Feature {{{{ $labels.feature }}}} of model {_BATCH_WHERE} drifted: PSI "
                f"{_num()} (floor {f['psi_floor']}), "
                + self._drift_values(_FEATURE_DRIFT, BATCH_FEATURE, b, f["alpha"]) + ".",
                "The services' drift test (MlmonFeatureDrift: KS above its Bonferroni critical "
                "value and PSI above the floor) on the latest pushed batch of the job."),
            self.rule(
                "MlmonBatchPredictionDrift",
                self.latest_run(
                    f"{N.PREDICTION_PSI.at(b)} > {p['psi_floor']}\n"
                    f"and {N.PREDICTION_KS.at(b)} > {N.PREDICTION_KS_CRITICAL.at(b)}\n"
                    f"and {N.PREDICTION_SAMPLES.at(b)} >= {self.min}"),
                "The predictions of a batch job's latest batch have drifted from the reference.",
                f"Predictions of model {_BATCH_WHERE} drifted: PSI {_num()} "
                f"(floor {p['psi_floor']}), "
                + self._drift_values(_PREDICTION_DRIFT, BATCH, b, p["alpha"]) + ".",
                "The services' prediction drift test on the latest pushed batch of the job."),
        ]

    def quality(self) -> list[Rule]:
        b = N.BATCH
        miss = self.c.alert("MlmonFeatureMissing")
        unseen = self.c.alert("MlmonUnseenCategoriesRising")
        invalid = self.c.alert("MlmonInvalidValuesRising")
        oov = self.c.alert("MlmonTextOOVRising")
        reasons = "|".join(invalid["reasons"])
        on = f"on ({q.by(BATCH_FEATURE)})"
        checks = {
            "missing": (f"{N.FEATURE_MISSING_RATIO.at(b)}\n> {on}\n"
                        f"({self.pushed(N.FEATURE_REFERENCE_NULL_RATE.name, BATCH_FEATURE)}"
                        f" + {miss['max_increase']})"),
            "invalid": (f"sum without (reason) ({N.FEATURE_INVALID_RATIO.at(b)}"
                        f'{{reason=~"{reasons}"}}) > {invalid["max_ratio"]}'),
            "unseen": f"{N.FEATURE_UNSEEN_SHARE.at(b)} > {unseen['max_share']}",
            "oov": (f"{N.FEATURE_TEXT_OOV_RATIO.at(b)}\n> {on}\n"
                    f"({self.pushed(N.FEATURE_TEXT_REFERENCE_OOV_RATE.name, BATCH_FEATURE)}"
                    f" + {oov['max_increase']})"),
        }
        failing = "\nor\n".join(f'label_replace(\n{q.indent(expr, 2)},\n  "check", "{name}", '
                                 '"", ""\n)' for name, expr in checks.items())
        return [self.rule(
            "MlmonBatchDataQuality",
            self.latest_run(f"(\n{failing}\n)\nand on ({q.by(BATCH)})\n"
                            f"{N.OBSERVATIONS_INCREASE.at(b)} >= {self.min}"),
            "A feature of a batch job's latest batch fails a data-quality check.",
            f"Feature {{{{ $labels.feature }}}} of model {_BATCH_WHERE}: "
            "{{ $labels.check }} at " + _pct() + " (thresholds of the services' quality "
            "alerts: MlmonFeatureMissing, MlmonInvalidValuesRising, "
            "MlmonUnseenCategoriesRising, MlmonTextOOVRising).",
            "The services' four quality checks on the latest pushed batch, one alert per "
            "feature and failing check (label `check`), with the services' thresholds.")]

    def runs(self) -> list[Rule]:
        missed = self.c.alert("MlmonBatchJobMissed")
        rows = _lookup(N.BATCH_RUN_ROWS.name, BATCH, "%.0f")
        overdue = "\nor\n".join(
            f"time() - {self.pushed(_of_job(N.BATCH_LAST_SUCCESS.name, job), (BATCH_LABEL,))}"
            f" > {duration_seconds(limit)}"
            for job, limit in sorted(missed["schedules"].items())) or "vector(0) < 0"
        return [
            self.rule(
                "MlmonBatchJobFailed",
                self.latest_run(f"{self.pushed(N.BATCH_RUN_SUCCESS.name)} == 0"),
                "The latest run of a batch job failed.",
                f"The latest run of batch job {_JOB} (model {_WHERE}) failed after scoring "
                f"{rows} rows.",
                "The job pushed outcome 0 (an exception in the job, or `mlmon batch` could not "
                "read its file); the drift statistics still describe its last successful run."),
            self.rule(
                "MlmonBatchJobMissed",
                overdue,
                "A batch job has not succeeded within its schedule.",
                f"Batch job {_JOB} last succeeded "
                "{{ humanizeDuration $value }} ago, longer than its schedule allows "
                "(alerting/config.yaml schedules).",
                "From the job's last-success time, over all its model versions: the job did "
                "not run, failed, or its pushes do not reach the Pushgateway."),
        ]


def alert_groups(config: Config) -> list[Group]:
    """The alert groups, in a stable order."""
    a, b = _Alerts(config), _BatchAlerts(config)
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
        Group("mlmon.alerts.training", "Training pipelines: failed, late, never deployed.",
              tuple(a.training())),
        Group("mlmon.alerts.host", "The host the stack runs on, and its Pushgateway.",
              tuple(a.host())),
        Group("mlmon.alerts.batch", "Batch jobs: drift, data quality, failed and missed runs.",
              tuple([*b.drift(), *b.quality(), *b.runs()])),
        Group("mlmon.alerts.estimation", "Estimated performance from calibrated scores.",
              tuple(a.estimation())),
    ]
