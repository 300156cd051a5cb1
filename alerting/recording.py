"""Recording rules: live distributions, drift statistics, data quality, prediction and ops stats.

Names follow `level:metric:operations`. Every statistic is per model, model_version (and feature)
and summed over all replicas first, so it describes the pooled traffic of the model. One group
per window and area; rules inside a group run in order, so later rules read earlier ones at the
same timestamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.challenger import challenger_groups
from mlmon.alerting.config import Config, duration_seconds
from mlmon.alerting.estimation import estimation_groups
from mlmon.alerting.outcomes import outcome_groups
from mlmon.alerting.render import Group, Rule
from mlmon.names import FEATURE_LABELS, MODEL_LABELS, Reference

MODEL = MODEL_LABELS
FEATURE = FEATURE_LABELS
LN2 = math.log(2.0)


def _ks_scale(n: str, m: str) -> str:
    """sqrt((n + m) / (n m)): how a two-sample KS critical value shrinks with both sample sizes."""
    return f"sqrt(({n} + {m}) / ({n} * {m}))"


@dataclass(frozen=True)
class Histogram:
    """A histogram on reference edges with its reference shares and `le` -> previous `le` map."""

    level: str  # "model_feature" or "model"
    group: tuple[str, ...]
    metric: str  # without _bucket
    reference: Reference
    what: str  # for comments

    def bucket(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}_bucket:increase{w}"

    def count(self, w: str) -> str:
        return f"{self.level}:{self.metric}_count:increase{w}"

    def cumulative(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}:cumulative_share{w}"

    def bins(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}:bin_share{w}"


@dataclass(frozen=True)
class Categories:
    """Counts per category (or class) with reference shares."""

    level: str
    group: tuple[str, ...]
    label: str  # "category" or "class"
    counter: str  # ..._total
    ref_share: str
    what: str

    @property
    def base(self) -> str:
        return self.counter.removesuffix("_total")

    def counts(self, w: str) -> str:
        return f"{self.level}_{self.label}:{self.base}:increase{w}"

    def count(self, w: str) -> str:
        return f"{self.level}:{self.base}_count:increase{w}"

    def shares(self, w: str) -> str:
        return f"{self.level}_{self.label}:{self.base}:share{w}"


FEATURE_HIST = Histogram("model_feature", FEATURE, N.FEATURE_VALUE.name,
                         N.FEATURE_REFERENCE, "numeric feature")
FEATURE_CATS = Categories("model_feature", FEATURE, "category", N.FEATURE_CATEGORY.sample,
                          N.FEATURE_CATEGORY_REFERENCE_SHARE.name, "categorical feature")
PREDICTION_HIST = Histogram("model", MODEL, N.PREDICTION_VALUE.name, N.PREDICTION_REFERENCE,
                            "regression prediction")
SCORE_HIST = Histogram("model", MODEL, N.PREDICTION_SCORE.name, N.PREDICTION_SCORE_REFERENCE,
                       "classifier score")
PREDICTION_CLASSES = Categories("model", MODEL, "class", N.PREDICTION_CLASS.sample,
                                N.PREDICTION_CLASS_REFERENCE_SHARE.name, "predicted class")


class _Window:
    """Rule builders for one window."""

    def __init__(self, config: Config, window: str) -> None:
        self.c = config
        self.w = window
        self.ws = duration_seconds(window)
        self.grace = duration_seconds(config.restart_grace)

    def reference(self, metric: str, group: tuple[str, ...]) -> str:
        return q.reference(metric, group, self.c.restart_grace)

    def summed(self, metric: str, group: tuple[str, ...], extra: tuple[str, ...],
               counter: bool = True) -> str:
        return q.summed_window_count(metric, self.w, self.ws, self.grace, group, extra, counter)

    # ---- distributions -----------------------------------------------------------------

    def histogram_rules(self, h: Histogram) -> list[Rule]:
        w, g = self.w, h.group
        prev = self.reference(h.reference.previous_le.name, (*g, "le", "previous_le"))
        extra = tuple(x for x in g if x not in MODEL) + ("le",)
        return [
            Rule(h.bucket(w), self.summed(f"{h.metric}_bucket", (*g, "le"), extra),
                 f"Cumulative bucket counts of the {h.what} over {w}, pooled over replicas: the "
                 "base of every distribution statistic (restart-aware counts, see "
                 "docs/drift-and-alerts.md)."),
            Rule(h.count(w), f'sum without (le) ({h.bucket(w)}{{le="+Inf"}})',
                 f"Samples n of the {h.what} in {w} (the +Inf bucket, so it matches the buckets)."),
            Rule(h.cumulative(w),
                 f"{h.bucket(w)}\n/ ignoring (le) group_left ()\n({h.count(w)} > 0)",
                 f"Live cumulative share F(le) of the {h.what}; absent, not NaN, for an empty "
                 "window."),
            Rule(h.bins(w),
                 f"{h.cumulative(w)}\n- on ({q.by(g)}, le)\nsum by ({q.by(g)}, le) (\n"
                 f"  {prev}\n  * on ({q.by(g)}, previous_le) group_left ()\n"
                 f'  label_replace({h.cumulative(w)}, "previous_le", "$1", "le", "(.*)")\n)\n'
                 f"or\n{h.cumulative(w)}",
                 f"Live share of each bin (previous le, le] of the {h.what}: F(le) - F(previous "
                 "le) through the exporter's le -> previous_le map; the first bucket is its own "
                 "bin."),
        ]

    def histogram_drift(self, h: Histogram) -> tuple[str, str, str]:
        """PSI, KS and JS expressions of a histogram against its reference."""
        g = (*h.group, "le")
        ref_bin = self.reference(h.reference.bins.name, g)
        ref_cum = self.reference(h.reference.cumulative.name, g)
        eps = self.c.epsilon
        return (q.psi(h.bins(self.w), ref_bin, h.group, eps),
                q.ks_distance(h.cumulative(self.w), ref_cum, h.group),
                q.js_distance(h.bins(self.w), ref_bin, h.group, eps))

    def category_rules(self, cats: Categories) -> list[Rule]:
        w, g = self.w, cats.group
        extra = tuple(x for x in g if x not in MODEL) + (cats.label,)
        return [
            Rule(cats.counts(w), self.summed(cats.counter, (*g, cats.label), extra),
                 f"Count of each {cats.what} value ({cats.label}) over {w}, pooled over "
                 "replicas."),
            Rule(cats.count(w), f"sum without ({cats.label}) ({cats.counts(w)})",
                 f"Samples n of the {cats.what} in {w}."),
            Rule(cats.shares(w),
                 f"{cats.counts(w)}\n/ ignoring ({cats.label}) group_left ()\n"
                 f"({cats.count(w)} > 0)",
                 f"Live share of each {cats.label}; absent, not NaN, for an empty window."),
        ]

    def category_drift(self, cats: Categories) -> tuple[str, str, str, str]:
        """PSI, total variation (the KS counterpart), JS and chi-square over categories."""
        ref = self.reference(cats.ref_share, (*cats.group, cats.label))
        eps, live = self.c.epsilon, cats.shares(self.w)
        return (q.psi(live, ref, cats.group, eps),
                q.total_variation(live, ref, cats.group),
                q.js_distance(live, ref, cats.group, eps),
                q.chi_square(live, ref, cats.count(self.w), cats.group, eps))

    # ---- groups --------------------------------------------------------------------------

    def features(self) -> Group:
        w = self.w
        psi_n, ks_n, js_n = self.histogram_drift(FEATURE_HIST)
        psi_c, tv_c, js_c, chi_c = self.category_drift(FEATURE_CATS)
        rules = [*self.histogram_rules(FEATURE_HIST), *self.category_rules(FEATURE_CATS)]
        invalid = self.summed(N.FEATURE_INVALID.sample, (*FEATURE, "reason"),
                              ("feature", "reason"))
        rules += [
            Rule(N.FEATURE_PSI.at(w), f"(\n{psi_n}\n)\nor\n(\n{psi_c}\n)",
                 f"Headline: population stability index of each numeric and categorical "
                 f"feature over {w} against the reference (shares clamped to >= epsilon)."),
            Rule(N.FEATURE_KS.at(w), f"(\n{ks_n}\n)\nor\n(\n{tv_c}\n)",
                 f"Headline: binned Kolmogorov-Smirnov distance (numeric) or total-variation "
                 f"distance (categorical, the KS of unordered values) over {w}."),
            Rule(N.FEATURE_JS.at(w), f"(\n{js_n}\n)\nor\n(\n{js_c}\n)",
                 f"Headline: Jensen-Shannon distance (base 2, in [0, 1]) over {w}."),
            Rule(N.FEATURE_CHI2.at(w), chi_c,
                 f"Pearson chi-square of a categorical feature's counts over {w} against the "
                 "reference shares."),
            Rule(N.FEATURE_SAMPLES.at(w),
                 f"{FEATURE_HIST.count(w)}\nor\n{FEATURE_CATS.count(w)}",
                 f"Samples in {w} behind each drift statistic, so alerts can require enough "
                 "data."),
            Rule(N.OBSERVATIONS_INCREASE.at(w),
                 self.summed(N.OBSERVATIONS.sample, MODEL, ()),
                 f"Records observed per model version in {w}: the denominator of the quality "
                 "ratios and the no-data alert."),
            Rule(N.FEATURE_MISSING_RATIO.at(w),
                 f"{self.summed(N.FEATURE_MISSING.sample, FEATURE, ('feature',))}\n"
                 f"/ on (model, model_version) group_left ()\n"
                 f"({N.OBSERVATIONS_INCREASE.at(w)} > 0)",
                 f"Share of records with the feature absent or null over {w}."),
            Rule(N.FEATURE_INVALID_RATIO.at(w),
                 f"{invalid}\n"
                 f"/ on (model, model_version) group_left ()\n"
                 f"({N.OBSERVATIONS_INCREASE.at(w)} > 0)",
                 f"Share of records with an invalid value, by reason, over {w}."),
            Rule(N.FEATURE_UNSEEN_SHARE.at(w),
                 f'sum without (category) ({FEATURE_CATS.shares(w)}{{category="__unseen__"}})',
                 f"Share of a categorical feature's values never seen in training, over {w}."),
            Rule(N.FEATURE_TEXT_TOKENS_INCREASE.at(w),
                 self.summed(N.FEATURE_TEXT_TOKENS.sample, FEATURE, ("feature",)),
                 f"Tokens of each text feature in {w}."),
            Rule(N.FEATURE_TEXT_OOV_RATIO.at(w),
                 f"{self.summed(N.FEATURE_TEXT_OOV_TOKENS.sample, FEATURE, ('feature',))}\n"
                 f"/\n({N.FEATURE_TEXT_TOKENS_INCREASE.at(w)} > 0)",
                 f"Out-of-vocabulary token rate of each text feature over {w}."),
        ]
        drift = self.c.alert("MlmonFeatureDrift")
        if drift["window"] == w:
            rules.append(self.feature_critical(float(drift["alpha"])))
        return Group(f"mlmon.features.{w}",
                     f"Feature distributions, drift and data quality over {w}.", tuple(rules))

    def feature_critical(self, alpha: float) -> Rule:
        w = self.w
        m = self.reference(N.FEATURE_REFERENCE_COUNT.name, FEATURE)
        n_num = f"({FEATURE_HIST.count(w)} > 0)"
        n_cat = f"({FEATURE_CATS.count(w)} > 0)"
        tests = f"count by (model, model_version) ({N.FEATURE_KS.at(w)})"
        ref_shares = self.reference(FEATURE_CATS.ref_share, (*FEATURE, "category"))
        k = f"count by ({q.by(FEATURE)}) ({ref_shares})"
        expr = (
            f"{_ks_scale(n_num, m)}\n"
            f"* on (model, model_version) group_left ()\n"
            f"sqrt(0.5 * ln(2 * {tests} / {alpha!r}))\n"
            f"or\n"
            f"{_ks_scale(n_cat, m)}\n"
            f"* sqrt(0.5 * (\n"
            f"  {k} * {LN2!r}\n"
            f"  + on (model, model_version) group_left ()\n"
            f"  ln({tests} / {alpha!r})\n"
            f"))"
        )
        return Rule(
            N.FEATURE_KS_CRITICAL.at(w), expr,
            f"Critical value of the KS distance over {w} at family-wise alpha {alpha} "
            "(Bonferroni over the model's features): c * sqrt((n + m) / (n m)) with "
            "c = sqrt(ln(2F / alpha) / 2) for numeric features, and the Bretagnolle-Huber-Carol "
            "bound c = sqrt((k ln 2 + ln(F / alpha)) / 2) for a categorical total variation over "
            "k categories.")

    def predictions(self) -> Group:
        w, h, cls = self.w, PREDICTION_HIST, PREDICTION_CLASSES
        psi_r, ks_r, js_r = self.histogram_drift(h)
        psi_c, tv_c, js_c, _ = self.category_drift(cls)
        psi_s, ks_s, js_s = self.histogram_drift(SCORE_HIST)
        n = f"({h.count(w)} > 0)"
        mean = N.prediction_stat("mean").at(w)
        center = self.reference(N.PREDICTION_CENTER.name, MODEL)
        rules = [*self.histogram_rules(h), *self.category_rules(cls),
                 *self.histogram_rules(SCORE_HIST)]
        squares = q.indent(self.summed(N.PREDICTION_CENTERED_SUM_SQUARES.sample, MODEL, ()),
                           2).lstrip()
        rules += [
            Rule(N.PREDICTION_PSI.at(w), f"(\n{psi_r}\n)\nor\n(\n{psi_c}\n)",
                 f"Headline: PSI of the prediction distribution over {w} (regression: value "
                 "bins; classification: predicted classes)."),
            Rule(N.PREDICTION_KS.at(w), f"(\n{ks_r}\n)\nor\n(\n{tv_c}\n)",
                 f"Headline: binned KS distance of regression predictions, or total variation "
                 f"of predicted classes, over {w}."),
            Rule(N.PREDICTION_JS.at(w), f"(\n{js_r}\n)\nor\n(\n{js_c}\n)",
                 f"Jensen-Shannon distance of the prediction distribution over {w}."),
            Rule(N.prediction_stat("score_psi").at(w), psi_s,
                 f"PSI of the classifier's score (probability of the predicted class) over {w}."),
            Rule(N.prediction_stat("score_ks").at(w), ks_s,
                 f"Binned KS distance of the classifier's score over {w}."),
            Rule(N.prediction_stat("score_js").at(w), js_s,
                 f"Jensen-Shannon distance of the classifier's score over {w}."),
            Rule(N.PREDICTION_SAMPLES.at(w),
                 f"{h.count(w)}\nor\n{cls.count(w)}",
                 f"Predictions in {w} behind the prediction drift statistics."),
            Rule(mean,
                 f"{self.summed(N.PREDICTION_VALUE.sum, MODEL, (), counter=False)}\n/ {n}",
                 f"Mean regression prediction over {w}."),
            Rule(N.prediction_stat("std").at(w),
                 f"sqrt(clamp_min(\n"
                 f"  {squares}\n"
                 f"  / {n}\n  - ({mean} - {center}) ^ 2,\n  0\n))",
                 f"Standard deviation (population) of regression predictions over {w}, from the "
                 "sum of squares centred on the reference mean c: S/n - (mean - c)^2, which "
                 "does not cancel catastrophically like E[y^2] - E[y]^2."),
            *(Rule(N.prediction_stat(name).at(w),
                   f"histogram_quantile({quant}, {h.bucket(w)})\nand\n{n}",
                   f"{label} of regression predictions over {w}, interpolated in the bins.")
              for name, quant, label in (("median", 0.5, "Median"), ("p10", 0.1, "10th percentile"),
                                         ("p90", 0.9, "90th percentile"))),
            Rule(N.prediction_stat("min").at(w),
                 f"min by (model, model_version) "
                 f"(min_over_time({N.PREDICTION_WINDOW_MIN.name}[{w}]))",
                 f"Smallest prediction over {w} (from each replica's rolling minimum)."),
            Rule(N.prediction_stat("max").at(w),
                 f"max by (model, model_version) "
                 f"(max_over_time({N.PREDICTION_WINDOW_MAX.name}[{w}]))",
                 f"Largest prediction over {w} (from each replica's rolling maximum)."),
            Rule(N.PREDICTION_INVALID_INCREASE.at(w),
                 self.summed(N.PREDICTION_INVALID.sample, (*MODEL, "reason"), ("reason",)),
                 f"NaN / Inf / wrong-type predictions in {w}."),
        ]
        drift = self.c.alert("MlmonPredictionDrift")
        if drift["window"] == w:
            rules.append(self.prediction_critical(float(drift["alpha"])))
        return Group(f"mlmon.predictions.{w}",
                     f"Prediction statistics and prediction drift over {w}.", tuple(rules))

    def prediction_critical(self, alpha: float) -> Rule:
        w = self.w
        m = self.reference(N.REFERENCE_ROWS.name, MODEL)
        n_reg = f"({PREDICTION_HIST.count(w)} > 0)"
        n_cls = f"({PREDICTION_CLASSES.count(w)} > 0)"
        c_reg = math.sqrt(0.5 * math.log(2 / alpha))
        k = (f"count by (model, model_version) "
             f"({self.reference(PREDICTION_CLASSES.ref_share, (*MODEL, 'class'))})")
        expr = (
            f"{_ks_scale(n_reg, m)} * {c_reg!r}\n"
            f"or\n"
            f"{_ks_scale(n_cls, m)}\n"
            f"* sqrt(0.5 * ({k} * {LN2!r} + {math.log(1 / alpha)!r}))"
        )
        return Rule(
            N.PREDICTION_KS_CRITICAL.at(w), expr,
            f"Critical value of the prediction KS distance (or class total variation) over {w} "
            f"at alpha {alpha}, for n predictions against the m reference rows.")

    def ops(self) -> Group:
        w = self.w
        latency = f"model_le:{N.INFERENCE_LATENCY.bucket}:rate{w}"
        any_latency = f'(sum without (le) ({latency}{{le="+Inf"}}) > 0)'
        rules = [
            Rule(N.REQUESTS_RATE.at(w),
                 f"sum by (model, model_version) (rate({N.REQUESTS.sample}[{w}]))",
                 f"Requests per second over {w}."),
            Rule(N.REQUESTS_ERRORS_RATIO.at(w),
                 f'sum by (model, model_version) (rate({N.REQUESTS.sample}{{outcome="error"}}'
                 f"[{w}]))\n/\n({N.REQUESTS_RATE.at(w)} > 0)",
                 f"Share of requests that failed over {w}."),
            Rule(N.OBSERVATIONS_RATE.at(w),
                 f"sum by (model, model_version) (rate({N.OBSERVATIONS.sample}[{w}]))",
                 f"Records observed per second over {w} (throughput)."),
            Rule(latency,
                 f"sum by (model, model_version, le) "
                 f"(rate({N.INFERENCE_LATENCY.bucket}[{w}]))",
                 f"Latency histogram over {w}, pooled over replicas, for the quantiles below."),
        ]
        for name, quant in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            rules.append(Rule(
                N.latency_quantile(name).at(w),
                f"histogram_quantile({quant}, {latency})\nand\n{any_latency}",
                f"Latency {name} over {w} (absent without requests rather than NaN)."))
        return Group(f"mlmon.ops.{w}", f"Request rate, errors and latency over {w}.",
                     tuple(rules))


def recording_groups(config: Config) -> list[Group]:
    """Every recording-rule group, in a stable order."""
    groups: list[Group] = []
    for window in config.windows:
        builder = _Window(config, window)
        groups += [builder.features(), builder.predictions(), builder.ops()]
    groups += outcome_groups(config)
    groups += estimation_groups(config)
    groups += challenger_groups(config)  # after outcome and estimation: the gaps read them
    return groups
