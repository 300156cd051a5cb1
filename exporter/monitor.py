"""ModelMonitor: counts what a model sees and predicts, in the request path.

    monitor = ModelMonitor.from_profile("profile.json")        # registers on the default REGISTRY
    with monitor.track_request():                               # in-flight, latency, ok / error
        y = model.predict(x)
        obs = monitor.observe({"age": 42, "city": "paris"}, y)
    obs.flags            # {"city": ("unseen", "not_allowed")}: for the log record

The hot path adds to slots of one flat array (offsets from `mlmon.exporter.layout`) under one lock;
cumulative buckets and labelled samples are assembled only at scrape time
(`mlmon.exporter.collector`).
Classification rules: docs/design.md section 2. Nothing the caller passes can raise here:
unusable input is counted under `mlmon_rejected_total` and reported on the `Observation`.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

from mlmon.exporter import layout as L
from mlmon.exporter.estimation import plans as estimation_plans
from mlmon.exporter.layout import DEFAULT_LATENCY_BUCKETS, DEFAULT_WINDOW_S, Layout
from mlmon.exporter.multiprocess import multiproc_dir, open_storage
from mlmon.exporter.outcomes import OutcomeCounter, OutcomeMethods
from mlmon.exporter.profile import Profile
from mlmon.exporter.values import (
    INF,
    MISSING,
    NOT_ALLOWED,
    OUT_OF_RANGE,
    UNSEEN,
    WRONG_TYPE,
    classify_category,
    classify_feature_number,
    classify_label,
    classify_number,
    classify_text,
    tokenize,
)

_ABSENT = object()
_FROM_ENV: Any = object()
_MISSING, _OUT_OF_RANGE, _NOT_ALLOWED = (MISSING,), (OUT_OF_RANGE,), (NOT_ALLOWED,)
_UNSEEN, _UNSEEN_NOT_ALLOWED = (UNSEEN,), (UNSEEN, NOT_ALLOWED)
_MAX_NAME = 256  # unknown feature names are reported, never labels; keep them short
F = TypeVar("F", bound=Callable[..., Any])


class Observation:
    """What one `observe()` call found.

    `flags`: a read-only mapping, feature name -> tuple of flags among missing, out_of_range,
    not_allowed, unseen, nan, inf, wrong_type (only flagged features appear).
    `unknown_features`: names the profile does not know. `rejected`: the reason when the whole
    input was unusable, else None. `prediction_invalid`: why the prediction was counted as
    invalid (nan, inf, wrong_type, or out_of_range: outside the profile's allowed range, still
    counted in the histogram), else None.
    """

    __slots__ = ("flags", "unknown_features", "rejected", "prediction_invalid")

    def __init__(self, flags: Mapping[str, tuple[str, ...]], unknown_features: tuple[str, ...] = (),
                 rejected: str | None = None, prediction_invalid: str | None = None) -> None:
        self.flags = flags
        self.unknown_features = unknown_features
        self.rejected = rejected
        self.prediction_invalid = prediction_invalid

    @property
    def flagged(self) -> list[str]:
        """Flagged feature names, sorted (the record's `flagged` field)."""
        return sorted(self.flags)

    def __repr__(self) -> str:
        return (f"Observation(flags={self.flags!r}, unknown_features={self.unknown_features!r}, "
                f"rejected={self.rejected!r}, prediction_invalid={self.prediction_invalid!r})")


# Where each reason of mlmon.exporter.values is counted in a feature's block, and its flag tuple.
_NUMERIC_SLOT = {MISSING: L.NUM_MISSING, INF: L.NUM_INF, WRONG_TYPE: L.NUM_WRONG_TYPE}
_CATEGORICAL_SLOT = {MISSING: L.CAT_MISSING, WRONG_TYPE: L.CAT_WRONG_TYPE}
_TEXT_SLOT = {MISSING: L.TXT_MISSING, WRONG_TYPE: L.TXT_WRONG_TYPE}
_FLAG = {reason: (reason,) for reason in (MISSING, INF, WRONG_TYPE)}  # a NaN feature is MISSING


def _verdict(c: Any, base: int, slot_of: dict[str, int], classify: Callable[[Any], Any],
             v: Any) -> tuple[Any, tuple[str, ...] | None]:
    """`(value, None)` when `classify` says v counts, else `(None, flag)` with the reason counted
    in the feature's block."""
    if v is _ABSENT:
        c[base + slot_of[MISSING]] += 1.0
        return None, _MISSING
    x, reason = classify(v)
    if reason is None:
        return x, None
    c[base + slot_of[reason]] += 1.0
    return None, _FLAG[reason]


def _numeric_unusual(c: Any, base: int, seg: Any, edges: list[float], low: float, high: float,
                     v: Any) -> tuple[str, ...] | None:
    """A numeric value off the happy path: missing, not a float, NaN/Inf or out of range."""
    x, flag = _verdict(c, base, _NUMERIC_SLOT, classify_feature_number, v)
    if flag is not None:
        return flag
    seg[bisect_left(edges, x)] += 1.0
    seg[-1] += x
    if low <= x <= high:
        return None
    c[base + L.NUM_OUT_OF_RANGE] += 1.0
    return _OUT_OF_RANGE


def _categorical_unusual(c: Any, base: int, slots: dict[str, int], unseen: int,
                         allowed: frozenset[str] | None, v: Any) -> tuple[str, ...] | None:
    """A category off the happy path: missing, not a str, unseen, or an explicit allowed list."""
    if type(v) is not str:
        v, flag = _verdict(c, base, _CATEGORICAL_SLOT, classify_category, v)
        if flag is not None:
            return flag
    slot = slots.get(v)
    if slot is not None:
        c[slot] += 1.0
        if allowed is None or v in allowed:
            return None
        c[base + L.CAT_NOT_ALLOWED] += 1.0
        return _NOT_ALLOWED
    c[unseen] += 1.0
    if allowed is None or v not in allowed:
        c[base + L.CAT_NOT_ALLOWED] += 1.0
        return _UNSEEN_NOT_ALLOWED
    return _UNSEEN


def _count_tokens(c: Any, base: int, vocabulary: frozenset[str], text: str) -> None:
    tokens = tokenize(text)
    c[base + L.TXT_TOKENS] += len(tokens)
    c[base + L.TXT_OOV] += sum(1 for t in tokens if t not in vocabulary)


def _text_unusual(c: Any, base: int, vocabulary: frozenset[str], v: Any) -> tuple[str, ...] | None:
    """A text value that is not a plain str: missing, a str subclass (counted), or wrong_type."""
    text, flag = _verdict(c, base, _TEXT_SLOT, classify_text, v)
    if flag is None:
        _count_tokens(c, base, vocabulary, text)
    return flag


# Returned for every record with nothing to report; read-only, so sharing it is safe.
_NO_FLAGS: Mapping[str, tuple[str, ...]] = MappingProxyType({})
_CLEAN = Observation(_NO_FLAGS, ())


class ModelMonitor(OutcomeMethods):
    """Prometheus series for one model version, from its reference profile.

    >>> monitor = ModelMonitor.from_profile("profile.json", registry=CollectorRegistry())
    >>> monitor.observe({"age": 42.0, "city": "paris"}, 0.7).flags
    {}
    >>> monitor.observe_outcome(0.75, 0.5, predicted_at=t0).error  # the label, later
    0.25
    """

    def __init__(
        self,
        profile: Profile,
        registry: CollectorRegistry | None = None,
        *,
        latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.time,
        multiproc_directory: str | None = _FROM_ENV,
    ) -> None:
        if list(latency_buckets) != sorted(set(latency_buckets)) or not all(
            math.isfinite(b) for b in latency_buckets
        ):
            raise ValueError("latency_buckets must be finite and strictly increasing")
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError("window_s must be a positive number of seconds")
        self.profile = profile
        self.layout = Layout(profile, tuple(latency_buckets), window_s)
        self.clock = clock
        self.loaded_at = clock()
        directory = multiproc_dir() if multiproc_directory is _FROM_ENV else multiproc_directory
        self.storage = open_storage(self.layout, directory)
        lay = self.layout
        self._observations_slot = lay.observations
        self._bind()
        self.storage.subscribe(self._bind)
        self._categorical = [(p.name, p.base, p.slots, p.unseen_slot, p.allowed)
                             for p in lay.categorical]
        self._text = [(p.name, p.base, p.vocabulary) for p in lay.text]
        self._names = frozenset(f.name for f in profile.features)
        self._n_features = len(self._names)
        self._latency_edges = list(lay.latency_buckets)
        self._slot_s = lay.slot_s
        self._estimation = estimation_plans(lay)
        self._outcomes = OutcomeCounter(lay.outcomes, self.storage, clock)
        self.registry = REGISTRY if registry is None else registry
        from mlmon.exporter.collector import register_monitor  # collector imports this module

        register_monitor(self.registry, self)

    def _bind(self) -> None:
        """Hot-path plans over the storage (again after a fork: new lock, new file).

        Each numeric feature gets its bucket+sum segment indexed from 0, with the sum at a
        positive index: CPython 3.11 specialises `list[i] += x` for 0 <= i only (`seg[-1]`
        cost 20 ns more per feature). The lock's bound methods save the `with` protocol."""
        storage, lay = self.storage, self.layout
        self._acquire, self._release = storage.lock.acquire, storage.lock.release
        self._values = storage.values
        self._numeric = [(p.name, storage.segment(p.histogram.base, len(p.edges) + 2),
                          list(p.edges), p.low, p.high, len(p.edges) + 1, p.base)
                         for p in lay.numeric]
        pred = lay.prediction
        self._regression: tuple[Any, list[float], int, int, float, float, float] | None = None
        if pred is not None:
            n = len(pred.edges)
            # buckets, sum, centered sum of squares and the window triples are contiguous
            if not (lay.centered_sum_squares == pred.sum_slot + 1 == pred.base + n + 2
                    and lay.window == lay.centered_sum_squares + 1):
                raise RuntimeError("layout: prediction slots are not contiguous")
            low, high = lay.profile.prediction_range() or (-math.inf, math.inf)
            # finite bounds (an open end is the largest float): the inlined range check then
            # also rules out NaN and +-Inf, so the hot path needs no separate finiteness test
            low, high = max(low, -sys.float_info.max), min(high, sys.float_info.max)
            self._regression = (storage.segment(pred.base, n + 3 + 3 * L.WINDOW_SLOTS),
                                list(pred.edges), n + 1, n + 2, lay.center, low, high)
            self._window_offset = n + 3
        # The current window slot, cached: most predictions fall in the slot of the previous one.
        self._slot_start, self._slot_end, self._slot_j = math.inf, -math.inf, 0

    def _enter_slot(self, now: float) -> None:
        """Point the window cache at the slot holding `now`, starting it empty if it is stale.
        `_slot_j` is then the index of that slot's min in the prediction segment (max: +1)."""
        assert self._regression is not None
        seg, slot_s = self._regression[0], self._slot_s
        slot_id = now // slot_s
        j = self._window_offset + 3 * int(slot_id % L.WINDOW_SLOTS)
        if seg[j] != slot_id:
            seg[j], seg[j + 1], seg[j + 2] = slot_id, math.inf, -math.inf
        self._slot_start, self._slot_end = slot_id * slot_s, (slot_id + 1) * slot_s
        self._slot_j = j + 1

    def _extend_window(self, lo: float, hi: float) -> None:
        """Fold finite predictions in [lo, hi] into the current window slot (lock held)."""
        now = self.clock()
        if not self._slot_start <= now < self._slot_end:
            self._enter_slot(now)
        assert self._regression is not None
        seg, j = self._regression[0], self._slot_j
        if lo < seg[j]:
            seg[j] = lo
        if hi > seg[j + 1]:
            seg[j + 1] = hi

    @classmethod
    def from_profile(
        cls, path_or_profile: Profile | str | os.PathLike[str],
        registry: CollectorRegistry | None = None, **options: Any,
    ) -> ModelMonitor:
        """A monitor for a `Profile` or a profile file (raises ProfileError when it is bad)."""
        profile = (path_or_profile if isinstance(path_or_profile, Profile)
                   else Profile.load(path_or_profile))
        return cls(profile, registry, **options)

    @property
    def model(self) -> str:
        return self.profile.model_name

    @property
    def model_version(self) -> str:
        return self.profile.model_version

    def series_count(self) -> int:
        """Series this monitor exposes (excluding process_*): a function of the profile only."""
        return L.series_count(self.profile, len(self.layout.latency_buckets))

    def unregister(self) -> None:
        """Stop exposing this monitor's series (its counts stay in memory / on disk)."""
        from mlmon.exporter.collector import unregister_monitor

        unregister_monitor(self.registry, self)

    # ---- one record ------------------------------------------------------------------------

    def observe(self, features: Mapping[str, Any], prediction: Any = None, *,
                latency_s: float | None = None, scores: Any = None) -> Observation:
        """Count one request's features and prediction; never raises.

        `prediction=None` means no prediction was made (nothing counted for it). `scores`, for
        classifiers: the predicted class's probability, or a mapping class -> probability; it
        also adds the prediction's expected confusion row (mlmon.exporter.estimation).
        """
        try:
            if type(features) is not dict:
                if not isinstance(features, Mapping):
                    return self._reject("not_a_mapping")
                # a plain copy: subscripting a defaultdict would insert into the caller's
                # mapping, and other Mappings may be slow or odd; plain dicts are the norm
                features = dict(features)
            self._acquire()
            try:
                c = self._values
                flags: dict[str, tuple[str, ...]] | None = None
                absent = 0
                # Happy paths first and inline; anything unusual goes to a helper.
                for name, seg, edges, low, high, s, base in self._numeric:
                    try:  # subscripting is cheaper than .get(); absent keys are rare
                        v = features[name]
                    except KeyError:
                        v = _ABSENT
                    if type(v) is float and low <= v <= high:  # False for NaN and +-Inf
                        seg[bisect_left(edges, v)] += 1.0
                        seg[s] += v  # the sum
                        continue
                    if type(v) is int:  # JSON decodes 30.0 as 30; a bool is not an int here
                        try:  # as a float first: float compares and adds are the cheap ones
                            v = float(v)
                        except OverflowError:
                            pass  # beyond 1e308: the helper counts it as inf
                        else:
                            if low <= v <= high:
                                seg[bisect_left(edges, v)] += 1.0
                                seg[s] += v
                                continue
                    absent += v is _ABSENT
                    flag = _numeric_unusual(c, base, seg, edges, low, high, v)
                    if flag is not None:
                        if flags is None:
                            flags = {}
                        flags[name] = flag
                for name, base, slots, unseen, allowed in self._categorical:
                    try:
                        v = features[name]
                    except KeyError:
                        v = _ABSENT
                    if type(v) is str and allowed is None:
                        slot = slots.get(v)
                        if slot is not None:
                            c[slot] += 1.0
                            continue
                        # never seen in training, so not allowed either: inline, as drifting
                        # traffic makes this the common flagged case
                        c[unseen] += 1.0
                        c[base + L.CAT_NOT_ALLOWED] += 1.0
                        if flags is None:
                            flags = {}
                        flags[name] = _UNSEEN_NOT_ALLOWED
                        continue
                    absent += v is _ABSENT
                    flag = _categorical_unusual(c, base, slots, unseen, allowed, v)
                    if flag is not None:
                        if flags is None:
                            flags = {}
                        flags[name] = flag
                for name, base, vocabulary in self._text:
                    v = features.get(name, _ABSENT)
                    if type(v) is str:
                        _count_tokens(c, base, vocabulary, v)
                        continue
                    absent += v is _ABSENT
                    flag = _text_unusual(c, base, vocabulary, v)
                    if flag is not None:
                        if flags is None:
                            flags = {}
                        flags[name] = flag
                c[self._observations_slot] += 1.0
                unknown: tuple[str, ...] = ()
                if len(features) != self._n_features - absent:
                    names = self._names
                    unknown = tuple(str(k)[:_MAX_NAME] for k in features if k not in names)
                    c[self.layout.unknown_features] += len(unknown)
                invalid = None
                if prediction is not None:
                    reg = self._regression
                    if (type(prediction) is float and reg is not None
                            and reg[5] <= prediction <= reg[6]):
                        seg, edges, sum_i, css_i, center, _, _ = reg
                        seg[bisect_left(edges, prediction)] += 1.0
                        seg[sum_i] += prediction
                        d = prediction - center
                        seg[css_i] += d * d
                        now = self.clock()
                        if not self._slot_start <= now < self._slot_end:
                            self._enter_slot(now)
                        j = self._slot_j
                        if prediction < seg[j]:
                            seg[j] = prediction
                        if prediction > seg[j + 1]:
                            seg[j + 1] = prediction
                    else:
                        invalid = self._prediction(c, prediction, scores)
                if latency_s is not None:
                    self._latency(c, latency_s)
            finally:
                self._release()
            if flags is None and not unknown and invalid is None:
                return _CLEAN  # nothing to report: no allocation
            # a read-only view (documented): the caller cannot edit what we report
            return Observation(_NO_FLAGS if flags is None else MappingProxyType(flags), unknown,
                               None, invalid)
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            return self._reject("internal_error")

    def _reject(self, reason: str) -> Observation:
        with self.storage.lock:
            self.storage.values[self.layout.rejected[reason]] += 1.0
        return Observation(_NO_FLAGS, (), reason)

    def _prediction(self, c: Any, y: Any, scores: Any) -> str | None:
        """Count a prediction off the inlined path; the invalid reason, if any."""
        lay = self.layout
        reg = self._regression
        if reg is not None:
            y, reason = classify_number(y)
            if reason is not None:
                if reason is MISSING:  # a null is no prediction: nothing to count
                    return None
                c[lay.prediction_invalid[reason]] += 1.0
                return reason
            seg, edges, sum_i, css_i, center, low, high = reg
            seg[bisect_left(edges, y)] += 1.0
            seg[sum_i] += y
            seg[css_i] += (y - center) * (y - center)
            self._extend_window(y, y)
            if low <= y <= high:
                return None
            c[lay.prediction_invalid[OUT_OF_RANGE]] += 1.0  # counted, and flagged
            return OUT_OF_RANGE
        if lay.class_unseen >= 0:
            label, reason = classify_label(y)
            if reason is not None:
                if reason is MISSING:
                    return None
                c[lay.prediction_invalid[reason]] += 1.0
                return reason
            assert label is not None  # no reason: a label
            c[lay.class_slots.get(label, lay.class_unseen)] += 1.0
            if scores is not None and lay.score is not None:
                self._score(c, label, scores)
        return None

    def _score(self, c: Any, label: str, scores: Any) -> None:
        lay = self.layout
        s, reason = classify_number(scores.get(label) if isinstance(scores, Mapping) else scores)
        if reason is not None:
            c[lay.rejected["bad_score"]] += 1.0
            return
        hist = lay.score
        assert hist is not None and s is not None  # no reason: a finite float
        c[hist.base + bisect_left(hist.edges, s)] += 1.0
        c[hist.sum_slot] += s
        plan = self._estimation.get(label)  # None for a class the profile does not know
        if plan is not None:  # the expected confusion row (mlmon.exporter.estimation)
            thresholds, values, diagonal, other, others = plan
            if values is not None:
                p = values[bisect_left(thresholds, s)]
            else:
                p = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
            c[diagonal] += p
            if other >= 0:  # binary: the one other class takes the rest
                c[other] += 1.0 - p
            else:
                p = 1.0 - p
                for slot, share in others:
                    c[slot] += p * share

    def _latency(self, c: Any, seconds: Any) -> None:
        s, reason = classify_number(seconds)
        if reason is not None or s is None or s < 0:  # s is None only with a reason
            c[self.layout.rejected["bad_latency"]] += 1.0
            return
        hist = self.layout.latency
        c[hist.base + bisect_left(self._latency_edges, s)] += 1.0
        c[hist.sum_slot] += s

    # ---- many records ----------------------------------------------------------------------

    def observe_batch(self, features: Any, predictions: Any = None, *, scores: Any = None,
                      columns: Any = None) -> BatchObservation:
        """Count a batch (dict of columns, 2-D array + `columns`, DataFrame); never raises.

        Vectorised with numpy. NaN in a float column is null there (`missing`).
        """
        from mlmon.exporter.batch import observe_batch

        try:
            return observe_batch(self, features, predictions, scores, columns)
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            self._reject("internal_error")
            return BatchObservation(0, (), "internal_error")

    # ---- ops ----------------------------------------------------------------------------------

    def track_request(self) -> RequestTracker:
        """`with monitor.track_request():` or `@monitor.track_request()`: in-flight, latency,
        outcome (error when the block raises, or after `tracker.error()`)."""
        return RequestTracker(self)

    def record_request(self, latency_s: float | None = None, *, ok: bool = True) -> None:
        """Count a finished request measured elsewhere (e.g. by a framework middleware)."""
        try:
            with self.storage.lock:
                c = self.storage.values
                c[self.layout.requests["ok" if ok else "error"]] += 1.0
                if latency_s is not None:
                    self._latency(c, latency_s)
        except Exception:  # noqa: BLE001
            pass

    def record_error(self) -> None:
        """Count a failed request (outcome=error)."""
        self.record_request(ok=False)

    def _in_flight(self, delta: float) -> None:
        with self.storage.lock:
            self.storage.values[self.layout.in_flight] += delta


class BatchObservation:
    """What one `observe_batch()` call counted: `rows`, `unknown_features`, `rejected`."""

    __slots__ = ("rows", "unknown_features", "rejected")

    def __init__(self, rows: int, unknown_features: tuple[str, ...] = (),
                 rejected: str | None = None) -> None:
        self.rows = rows
        self.unknown_features = unknown_features
        self.rejected = rejected

    def __repr__(self) -> str:
        return (f"BatchObservation(rows={self.rows}, unknown_features={self.unknown_features!r},"
                f" rejected={self.rejected!r})")


class RequestTracker:
    """Context manager and decorator made by `ModelMonitor.track_request()`."""

    def __init__(self, monitor: ModelMonitor) -> None:
        self._monitor = monitor
        self._start = 0.0
        self._failed = False

    def error(self) -> None:
        """Mark the request failed without raising (e.g. an HTTP 5xx response)."""
        self._failed = True

    def __enter__(self) -> RequestTracker:
        self._monitor._in_flight(1.0)
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        elapsed = time.perf_counter() - self._start
        self._monitor._in_flight(-1.0)
        self._monitor.record_request(elapsed, ok=exc_type is None and not self._failed)

    def __call__(self, fn: F) -> F:
        monitor = self._monitor
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with monitor.track_request():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with monitor.track_request():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
