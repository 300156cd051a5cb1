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
from mlmon.names import BATCH, FEATURE_LABELS, MODEL_LABELS, Reference, operation

MODEL = MODEL_LABELS
FEATURE = FEATURE_LABELS
LN2 = math.log(2.0)


def _ks_scale(n: str, m: str) -> str:
    """sqrt((n + m) / (n m)): how a two-sample KS critical value shrinks with both sample sizes."""
    return f"sqrt(({n} + {m}) / ({n} * {m}))"


@dataclass(frozen=True)
class Histogram:
    """A histogram on reference edges with its reference shares and `le` -> previous `le` map.

    Rule names take a window (`5m`) or BATCH, the latest pushed batch (`mlmon.names.operation`).
    """

    level: str  # "model_feature" or "model"
    labels: tuple[str, ...]  # beyond the model's (or batch job's) labels: ("feature",) or ()
    metric: str  # without _bucket
    reference: Reference
    what: str  # for comments

    def bucket(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}_bucket:{operation('increase', w)}"

    def count(self, w: str) -> str:
        return f"{self.level}:{self.metric}_count:{operation('increase', w)}"

    def cumulative(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}:{operation('cumulative_share', w)}"

    def bins(self, w: str) -> str:
        return f"{self.level}_le:{self.metric}:{operation('bin_share', w)}"


@dataclass(frozen=True)
class Categories:
    """Counts per category (or class) with reference shares."""

    level: str
    labels: tuple[str, ...]
    label: str  # "category" or "class"
    counter: str  # ..._total
    ref_share: str
    what: str

    @property
    def base(self) -> str:
        return self.counter.removesuffix("_total")

    def counts(self, w: str) -> str:
        return f"{self.level}_{self.label}:{self.base}:{operation('increase', w)}"

    def count(self, w: str) -> str:
        return f"{self.level}:{self.base}_count:{operation('increase', w)}"

    def shares(self, w: str) -> str:
        return f"{self.level}_{self.label}:{self.base}:{operation('share', w)}"


FEATURE_HIST = Histogram("model_feature", ("feature",), N.FEATURE_VALUE.name,
                         N.FEATURE_REFERENCE, "numeric feature")
FEATURE_CATS = Categories("model_feature", ("feature",), "category", N.FEATURE_CATEGORY.sample,
                          N.FEATURE_CATEGORY_REFERENCE_SHARE.name, "categorical feature")
PREDICTION_HIST = Histogram("model", (), N.PREDICTION_VALUE.name, N.PREDICTION_REFERENCE,
                            "regression prediction")
SCORE_HIST = Histogram("model", (), N.PREDICTION_SCORE.name, N.PREDICTION_SCORE_REFERENCE,
                       "classifier score")
PREDICTION_CLASSES = Categories("model", (), "class", N.PREDICTION_CLASS.sample,
                                N.PREDICTION_CLASS_REFERENCE_SHARE.name, "predicted class")


class _Statistics:
    """Rule builders for one sample of a model: a window of a service's counters (`_Window`)
    or the latest pushed run of a batch job (`_Batch`). The statistics are written once, here;
    a subclass says only how counts and reference gauges are read and which labels group them.
    """

    model: tuple[str, ...]  # the labels of one model's sample
    over: str  # for comments: "over 5m"
    within: str  # "in 5m"
    pooled: str  # how the counts are summed
    counts_note: str  # where to read more about them

    def __init__(self, config: Config, window: str) -> None:
        self.c = config
        self.w = window
        self.feature = (*self.model, "feature")

    def reference(self, metric: str, group: tuple[str, ...]) -> str:
        raise NotImplementedError

    def summed(self, metric: str, group: tuple[str, ...], extra: tuple[str, ...],
               counter: bool = True) -> str:
        """Counts of `metric` in the sample summed keeping `group`; `extra`: the labels beyond
        the model's, `counter`: False for a histogram _sum (which may go down)."""
        raise NotImplementedError

    def has_critical(self, alert: dict[str, object]) -> bool:
        """Whether this sample gets the critical values of `alert`'s test."""
        raise NotImplementedError

    def on_model(self) -> str:
        return f"on ({q.by(self.model)})"

    # ---- distributions -----------------------------------------------------------------

    def histogram_rules(self, h: Histogram) -> list[Rule]:
        w, g = self.w, (*self.model, *h.labels)
        prev = self.reference(h.reference.previous_le.name, (*g, "le", "previous_le"))
        extra = (*h.labels, "le")
        return [
            Rule(h.bucket(w), self.summed(f"{h.metric}_bucket", (*g, "le"), extra),
                 f"Cumulative bucket counts of the {h.what} {self.over}, {self.pooled}: the "
                 f"base of every distribution statistic{self.counts_note}."),
            Rule(h.count(w), f'sum without (le) ({h.bucket(w)}{{le="+Inf"}})',
                 f"Samples n of the {h.what} {self.within} (the +Inf bucket, so it matches the "
                 "buckets)."),
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
        group = (*self.model, *h.labels)
        ref_bin = self.reference(h.reference.bins.name, (*group, "le"))
        ref_cum = self.reference(h.reference.cumulative.name, (*group, "le"))
        eps = self.c.epsilon
        return (q.psi(h.bins(self.w), ref_bin, group, eps),
                q.ks_distance(h.cumulative(self.w), ref_cum, group),
                q.js_distance(h.bins(self.w), ref_bin, group, eps))

    def category_rules(self, cats: Categories) -> list[Rule]:
        w, g = self.w, (*self.model, *cats.labels)
        extra = (*cats.labels, cats.label)
        return [
            Rule(cats.counts(w), self.summed(cats.counter, (*g, cats.label), extra),
                 f"Count of each {cats.what} value ({cats.label}) {self.over}, {self.pooled}."),
            Rule(cats.count(w), f"sum without ({cats.label}) ({cats.counts(w)})",
                 f"Samples n of the {cats.what} {self.within}."),
            Rule(cats.shares(w),
                 f"{cats.counts(w)}\n/ ignoring ({cats.label}) group_left ()\n"
                 f"({cats.count(w)} > 0)",
                 f"Live share of each {cats.label}; absent, not NaN, for an empty window."),
        ]

    def category_drift(self, cats: Categories) -> tuple[str, str, str, str]:
        """PSI, total variation (the KS counterpart), JS and chi-square over categories."""
        group = (*self.model, *cats.labels)
        ref = self.reference(cats.ref_share, (*group, cats.label))
        eps, live = self.c.epsilon, cats.shares(self.w)
        return (q.psi(live, ref, group, eps),
                q.total_variation(live, ref, group),
                q.js_distance(live, ref, group, eps),
                q.chi_square(live, ref, cats.count(self.w), group, eps))

    # ---- groups --------------------------------------------------------------------------

    def features(self) -> Group:
        w = self.w
        psi_n, ks_n, js_n = self.histogram_drift(FEATURE_HIST)
        psi_c, tv_c, js_c, chi_c = self.category_drift(FEATURE_CATS)
        rules = [*self.histogram_rules(FEATURE_HIST), *self.category_rules(FEATURE_CATS)]
        invalid = self.summed(N.FEATURE_INVALID.sample, (*self.feature, "reason"),
                              ("feature", "reason"))
        rules += [
            Rule(N.FEATURE_PSI.at(w), f"(\n{psi_n}\n)\nor\n(\n{psi_c}\n)",
                 f"Headline: population stability index of each numeric and categorical "
                 f"feature {self.over} against the reference (shares clamped to >= epsilon)."),
            Rule(N.FEATURE_KS.at(w), f"(\n{ks_n}\n)\nor\n(\n{tv_c}\n)",
                 f"Headline: binned Kolmogorov-Smirnov distance (numeric) or total-variation "
                 f"distance (categorical, the KS of unordered values) {self.over}."),
            Rule(N.FEATURE_JS.at(w), f"(\n{js_n}\n)\nor\n(\n{js_c}\n)",
                 f"Headline: Jensen-Shannon distance (base 2, in [0, 1]) {self.over}."),
            Rule(N.FEATURE_CHI2.at(w), chi_c,
                 f"Pearson chi-square of a categorical feature's counts {self.over} against the "
                 "reference shares."),
            Rule(N.FEATURE_SAMPLES.at(w),
                 f"{FEATURE_HIST.count(w)}\nor\n{FEATURE_CATS.count(w)}",
                 f"Samples {self.within} behind each drift statistic, so alerts can require enough "
                 "data."),
            Rule(N.OBSERVATIONS_INCREASE.at(w),
                 self.summed(N.OBSERVATIONS.sample, self.model, ()),
                 f"Records observed per model version {self.within}: the denominator of the "
                 "quality ratios and the no-data alert."),
            Rule(N.FEATURE_MISSING_RATIO.at(w),
                 f"{self.summed(N.FEATURE_MISSING.sample, self.feature, ('feature',))}\n"
                 f"/ {self.on_model()} group_left ()\n"
                 f"({N.OBSERVATIONS_INCREASE.at(w)} > 0)",
                 f"Share of records with the feature absent or null {self.over}."),
            Rule(N.FEATURE_INVALID_RATIO.at(w),
                 f"{invalid}\n"
                 f"/ {self.on_model()} group_left ()\n"
                 f"({N.OBSERVATIONS_INCREASE.at(w)} > 0)",
                 f"Share of records with an invalid value, by reason, {self.over}."),
            Rule(N.FEATURE_UNSEEN_SHARE.at(w),
                 f'sum without (category) ({FEATURE_CATS.shares(w)}{{category="__unseen__"}})',
                 f"Share of a categorical feature's values never seen in training, {self.over}."),
            Rule(N.FEATURE_TEXT_TOKENS_INCREASE.at(w),
                 self.summed(N.FEATURE_TEXT_TOKENS.sample, self.feature, ("feature",)),
                 f"Tokens of each text feature {self.within}."),
            Rule(N.FEATURE_TEXT_OOV_RATIO.at(w),
                 f"{self.summed(N.FEATURE_TEXT_OOV_TOKENS.sample, self.feature, ('feature',))}\n"
                 f"/\n({N.FEATURE_TEXT_TOKENS_INCREASE.at(w)} > 0)",
                 f"Out-of-vocabulary token rate of each text feature {self.over}."),
        ]
        drift = self.c.alert("MlmonFeatureDrift")
        if self.has_critical(drift):
            rules.append(self.feature_critical(float(drift["alpha"])))
        return Group(f"mlmon.features.{w}",
                     f"Feature distributions, drift and data quality {self.over}.", tuple(rules))

    def feature_critical(self, alpha: float) -> Rule:
        w = self.w
        m = self.reference(N.FEATURE_REFERENCE_COUNT.name, self.feature)
        n_num = f"({FEATURE_HIST.count(w)} > 0)"
        n_cat = f"({FEATURE_CATS.count(w)} > 0)"
        tests = f"count by ({q.by(self.model)}) ({N.FEATURE_KS.at(w)})"
        ref_shares = self.reference(FEATURE_CATS.ref_share, (*self.feature, "category"))
        k = f"count by ({q.by(self.feature)}) ({ref_shares})"
        expr = (
            f"{_ks_scale(n_num, m)}\n"
            f"* {self.on_model()} group_left ()\n"
            f"sqrt(0.5 * ln(2 * {tests} / {alpha!r}))\n"
            f"or\n"
            f"{_ks_scale(n_cat, m)}\n"
            f"* sqrt(0.5 * (\n"
            f"  {k} * {LN2!r}\n"
            f"  + {self.on_model()} group_left ()\n"
            f"  ln({tests} / {alpha!r})\n"
            f"))"
        )
        return Rule(
            N.FEATURE_KS_CRITICAL.at(w), expr,
            f"Critical value of the KS distance {self.over} at family-wise alpha {alpha} "
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
        center = self.reference(N.PREDICTION_CENTER.name, self.model)
        rules = [*self.histogram_rules(h), *self.category_rules(cls),
                 *self.histogram_rules(SCORE_HIST)]
        squares = q.indent(self.summed(N.PREDICTION_CENTERED_SUM_SQUARES.sample, self.model, ()),
                           2).lstrip()
        rules += [
            Rule(N.PREDICTION_PSI.at(w), f"(\n{psi_r}\n)\nor\n(\n{psi_c}\n)",
                 f"Headline: PSI of the prediction distribution {self.over} (regression: value "
                 "bins; classification: predicted classes)."),
            Rule(N.PREDICTION_KS.at(w), f"(\n{ks_r}\n)\nor\n(\n{tv_c}\n)",
                 f"Headline: binned KS distance of regression predictions, or total variation "
                 f"of predicted classes, {self.over}."),
            Rule(N.PREDICTION_JS.at(w), f"(\n{js_r}\n)\nor\n(\n{js_c}\n)",
                 f"Jensen-Shannon distance of the prediction distribution {self.over}."),
            Rule(N.prediction_stat("score_psi").at(w), psi_s,
                 "PSI of the classifier's score (probability of the predicted class) "
                 f"{self.over}."),
            Rule(N.prediction_stat("score_ks").at(w), ks_s,
                 f"Binned KS distance of the classifier's score {self.over}."),
            Rule(N.prediction_stat("score_js").at(w), js_s,
                 f"Jensen-Shannon distance of the classifier's score {self.over}."),
            Rule(N.PREDICTION_SAMPLES.at(w),
                 f"{h.count(w)}\nor\n{cls.count(w)}",
                 f"Predictions {self.within} behind the prediction drift statistics."),
            Rule(mean,
                 f"{self.summed(N.PREDICTION_VALUE.sum, self.model, (), counter=False)}\n/ {n}",
                 f"Mean regression prediction {self.over}."),
            Rule(N.prediction_stat("std").at(w),
                 f"sqrt(clamp_min(\n"
                 f"  {squares}\n"
                 f"  / {n}\n  - ({mean} - {center}) ^ 2,\n  0\n))",
                 f"Standard deviation (population) of regression predictions {self.over}, from the "
                 "sum of squares centred on the reference mean c: S/n - (mean - c)^2, which "
                 "does not cancel catastrophically like E[y^2] - E[y]^2."),
            *(Rule(N.prediction_stat(name).at(w),
                   f"histogram_quantile({quant}, {h.bucket(w)})\nand\n{n}",
                   f"{label} of regression predictions {self.over}, interpolated in the bins.")
              for name, quant, label in (("median", 0.5, "Median"), ("p10", 0.1, "10th percentile"),
                                         ("p90", 0.9, "90th percentile"))),
            *self.extremes(),
            Rule(N.PREDICTION_INVALID_INCREASE.at(w),
                 self.summed(N.PREDICTION_INVALID.sample, (*self.model, "reason"), ("reason",)),
                 f"NaN / Inf / wrong-type predictions {self.within}."),
        ]
        drift = self.c.alert("MlmonPredictionDrift")
        if self.has_critical(drift):
            rules.append(self.prediction_critical(float(drift["alpha"])))
        return Group(f"mlmon.predictions.{w}",
                     f"Prediction statistics and prediction drift {self.over}.", tuple(rules))

    def prediction_critical(self, alpha: float) -> Rule:
        w = self.w
        m = self.reference(N.REFERENCE_ROWS.name, self.model)
        n_reg = f"({PREDICTION_HIST.count(w)} > 0)"
        n_cls = f"({PREDICTION_CLASSES.count(w)} > 0)"
        c_reg = math.sqrt(0.5 * math.log(2 / alpha))
        k = (f"count by ({q.by(self.model)}) "
             f"({self.reference(PREDICTION_CLASSES.ref_share, (*self.model, 'class'))})")
        expr = (
            f"{_ks_scale(n_reg, m)} * {c_reg!r}\n"
            f"or\n"
            f"{_ks_scale(n_cls, m)}\n"
            f"* sqrt(0.5 * ({k} * {LN2!r} + {math.log(1 / alpha)!r}))"
        )
        return Rule(
            N.PREDICTION_KS_CRITICAL.at(w), expr,
            f"Critical value of the prediction KS distance (or class total variation) {self.over} "
            f"at alpha {alpha}, for n predictions against the m reference rows.")

    def extremes(self) -> list[Rule]:
        """The smallest and largest prediction, where the sample has them."""
        raise NotImplementedError


class _Window(_Statistics):
    """A window of a service's counters, pooled over replicas: restart-aware window counts of
    its series only (`q.online`), never a batch run's."""

    model = MODEL
    pooled = "pooled over replicas"
    counts_note = " (restart-aware counts, see docs/drift-and-alerts.md)"

    def __init__(self, config: Config, window: str) -> None:
        self.over, self.within = f"over {window}", f"in {window}"
        super().__init__(config, window)
        self.ws = duration_seconds(window)
        self.grace = duration_seconds(config.restart_grace)

    def reference(self, metric: str, group: tuple[str, ...]) -> str:
        return q.reference(metric, group, self.c.restart_grace)

    def summed(self, metric: str, group: tuple[str, ...], extra: tuple[str, ...],
               counter: bool = True) -> str:
        return q.summed_window_count(metric, self.w, self.ws, self.grace, group, extra, counter)

    def has_critical(self, alert: dict[str, object]) -> bool:
        return bool(alert["window"] == self.w)  # the window the drift alert reads

    def extremes(self) -> list[Rule]:
        w = self.w
        return [
            Rule(N.prediction_stat("min").at(w),
                 f"min by (model, model_version) "
                 f"(min_over_time({q.online(N.PREDICTION_WINDOW_MIN.name)}[{w}]))",
                 f"Smallest prediction over {w} (from each replica's rolling minimum)."),
            Rule(N.prediction_stat("max").at(w),
                 f"max by (model, model_version) "
                 f"(max_over_time({q.online(N.PREDICTION_WINDOW_MAX.name)}[{w}]))",
                 f"Largest prediction over {w} (from each replica's rolling maximum)."),
        ]

    def ops(self) -> Group:
        w = self.w
        latency = f"model_le:{N.INFERENCE_LATENCY.bucket}:rate{w}"
        errors = q.online(N.REQUESTS.sample + '{outcome="error"}')
        any_latency = f'(sum without (le) ({latency}{{le="+Inf"}}) > 0)'
        rules = [
            Rule(N.REQUESTS_RATE.at(w),
                 f"sum by (model, model_version) (rate({q.online(N.REQUESTS.sample)}[{w}]))",
                 f"Requests per second {self.over}."),
            Rule(N.REQUESTS_ERRORS_RATIO.at(w),
                 f"sum by (model, model_version) (rate({errors}[{w}]))\n/\n"
                 f"({N.REQUESTS_RATE.at(w)} > 0)",
                 f"Share of requests that failed {self.over}."),
            Rule(N.OBSERVATIONS_RATE.at(w),
                 f"sum by (model, model_version) (rate({q.online(N.OBSERVATIONS.sample)}[{w}]))",
                 f"Records observed per second {self.over} (throughput)."),
            Rule(latency,
                 f"sum by (model, model_version, le) "
                 f"(rate({q.online(N.INFERENCE_LATENCY.bucket)}[{w}]))",
                 f"Latency histogram {self.over}, pooled over replicas, for the quantiles below."),
        ]
        for name, quant in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            rules.append(Rule(
                N.latency_quantile(name).at(w),
                f"histogram_quantile({quant}, {latency})\nand\n{any_latency}",
                f"Latency {name} {self.over} (absent without requests rather than NaN)."))
        return Group(f"mlmon.ops.{w}", f"Request rate, errors and latency {self.over}.",
                     tuple(rules))


class _Batch(_Statistics):
    """The latest pushed run of each batch job: its counts as pushed (`q.pushed`), grouped by
    job, model and version. Each run replaces its Pushgateway group, so the counts are the
    run's own and need no window difference."""

    model = N.BATCH_LABELS
    over = within = "in the latest batch"
    pooled = "as the job's latest run pushed them"
    counts_note = ""

    def __init__(self, config: Config) -> None:
        super().__init__(config, BATCH)

    def reference(self, metric: str, group: tuple[str, ...]) -> str:
        return q.reference(metric, group, self.c.restart_grace, select=q.pushed)

    def summed(self, metric: str, group: tuple[str, ...], extra: tuple[str, ...],
               counter: bool = True) -> str:
        return q.summed_pushed(metric, self.c.restart_grace, group)

    def has_critical(self, alert: dict[str, object]) -> bool:
        return True  # the batch drift alerts test every batch, at the services' alpha

    def extremes(self) -> list[Rule]:
        return []  # the rolling min/max are a service's (a batch does not push them)

    def runs(self) -> Group:
        start = q.reference(N.BATCH_RUN_START.name, self.model, self.c.restart_grace,
                            select=q.pushed)
        latest = q.reference(N.BATCH_RUN_START.name, (N.BATCH_LABEL,), self.c.restart_grace,
                             select=q.pushed)
        return Group("mlmon.batch.runs", "Which pushed group is each batch job's latest run.", (
            Rule(N.BATCH_LATEST_RUN.at(BATCH),
                 f"{start}\n== on ({N.BATCH_LABEL}) group_left ()\n{latest}",
                 "Start time of each batch job's most recent run, on that run's model version "
                 "only: the batch alerts read just this group, so the group an older model "
                 "version left on the Pushgateway neither drifts nor fails forever."),))


def window_groups(config: Config) -> list[Group]:
    """The services' groups, per window."""
    groups: list[Group] = []
    for window in config.windows:
        builder = _Window(config, window)
        groups += [builder.features(), builder.predictions(), builder.ops()]
    groups += outcome_groups(config)
    groups += estimation_groups(config)
    groups += challenger_groups(config)  # after outcome and estimation: the gaps read them
    return groups


def batch_groups(config: Config) -> list[Group]:
    """The `:batch` groups: the same statistics on each batch job's latest pushed run."""
    batch = _Batch(config)
    return [batch.features(), batch.predictions(), batch.runs()]


def recording_groups(config: Config) -> list[Group]:
    """Every recording-rule group, in a stable order."""
    return [*window_groups(config), *batch_groups(config)]
