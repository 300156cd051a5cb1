"""Where every counter of a monitor lives in one flat array of doubles.

The hot path (`mlmon.exporter.monitor`) only adds to slots; the collector
(`mlmon.exporter.collector`) reads
the same slots at scrape time. Both take their offsets from a `Layout`, computed once from the
profile, so the per-request work is "find a slot, add to it" and nothing else.

Slot order is a pure function of the profile and the options: processes that share a profile
share a layout, which is what lets the multi-process collector sum their files element-wise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlmon.exporter.profile import (
    CategoricalFeature,
    ClassificationPrediction,
    NumericFeature,
    Profile,
    RegressionPrediction,
    TextFeature,
)
from mlmon.exporter.values import INF, NAN, NOT_ALLOWED, OUT_OF_RANGE, WRONG_TYPE

# prometheus_client's default latency buckets: familiar to anyone reading a latency panel.
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
DEFAULT_WINDOW_S = 60.0
# The prediction min/max window is kept in this many rotating time slots (window_s / slots each).
WINDOW_SLOTS = 6

# The version of the slot order. Bumped whenever one profile's slots change between mlmon
# versions (2: the outcome slots, and out_of_range for regressions; 3: the expected confusion
# matrix of a classifier with scores, for estimated performance; 4: the outcome reasons
# `join_error` and `closed`; 5: the worker file errors). It is part of the names of
# multi-process files (`Layout.file_key`), so files written with another slot order, left in a
# kept directory across an upgrade, are never read as this one's: their doubles would land in
# other slots.
LAYOUT_VERSION = 5

# Fixed sets, so every labelled child can exist at 0 from start-up.
REJECTED_REASONS = (
    "not_a_mapping", "batch_length_mismatch", "bad_batch", "bad_score", "bad_latency",
    "internal_error",
)
# Why a worker process could not open its own multi-process file (mlmon.exporter.worker_files
# classifies the error): the filesystem is full (space, inodes or quota), the directory is not
# writable (read-only, permissions), the process or system ran out of file descriptors, else.
NO_SPACE, NOT_WRITABLE, NO_FILE_DESCRIPTORS, OTHER_ERROR = (
    "no_space", "not_writable", "no_file_descriptors", "other")
WORKER_FILE_ERRORS = (NO_SPACE, NOT_WRITABLE, NO_FILE_DESCRIPTORS, OTHER_ERROR)
# The reasons' names are mlmon.exporter.values' (the module that classifies values).
# A NaN feature is missing (values.py), so NaN is no numeric reason.
NUMERIC_REASONS: tuple[str, ...] = (OUT_OF_RANGE, INF, WRONG_TYPE)
CATEGORICAL_REASONS: tuple[str, ...] = (NOT_ALLOWED, WRONG_TYPE)
TEXT_REASONS: tuple[str, ...] = (WRONG_TYPE,)
PREDICTION_REASONS: tuple[str, ...] = (NAN, INF, WRONG_TYPE)
# a regression prediction outside the profile's allowed range (counted in the histogram too)
REGRESSION_REASONS: tuple[str, ...] = (*PREDICTION_REASONS, OUT_OF_RANGE)
OUTCOMES = ("ok", "error")
OTHER, UNSEEN = "__other__", "__unseen__"

# Why a label was not counted (mlmon_outcome_rejected_total{reason}). The value reasons are
# mlmon.exporter.values' (an actual is judged like a prediction); `bad_delay` is the exception:
# the outcome is counted, only its delay is not (unusable timestamps, or a label "before" its
# prediction). `unknown_id`, `duplicate` and `unknown_model` are the join's (`mlmon outcomes`).
MISSING_PREDICTION, INVALID_PREDICTION, MISSING_ACTUAL = (
    "missing_prediction", "invalid_prediction", "missing_actual")
BAD_DELAY, BAD_BATCH = "bad_delay", "bad_batch"
NO_PREDICTION_IN_PROFILE = "no_prediction_in_profile"
UNKNOWN_ID, DUPLICATE, UNKNOWN_MODEL = "unknown_id", "duplicate", "unknown_model"
# Also the join's (mlmon.log_shipper.join, .outcome_worker): an arrival time that is no time, a
# write Elasticsearch refused, Elasticsearch unreachable until the label was given up, the
# service's outcome queue full, the join raising (a bug), and labels left when the service's
# worker closed (submitted after `close()`, or still queued when its timeout ran out).
BAD_ARRIVAL, WRITE_ERROR, ES_UNAVAILABLE, QUEUE_FULL = (
    "bad_arrival", "write_error", "es_unavailable", "queue_full")
JOIN_ERROR, CLOSED = "join_error", "closed"
OUTCOME_REJECTED_REASONS: tuple[str, ...] = (
    MISSING_PREDICTION, INVALID_PREDICTION, MISSING_ACTUAL, WRONG_TYPE, NAN, INF, BAD_DELAY,
    BAD_BATCH, NO_PREDICTION_IN_PROFILE, UNKNOWN_ID, DUPLICATE, UNKNOWN_MODEL, BAD_ARRIVAL,
    WRITE_ERROR, ES_UNAVAILABLE, QUEUE_FULL, "internal_error", JOIN_ERROR, CLOSED,
)
# Label delay buckets (seconds): 1 s to 90 days, dense where labels of online services arrive
# (seconds to hours) and at the day marks of batch labelling (nightly files, weekly reviews).
LABEL_DELAY_BUCKETS: tuple[float, ...] = (
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0,
    86400.0, 2 * 86400.0, 4 * 86400.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0, 60 * 86400.0,
    90 * 86400.0,
)

# Offsets inside one numeric feature's block: missing, 4 reasons, then the buckets and the sum
# (buckets + sum are contiguous: the hot path gets them as one segment, sum last).
NUM_MISSING, NUM_OUT_OF_RANGE, NUM_INF, NUM_WRONG_TYPE, NUM_BUCKETS = range(5)
# Categorical block: missing, not_allowed, wrong_type, then top-K categories, __other__, __unseen__.
CAT_MISSING, CAT_NOT_ALLOWED, CAT_WRONG_TYPE, CAT_CATEGORIES = range(4)
# Text block: missing, wrong_type, tokens, oov tokens.
TXT_MISSING, TXT_WRONG_TYPE, TXT_TOKENS, TXT_OOV = range(4)


@dataclass(frozen=True)
class Histogram:
    """Bucket slots [base, base + len(edges) + 1) (non-cumulative, +Inf last) and a sum slot."""

    base: int
    edges: tuple[float, ...]
    sum_slot: int


@dataclass(frozen=True)
class OutcomePlan:
    """Slots of the outcome series (mlmon.exporter.outcomes counts into them).

    Classification: a k x k confusion matrix at `matrix` (row = predicted, column = actual,
    index from `class_index`, the profile's classes then `__unseen__` = k - 1). Regression: the
    error histogram (its sum is the summed error) and the sums of |error| and error^2.
    """

    rejected: dict[str, int]
    delay: Histogram
    classes: tuple[str, ...] = ()
    class_index: dict[str, int] | None = None
    matrix: int = -1
    error: Histogram | None = None
    absolute: int = -1
    squared: int = -1


@dataclass(frozen=True)
class NumericPlan:
    name: str
    base: int
    edges: tuple[float, ...]
    low: float
    high: float

    @property
    def histogram(self) -> Histogram:
        buckets = self.base + NUM_BUCKETS
        return Histogram(buckets, self.edges, buckets + len(self.edges) + 1)


@dataclass(frozen=True)
class CategoricalPlan:
    name: str
    base: int
    categories: tuple[str, ...]       # top-K, then __other__, __unseen__
    slots: dict[str, int]             # category -> absolute slot (top-K and other seen values)
    unseen_slot: int
    allowed: frozenset[str] | None    # None: "seen in training"


@dataclass(frozen=True)
class TextPlan:
    name: str
    base: int
    vocabulary: frozenset[str]


class Layout:
    """Slot offsets for one profile; `size` doubles in all."""

    def __init__(
        self,
        profile: Profile,
        latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS,
        window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.profile = profile
        self.latency_buckets = tuple(float(b) for b in latency_buckets)
        self.window_s = float(window_s)
        self.slot_s = self.window_s / WINDOW_SLOTS
        self._next = 0
        self.observations = self._take(1)
        self.unknown_features = self._take(1)
        self.rejected = {r: self._take(1) for r in REJECTED_REASONS}
        # counted in process memory while a worker has no file, and carried into it once open
        self.worker_file_errors = {r: self._take(1) for r in WORKER_FILE_ERRORS}
        self.requests = {o: self._take(1) for o in OUTCOMES}
        self.in_flight = self._take(1)  # a gauge: cleared when a dead worker's file is retired
        self.latency = self._histogram(self.latency_buckets)
        self.numeric: list[NumericPlan] = []
        self.categorical: list[CategoricalPlan] = []
        self.text: list[TextPlan] = []
        for feature in profile.features:
            if isinstance(feature, NumericFeature):
                self._numeric(feature)
            elif isinstance(feature, CategoricalFeature):
                self._categorical(feature)
            elif isinstance(feature, TextFeature):
                self.text.append(TextPlan(feature.name, self._take(4),
                                          frozenset(feature.vocabulary)))
        self.prediction_invalid: dict[str, int] = {}
        self.prediction: Histogram | None = None
        self.centered_sum_squares = -1
        self.center = 0.0
        self.window = -1  # WINDOW_SLOTS triples (slot id, min, max)
        self.classes: tuple[str, ...] = ()
        self.class_slots: dict[str, int] = {}
        self.class_unseen = -1
        self.score: Histogram | None = None
        self.estimated = -1
        pred = profile.prediction
        if pred is not None:
            reasons = (REGRESSION_REASONS if isinstance(pred, RegressionPrediction)
                       else PREDICTION_REASONS)
            self.prediction_invalid = {r: self._take(1) for r in reasons}
        if isinstance(pred, RegressionPrediction):
            self.prediction = self._histogram(pred.binned.edges)
            self.centered_sum_squares = self._take(1)
            self.center = pred.binned.mean
            self.window = self._take(3 * WINDOW_SLOTS)
        elif isinstance(pred, ClassificationPrediction):
            self.classes = pred.classes
            base = self._take(len(pred.classes) + 1)
            self.class_slots = {c: base + i for i, c in enumerate(pred.classes)}
            self.class_unseen = base + len(pred.classes)
            if pred.score is not None:
                self.score = self._histogram(pred.score.edges)
                # the expected confusion matrix, row-major: (predicted i, actual j) at i*C + j
                self.estimated = self._take(len(pred.classes) ** 2)
        self.outcomes = plan_outcomes(profile, self._take)
        self.size = self._next

    def _take(self, n: int) -> int:
        start, self._next = self._next, self._next + n
        return start

    def clear_gauges(self, values: Any) -> None:
        """Clear the slots that are gauges, not counters: in-flight and the prediction window
        (in a dead worker's counts, or a fresh worker file)."""
        values[self.in_flight] = 0.0
        if self.window >= 0:
            # slot id -1 never matches a current slot, so the window reads as empty
            for i in range(WINDOW_SLOTS):
                values[self.window + 3 * i] = -1.0

    def _histogram(self, edges: tuple[float, ...]) -> Histogram:
        return _histogram(self._take, edges)

    def _numeric(self, f: NumericFeature) -> None:
        base = self._take(NUM_BUCKETS + len(f.binned.edges) + 2)
        low, high = f.allowed_range
        self.numeric.append(NumericPlan(f.name, base, f.binned.edges, low, high))

    def _categorical(self, f: CategoricalFeature) -> None:
        k = len(f.top_categories)
        base = self._take(CAT_CATEGORIES + k + 2)
        other = base + CAT_CATEGORIES + k
        slots = {c: other for c in f.seen}
        slots.update({c: base + CAT_CATEGORIES + i for i, c in enumerate(f.top_categories)})
        allowed = None if f.allowed is None else frozenset(f.allowed)
        self.categorical.append(CategoricalPlan(
            f.name, base, (*f.top_categories, OTHER, UNSEEN), slots, other + 1, allowed,
        ))

    @property
    def file_key(self) -> str:
        """Names this layout's multi-process files: the profile's sha and the slot order's
        version (`<sha>-v5`), so another mlmon version's files of the profile are not read."""
        return f"{self.profile.sha}-v{LAYOUT_VERSION}"

    def signature(self) -> tuple[object, ...]:
        """What decides the slots and the labels of the live series. Files of two profiles with
        equal signatures (e.g. the same bins, retrained shares) can be summed element-wise."""
        pred = self.prediction
        return (
            self.size, self.latency_buckets, self.window_s,
            tuple((p.name, p.base, p.edges) for p in self.numeric),
            tuple((p.name, p.base, p.categories) for p in self.categorical),
            tuple((p.name, p.base) for p in self.text),
            None if pred is None else (pred.base, pred.edges),
            self.classes, None if self.score is None else self.score.edges,
            _outcome_signature(self.outcomes),
        )

    def options(self) -> dict[str, object]:
        """What besides the profile decides the layout (stored with multi-process files)."""
        return {"latency_buckets": list(self.latency_buckets), "window_s": self.window_s}


def _histogram(take: Callable[[int], int], edges: tuple[float, ...]) -> Histogram:
    base = take(len(edges) + 1)
    return Histogram(base, tuple(edges), take(1))


def plan_outcomes(profile: Profile, take: Callable[[int], int]) -> OutcomePlan:
    """The outcome slots of `profile`, taken with `take(n) -> first slot` (the full layout's,
    or an outcome-only layout's: both count with the same code)."""
    rejected = {r: take(1) for r in OUTCOME_REJECTED_REASONS}
    delay = _histogram(take, LABEL_DELAY_BUCKETS)
    pred = profile.prediction
    if isinstance(pred, ClassificationPrediction):
        classes = (*pred.classes, UNSEEN)
        return OutcomePlan(rejected, delay, classes, {c: i for i, c in enumerate(pred.classes)},
                           take(len(classes) ** 2))
    if isinstance(pred, RegressionPrediction):
        return OutcomePlan(rejected, delay, error=_histogram(take, pred.error_edges()),
                           absolute=take(1), squared=take(1))
    return OutcomePlan(rejected, delay)


def _outcome_signature(plan: OutcomePlan) -> tuple[object, ...]:
    return (tuple(plan.rejected.values()), plan.delay, plan.classes, plan.matrix, plan.error,
            plan.absolute, plan.squared)


class OutcomeLayout:
    """The slots of an outcome-only monitor: the outcome series and nothing else."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._next = 0
        self.outcomes = plan_outcomes(profile, self._take)
        self.window = -1  # no prediction window (the renderer asks)
        self.size = self._next

    def _take(self, n: int) -> int:
        start, self._next = self._next, self._next + n
        return start

    def options(self) -> dict[str, object]:
        return {}


def outcome_series_count(profile: Profile) -> int:
    """Outcome series of one monitor, baselines included (closed formula, as series_count)."""
    total = len(OUTCOME_REJECTED_REASONS) + len(LABEL_DELAY_BUCKETS) + 3
    total += len(profile.baseline_metrics)
    pred = profile.prediction
    if isinstance(pred, ClassificationPrediction):
        total += (len(pred.classes) + 1) ** 2
    elif isinstance(pred, RegressionPrediction):
        total += len(pred.error_edges()) + 3 + 2
    return total


def series_count(profile: Profile, latency_buckets: int = len(DEFAULT_LATENCY_BUCKETS)) -> int:
    """Series one monitor exposes (process_* excluded), with the prediction window non-empty.

    Kept as a closed formula, mirrored in docs/exporter-and-metrics.md (cardinality); a test
    checks it against the rendered exposition.
    """
    # info, trained (if known), loaded, counters start, rows, observations, unknown,
    # requests x2, in-flight
    total = 10 + len(REJECTED_REASONS) + len(WORKER_FILE_ERRORS) + (latency_buckets + 3)
    if trained_timestamp(profile) is None:
        total -= 1
    for f in profile.features:
        if isinstance(f, NumericFeature):
            total += 4 * len(f.binned.edges) + 11  # one invalid reason fewer than a prediction
        elif isinstance(f, CategoricalFeature):
            total += 2 * len(f.top_categories) + 9
        else:
            total += 7
    pred = profile.prediction
    if isinstance(pred, RegressionPrediction):
        total += 4 * len(pred.binned.edges) + 13
    elif isinstance(pred, ClassificationPrediction):
        total += 2 * len(pred.classes) + 5
        if pred.score is not None:
            total += 4 * len(pred.score.edges) + 5
            total += len(pred.classes) ** 2 + 1  # expected confusion matrix, estimation info
    return total + outcome_series_count(profile)


def trained_timestamp(profile: Profile) -> float | None:
    """The profile's `trained_at` as Unix seconds, or None when absent or not ISO-8601."""
    if not profile.trained_at:
        return None
    try:
        when = datetime.fromisoformat(profile.trained_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
