"""Scrape-time rendering: flat counters -> Prometheus metric families (docs/design.md section 3).

Everything that never changes is prepared once per monitor: the label dicts, the `le` strings
(`floatToGoString`, identical for live and reference series), the reference values, and one
index array saying where each sample's value comes from. A scrape is then: sum the workers'
arrays, one cumulative sum over all bucket slots, one fancy-index, and zip with the templates.

One `MonitorsCollector` per registry renders every monitor registered there, because a registry
refuses two collectors that expose the same metric names (two model versions side by side).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import mlmon.names as N
from mlmon.exporter import layout as L
from mlmon.exporter.estimation import is_calibrated
from mlmon.exporter.layout import WINDOW_SLOTS, Histogram, Layout, trained_timestamp
from mlmon.exporter.profile import Binned, CategoricalFeature, ClassificationPrediction, Profile
from mlmon.names import Reference, Series

if TYPE_CHECKING:
    from mlmon.exporter.monitor import ModelMonitor

_VALUES, _CUMULATIVE, _CONST = 0, 1, 2


class Renderer:
    """Sample templates for one layout; `render(arrays)` turns worker arrays into families."""

    def __init__(self, layout: Layout, loaded_at: float) -> None:
        self.layout = layout
        profile = layout.profile
        self.base = {"model": profile.model_name, "model_version": profile.model_version}
        self._families: list[tuple[str, str, str, int, int]] = []
        self._templates: list[tuple[str, dict[str, str]]] = []
        self._sources: list[tuple[int, int]] = []
        self._consts: list[float] = []
        self._bucket_slots: list[int] = []
        self._segment_lengths: list[int] = []
        self._build(profile, loaded_at)
        size = layout.size
        cum_n = len(self._bucket_slots)
        offsets = (0, size, size + cum_n)
        self._index = np.array([offsets[kind] + i for kind, i in self._sources], dtype=np.intp)
        self._const_array = np.array(self._consts, dtype=np.float64)
        self._bucket_index = np.array(self._bucket_slots, dtype=np.intp)
        lengths = np.array(self._segment_lengths, dtype=np.intp)
        self._segment_starts = np.cumsum(lengths) - lengths
        self._segment_lengths_arr = lengths
        labels = dict(self.base)
        self._min_template = (N.PREDICTION_WINDOW_MIN.name, labels)
        self._max_template = (N.PREDICTION_WINDOW_MAX.name, labels)

    # ---- building templates (once) --------------------------------------------------------

    def _family(self, series: Series,
                rows: Iterable[tuple[str, dict[str, str], tuple[int, int]]]) -> None:
        start = len(self._templates)
        for sample_name, labels, source in rows:
            self._templates.append((sample_name, {**self.base, **labels}))
            self._sources.append(source)
        if len(self._templates) > start:
            self._families.append((series.name, series.help, series.type, start,
                                   len(self._templates)))

    def _gauge(self, series: Series, rows: Iterable[tuple[dict[str, str], float]]) -> None:
        """A gauge whose values never change (a constant per label set)."""
        self._family(series, [(series.name, labels, self._const(value))
                              for labels, value in rows])

    def _const(self, value: float) -> tuple[int, int]:
        self._consts.append(float(value))
        return (_CONST, len(self._consts) - 1)

    def _cumulative(self, hist: Histogram) -> list[tuple[int, int]]:
        start = len(self._bucket_slots)
        n = len(hist.edges) + 1
        self._bucket_slots.extend(range(hist.base, hist.base + n))
        self._segment_lengths.append(n)
        return [(_CUMULATIVE, start + i) for i in range(n)]

    def _histogram(self, series: Series, hist: Histogram, labels: dict[str, str]) -> None:
        cum = self._cumulative(hist)
        rows = [(series.bucket, {**labels, "le": le}, src)
                for le, src in zip(les(hist.edges), cum, strict=True)]
        rows.append((series.count, labels, cum[-1]))
        rows.append((series.sum, labels, (_VALUES, hist.sum_slot)))
        self._family(series, rows)

    def _reference(self, ref: Reference, binned_by: list[tuple[dict[str, str], Binned]]) -> None:
        """The reference distribution and the le -> previous le map for each binned thing."""
        self._gauge(ref.cumulative, [({**lab, "le": le}, s) for lab, b in binned_by
                                     for le, s in zip(les(b.edges), b.cumulative_shares(),
                                                      strict=True)])
        self._gauge(ref.bins, [({**lab, "le": le}, s) for lab, b in binned_by
                               for le, s in zip(les(b.edges), b.bin_shares, strict=True)])
        self._gauge(ref.previous_le, [({**lab, "le": le, "previous_le": prev}, 1.0)
                                      for lab, b in binned_by
                                      for prev, le in zip(les(b.edges), les(b.edges)[1:],
                                                          strict=False)])

    def _build(self, profile: Profile, loaded_at: float) -> None:
        v: Callable[[int], tuple[int, int]]
        lay, v = self.layout, (lambda i: (_VALUES, i))
        self._gauge(N.MODEL_INFO, [({"profile_sha": profile.sha}, 1)])
        trained = trained_timestamp(profile)
        self._gauge(N.MODEL_TRAINED, [] if trained is None else [({}, trained)])
        self._gauge(N.PROFILE_LOADED, [({}, loaded_at)])
        # set at every render: in multi-process mode it is read with the files
        self._started_const = len(self._consts)
        self._gauge(N.COUNTERS_START, [({}, loaded_at)])
        self._gauge(N.REFERENCE_ROWS, [({}, profile.rows)])
        self._counter(N.OBSERVATIONS, [({}, lay.observations)])
        self._counter(N.UNKNOWN_FEATURES, [({}, lay.unknown_features)])
        self._counter(N.REJECTED, [({"reason": r}, i) for r, i in lay.rejected.items()])
        self._counter(N.WORKER_FILE_ERRORS,
                      [({"reason": r}, i) for r, i in lay.worker_file_errors.items()])
        feats: dict[str, Any] = {f.name: f for f in profile.features}  # each plan's kind
        blocks = [(p.name, p.base, L.NUMERIC_REASONS) for p in lay.numeric]
        blocks += [(p.name, p.base, L.CATEGORICAL_REASONS) for p in lay.categorical]
        blocks += [(p.name, p.base, L.TEXT_REASONS) for p in lay.text]
        blocks.sort(key=lambda b: b[1])  # profile order
        self._counter(N.FEATURE_MISSING, [({"feature": n}, base) for n, base, _ in blocks])
        self._counter(N.FEATURE_INVALID,
                      [({"feature": n, "reason": r}, base + 1 + i)
                       for n, base, reasons in blocks for i, r in enumerate(reasons)])
        self._gauge(N.FEATURE_REFERENCE_COUNT,
                    [({"feature": n}, feats[n].count) for n, _, _ in blocks])
        self._gauge(N.FEATURE_REFERENCE_NULL_RATE,
                    [({"feature": n}, feats[n].null_rate) for n, _, _ in blocks])
        for p in lay.numeric:  # one family, one sample block per feature
            self._histogram(N.FEATURE_VALUE, p.histogram, {"feature": p.name})
        self._merge_families(N.FEATURE_VALUE.name)
        self._reference(N.FEATURE_REFERENCE,
                        [({"feature": p.name}, feats[p.name].binned) for p in lay.numeric])
        self._counter(N.FEATURE_CATEGORY,
                      [({"feature": p.name, "category": cat}, p.base + L.CAT_CATEGORIES + i)
                       for p in lay.categorical for i, cat in enumerate(p.categories)])
        self._gauge(N.FEATURE_CATEGORY_REFERENCE_SHARE,
                    [({"feature": p.name, "category": cat}, s) for p in lay.categorical
                     for cat, s in zip(p.categories, _category_shares(feats[p.name]),
                                       strict=True)])
        self._counter(N.FEATURE_TEXT_TOKENS,
                      [({"feature": p.name}, p.base + L.TXT_TOKENS) for p in lay.text])
        self._counter(N.FEATURE_TEXT_OOV_TOKENS,
                      [({"feature": p.name}, p.base + L.TXT_OOV) for p in lay.text])
        self._gauge(N.FEATURE_TEXT_REFERENCE_OOV_RATE,
                    [({"feature": p.name}, feats[p.name].oov_rate) for p in lay.text])
        self._build_prediction(profile)
        self._histogram(N.INFERENCE_LATENCY, lay.latency, {})
        self._counter(N.REQUESTS, [({"outcome": o}, i) for o, i in lay.requests.items()])
        self._family(N.REQUESTS_IN_FLIGHT,
                     [(N.REQUESTS_IN_FLIGHT.name, {}, v(lay.in_flight))])
        self._build_outcomes(profile)

    def _build_outcomes(self, profile: Profile) -> None:
        """The realized-performance series: the baselines and the outcome counters."""
        plan = self.layout.outcomes
        self._gauge(N.BASELINE, [({"metric": m}, value)
                                 for m, value in sorted(profile.baseline_metrics.items())])
        k = len(plan.classes)
        self._counter(N.OUTCOME_CLASS,
                      [({"predicted_class": p, "actual_class": a}, plan.matrix + i * k + j)
                       for i, p in enumerate(plan.classes) for j, a in enumerate(plan.classes)])
        if plan.error is not None:
            self._histogram(N.OUTCOME_ERROR, plan.error, {})
            self._counter(N.OUTCOME_ABSOLUTE_ERROR, [({}, plan.absolute)])
            self._counter(N.OUTCOME_SQUARED_ERROR, [({}, plan.squared)])
        self._histogram(N.OUTCOME_LABEL_DELAY, plan.delay, {})
        self._counter(N.OUTCOME_REJECTED, [({"reason": r}, i) for r, i in plan.rejected.items()])

    def _build_prediction(self, profile: Profile) -> None:
        lay = self.layout
        pred = profile.prediction
        if lay.prediction is not None and pred is not None and not isinstance(
                pred, ClassificationPrediction):
            self._histogram(N.PREDICTION_VALUE, lay.prediction, {})
            self._counter(N.PREDICTION_CENTERED_SUM_SQUARES, [({}, lay.centered_sum_squares)])
            self._gauge(N.PREDICTION_CENTER, [({}, lay.center)])
            self._reference(N.PREDICTION_REFERENCE, [({}, pred.binned)])
        if isinstance(pred, ClassificationPrediction):
            names = (*pred.classes, L.UNSEEN)
            self._counter(N.PREDICTION_CLASS,
                          [({"class": k}, lay.class_slots.get(k, lay.class_unseen))
                           for k in names])
            self._gauge(N.PREDICTION_CLASS_REFERENCE_SHARE,
                        [({"class": k}, s)
                         for k, s in zip(names, (*pred.class_shares, 0.0), strict=True)])
            if lay.score is not None and pred.score is not None:
                self._histogram(N.PREDICTION_SCORE, lay.score, {})
                self._reference(N.PREDICTION_SCORE_REFERENCE, [({}, pred.score)])
        self._counter(N.PREDICTION_INVALID,
                      [({"reason": r}, i) for r, i in lay.prediction_invalid.items()])
        if lay.estimated >= 0:
            self._gauge(N.ESTIMATION_INFO,
                        [({"calibrated": "true" if is_calibrated(lay) else "false"}, 1)])
            n = len(lay.classes)
            self._counter(N.ESTIMATED_CLASS,
                          [({"predicted_class": p, "actual_class": a}, lay.estimated + i * n + j)
                           for i, p in enumerate(lay.classes) for j, a in enumerate(lay.classes)])

    def _counter(self, series: Series, rows: Sequence[tuple[dict[str, str], int]]) -> None:
        """A counter: prometheus_client appends `_total` to the family name when it renders;
        a series typed `unknown` counts up too but keeps its name (no `_total`)."""
        self._family(series, [(series.sample, labels, (_VALUES, i)) for labels, i in rows])
    def _merge_families(self, name: str) -> None:
        """Consecutive blocks of one family (a histogram per feature) become one family."""
        merged: list[tuple[str, str, str, int, int]] = []
        for fam in self._families:
            if merged and fam[0] == name and merged[-1][0] == name:
                prev = merged[-1]
                merged[-1] = (prev[0], prev[1], prev[2], prev[3], fam[4])
            else:
                merged.append(fam)
        self._families = merged

    # ---- rendering (every scrape) ---------------------------------------------------------

    def render(self, arrays: Sequence[np.ndarray], now: float, started_at: float
               ) -> list[tuple[str, str, str, list[Sample]]]:
        """Families for the summed arrays of every worker, whose counters started from zero at
        `started_at`; window min/max when not empty."""
        if arrays:
            values = arrays[0] if len(arrays) == 1 else np.sum(arrays, axis=0)
        else:
            values = np.zeros(self.layout.size)
        buckets = values[self._bucket_index]
        cum = np.cumsum(buckets)
        if cum.size:
            before = np.repeat((cum - buckets)[self._segment_starts], self._segment_lengths_arr)
            cum -= before
        extended = np.concatenate((values, cum, self._const_array))
        extended[values.size + cum.size + self._started_const] = started_at
        samples = [Sample(n, lab, val) for (n, lab), val in
                   zip(self._templates, extended[self._index].tolist(), strict=True)]
        out = [(name, doc, typ, samples[a:b]) for name, doc, typ, a, b in self._families]
        window = self._window(arrays, now)
        if window is not None:
            lo, hi = window
            for series, template, value in ((N.PREDICTION_WINDOW_MIN, self._min_template, lo),
                                            (N.PREDICTION_WINDOW_MAX, self._max_template, hi)):
                out.append((series.name, series.help, series.type, [Sample(*template, value)]))
        return out

    def _window(self, arrays: Sequence[np.ndarray], now: float) -> tuple[float, float] | None:
        """Min and max over the slots still inside the window, across every worker."""
        w = self.layout.window
        if w < 0:
            return None
        current = now // self.layout.slot_s
        lo, hi = np.inf, -np.inf
        for a in arrays:
            slots = a[w:w + 3 * WINDOW_SLOTS].reshape(WINDOW_SLOTS, 3)
            live = ((slots[:, 0] > current - WINDOW_SLOTS) & (slots[:, 0] <= current)
                    & (slots[:, 1] <= slots[:, 2]))  # a slot just started holds (inf, -inf)
            if live.any():
                lo = min(lo, float(slots[live, 1].min()))
                hi = max(hi, float(slots[live, 2].max()))
        return None if lo > hi else (lo, hi)


class OutcomeRenderer(Renderer):
    """Only what an outcome-only monitor exports: the counters' start, the baselines and the
    outcome series (a pushed group must not repeat the service's reference series)."""

    def _build(self, profile: Profile, loaded_at: float) -> None:
        self._started_const = len(self._consts)
        self._gauge(N.COUNTERS_START, [({}, loaded_at)])
        self._build_outcomes(profile)


def les(edges: Sequence[float]) -> list[str]:
    """`le` label values, rendered exactly as prometheus_client renders bucket bounds."""
    return [floatToGoString(e) for e in edges] + ["+Inf"]


def _category_shares(f: Any) -> list[float]:
    assert isinstance(f, CategoricalFeature)
    return [*f.top_shares, f.other_share, 0.0]


def build_metrics(rendered: Iterable[list[tuple[str, str, str, list[Sample]]]]) -> list[Metric]:
    """Merge families of several renderers by name (two model versions share metric names)."""
    families: dict[str, Metric] = {}
    for parts in rendered:
        for name, doc, typ, samples in parts:
            metric = families.get(name)
            if metric is None:
                metric = families[name] = Metric(name, doc, typ)
            metric.samples.extend(samples)
    return list(families.values())


class MonitorsCollector:
    """Renders every ModelMonitor registered on one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitors: list[tuple[ModelMonitor, Renderer]] = []

    def add(self, monitor: ModelMonitor) -> None:
        key = (monitor.model, monitor.model_version)
        with self._lock:
            if any((m.model, m.model_version) == key for m, _ in self._monitors):
                raise ValueError(f"model {key[0]!r} version {key[1]!r} is already registered "
                                 "on this registry; unregister() the old monitor first")
            self._monitors.append((monitor, Renderer(monitor.layout, monitor.loaded_at)))

    def remove(self, monitor: ModelMonitor) -> None:
        with self._lock:
            self._monitors = [(m, r) for m, r in self._monitors if m is not monitor]

    def describe(self) -> list[Metric]:
        return []  # names depend on which monitors are registered; no up-front check

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            monitors = list(self._monitors)
        parts = []
        for m, r in monitors:
            totals = m.storage.totals()
            started = m.loaded_at if totals.started_at is None else totals.started_at
            parts.append(r.render(totals.arrays, m.clock(), started))
        yield from build_metrics(parts)


# The collector of a registry is kept on the registry itself: a module-level map keyed weakly by
# registry would never free one, since its value (holding monitors, which hold the registry)
# keeps the key alive; a monitor made on a throwaway registry would live as long as the process.
_COLLECTOR_ATTR = "_mlmon_monitors_collector"
_COLLECTORS_LOCK = threading.Lock()


def register_monitor(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    """Add a monitor to its registry's collector (created, with process_*, on first use)."""
    with _COLLECTORS_LOCK:
        collector = getattr(registry, _COLLECTOR_ATTR, None)
        if collector is None:
            collector = MonitorsCollector()
            setattr(registry, _COLLECTOR_ATTR, collector)
            registry.register(collector)
            if registry is not REGISTRY:  # the default registry has its own process collector
                try:
                    ProcessCollector(registry=registry)
                except ValueError:
                    pass  # the caller registered one already
    collector.add(monitor)


def unregister_monitor(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    with _COLLECTORS_LOCK:
        collector = getattr(registry, _COLLECTOR_ATTR, None)
    if collector is not None:
        collector.remove(monitor)


class MultiProcessCollector:
    """For a process that only serves /metrics: renders every profile in a multiproc directory.

    >>> registry = CollectorRegistry(); MultiProcessCollector(registry, "/tmp/mlmon")
    Do not also create ModelMonitors on the same registry (their series would appear twice).
    """

    def __init__(self, registry: CollectorRegistry | None, directory: str | None = None) -> None:
        from mlmon.exporter.multiprocess import multiproc_dir

        directory = directory or multiproc_dir()
        if not directory:
            raise ValueError("no directory: pass one or set MLMON_MULTIPROC_DIR")
        self.directory = directory
        self._renderers: dict[str, Renderer] = {}
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from mlmon.exporter.multiprocess import profile_groups
        from mlmon.exporter.worker_files import read_totals

        parts = []
        renderers = {}
        for group in profile_groups(self.directory):
            sha = group.layout.profile.sha
            renderer = self._renderers.get(sha)
            if renderer is None:
                renderer = Renderer(group.layout, group.opened_at)
            renderers[sha] = renderer
            arrays = read_totals(self.directory, group.shas, group.layout)
            parts.append(renderer.render(arrays, time.time(), group.started_at))
        self._renderers = renderers  # profiles no longer in the directory are dropped
        yield from build_metrics(parts)
