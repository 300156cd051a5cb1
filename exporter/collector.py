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

from mlmon.exporter import layout as L
from mlmon.exporter.layout import WINDOW_SLOTS, Histogram, Layout, trained_timestamp
from mlmon.exporter.profile import Binned, CategoricalFeature, ClassificationPrediction, Profile
from mlmon.names import COUNTERS_START, PROFILE_LOADED

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
        self._min_template = ("mlmon_prediction_window_min", labels)
        self._max_template = ("mlmon_prediction_window_max", labels)

    # ---- building templates (once) --------------------------------------------------------

    def _family(self, name: str, doc: str, typ: str, rows: Iterable[tuple[str, dict[str, str],
                                                                         tuple[int, int]]]) -> None:
        start = len(self._templates)
        for sample_name, labels, source in rows:
            self._templates.append((sample_name, {**self.base, **labels}))
            self._sources.append(source)
        if len(self._templates) > start:
            self._families.append((name, doc, typ, start, len(self._templates)))

    def _const(self, value: float) -> tuple[int, int]:
        self._consts.append(float(value))
        return (_CONST, len(self._consts) - 1)

    def _cumulative(self, hist: Histogram) -> list[tuple[int, int]]:
        start = len(self._bucket_slots)
        n = len(hist.edges) + 1
        self._bucket_slots.extend(range(hist.base, hist.base + n))
        self._segment_lengths.append(n)
        return [(_CUMULATIVE, start + i) for i in range(n)]

    def _histogram(self, name: str, doc: str, hist: Histogram, labels: dict[str, str]) -> None:
        cum = self._cumulative(hist)
        rows = [(f"{name}_bucket", {**labels, "le": le}, src)
                for le, src in zip(les(hist.edges), cum, strict=True)]
        rows.append((f"{name}_count", labels, cum[-1]))
        rows.append((f"{name}_sum", labels, (_VALUES, hist.sum_slot)))
        self._family(name, doc, "histogram", rows)

    def _reference(self, prefix: str, what: str, binned_by: list[tuple[dict[str, str], Binned]]
                   ) -> None:
        """The reference distribution and the le -> previous le map for each binned thing."""
        self._family(f"{prefix}_reference_cumulative_share",
                     f"Reference share of {what} <= le (+Inf = 1).", "gauge",
                     [(f"{prefix}_reference_cumulative_share", {**lab, "le": le}, self._const(s))
                      for lab, b in binned_by
                      for le, s in zip(les(b.edges), b.cumulative_shares(), strict=True)])
        self._family(f"{prefix}_reference_bin_share",
                     f"Reference share of {what} in the bin ending at le.", "gauge",
                     [(f"{prefix}_reference_bin_share", {**lab, "le": le}, self._const(s))
                      for lab, b in binned_by
                      for le, s in zip(les(b.edges), b.bin_shares, strict=True)])
        self._family(f"{prefix}_bucket_previous_le_info",
                     "1; maps each bucket but the first to the bucket below it.", "gauge",
                     [(f"{prefix}_bucket_previous_le_info",
                       {**lab, "le": le, "previous_le": prev}, self._const(1.0))
                      for lab, b in binned_by
                      for prev, le in zip(les(b.edges), les(b.edges)[1:], strict=False)])

    def _build(self, profile: Profile, loaded_at: float) -> None:
        v: Callable[[int], tuple[int, int]]
        lay, c, v = self.layout, self._const, (lambda i: (_VALUES, i))
        self._family("mlmon_model_info", "1 for each loaded profile.", "gauge",
                     [("mlmon_model_info", {"profile_sha": profile.sha}, c(1))])
        trained = trained_timestamp(profile)
        self._family("mlmon_model_trained_timestamp_seconds", "When the model was trained.",
                     "gauge", [] if trained is None else
                     [("mlmon_model_trained_timestamp_seconds", {}, c(trained))])
        self._family(PROFILE_LOADED, "When this process loaded the profile.", "gauge",
                     [(PROFILE_LOADED, {}, c(loaded_at))])
        # set at every render: in multi-process mode it is read with the files
        self._started_const = len(self._consts)
        self._family(COUNTERS_START, "When the exported counters last started from zero.",
                     "gauge", [(COUNTERS_START, {}, c(loaded_at))])
        self._family("mlmon_reference_rows", "Rows in the reference data.", "gauge",
                     [("mlmon_reference_rows", {}, c(profile.rows))])
        self._counter("mlmon_observations", "Records observed.", [({}, lay.observations)])
        self._counter("mlmon_unknown_features",
                      "Values for feature names the profile does not know.",
                      [({}, lay.unknown_features)])
        self._counter("mlmon_rejected", "Inputs the exporter could not use at all.",
                      [({"reason": r}, i) for r, i in lay.rejected.items()])
        feats: dict[str, Any] = {f.name: f for f in profile.features}  # each plan's kind
        blocks = [(p.name, p.base, L.NUMERIC_REASONS) for p in lay.numeric]
        blocks += [(p.name, p.base, L.CATEGORICAL_REASONS) for p in lay.categorical]
        blocks += [(p.name, p.base, L.TEXT_REASONS) for p in lay.text]
        blocks.sort(key=lambda b: b[1])  # profile order
        self._counter("mlmon_feature_missing", "Feature values absent or None.",
                      [({"feature": n}, base) for n, base, _ in blocks])
        self._counter("mlmon_feature_invalid", "Invalid feature values by reason.",
                      [({"feature": n, "reason": r}, base + 1 + i)
                       for n, base, reasons in blocks for i, r in enumerate(reasons)])
        self._family("mlmon_feature_reference_count", "Non-null reference values.", "gauge",
                     [("mlmon_feature_reference_count", {"feature": n}, c(feats[n].count))
                      for n, _, _ in blocks])
        self._family("mlmon_feature_reference_null_rate", "Reference null rate.", "gauge",
                     [("mlmon_feature_reference_null_rate", {"feature": n},
                       c(feats[n].null_rate)) for n, _, _ in blocks])
        for p in lay.numeric:  # one family, one sample block per feature
            self._histogram("mlmon_feature_value", "Numeric feature values on reference edges.",
                            p.histogram,
                            {"feature": p.name})
        self._merge_families("mlmon_feature_value")
        self._reference("mlmon_feature", "feature values",
                        [({"feature": p.name}, feats[p.name].binned) for p in lay.numeric])
        self._counter("mlmon_feature_category", "Categorical values per reference category.",
                      [({"feature": p.name, "category": cat}, p.base + L.CAT_CATEGORIES + i)
                       for p in lay.categorical for i, cat in enumerate(p.categories)])
        self._family("mlmon_feature_category_reference_share", "Reference category shares.",
                     "gauge", [("mlmon_feature_category_reference_share",
                                {"feature": p.name, "category": cat}, c(s))
                               for p in lay.categorical
                               for cat, s in zip(p.categories, _category_shares(feats[p.name]),
                                                 strict=True)])
        self._counter("mlmon_feature_text_tokens", "Text tokens seen.",
                      [({"feature": p.name}, p.base + L.TXT_TOKENS) for p in lay.text])
        self._counter("mlmon_feature_text_oov_tokens", "Text tokens outside the vocabulary.",
                      [({"feature": p.name}, p.base + L.TXT_OOV) for p in lay.text])
        self._family("mlmon_feature_text_reference_oov_rate", "Reference OOV token rate.",
                     "gauge", [("mlmon_feature_text_reference_oov_rate", {"feature": p.name},
                                c(feats[p.name].oov_rate)) for p in lay.text])
        self._build_prediction(profile)
        self._histogram("mlmon_inference_latency_seconds", "Request latency.", lay.latency, {})
        self._counter("mlmon_requests", "Requests by outcome.",
                      [({"outcome": o}, i) for o, i in lay.requests.items()])
        self._family("mlmon_requests_in_flight", "Requests in progress.", "gauge",
                     [("mlmon_requests_in_flight", {}, v(lay.in_flight))])

    def _build_prediction(self, profile: Profile) -> None:
        lay, c = self.layout, self._const
        pred = profile.prediction
        if lay.prediction is not None and pred is not None and not isinstance(
                pred, ClassificationPrediction):
            self._histogram("mlmon_prediction_value", "Regression predictions.",
                            lay.prediction, {})
            self._counter("mlmon_prediction_centered_sum_squares",
                          "Sum of (y - c)^2, c = mlmon_prediction_center.",
                          [({}, lay.centered_sum_squares)], suffix="")
            self._family("mlmon_prediction_center", "c, the reference mean.", "gauge",
                         [("mlmon_prediction_center", {}, c(lay.center))])
            self._reference("mlmon_prediction", "predictions", [({}, pred.binned)])
        if isinstance(pred, ClassificationPrediction):
            names = (*pred.classes, L.UNSEEN)
            self._counter("mlmon_prediction_class", "Predicted classes.",
                          [({"class": k}, lay.class_slots.get(k, lay.class_unseen))
                           for k in names])
            self._family("mlmon_prediction_class_reference_share", "Reference class shares.",
                         "gauge", [("mlmon_prediction_class_reference_share", {"class": k},
                                    c(s))
                                   for k, s in zip(names, (*pred.class_shares, 0.0), strict=True)])
            if lay.score is not None and pred.score is not None:
                self._histogram("mlmon_prediction_score", "Probability of the predicted class.",
                                lay.score, {})
                self._reference("mlmon_prediction_score", "scores", [({}, pred.score)])
        self._counter("mlmon_prediction_invalid", "Unusable predictions by reason.",
                      [({"reason": r}, i) for r, i in lay.prediction_invalid.items()])

    def _counter(self, name: str, doc: str, rows: Sequence[tuple[dict[str, str], int]],
                 suffix: str = "_total") -> None:
        """A counter; prometheus_client appends `_total` to the family name when it renders."""
        if suffix:
            self._family(name, doc, "counter",
                         [(name + suffix, labels, (_VALUES, i)) for labels, i in rows])
        else:  # a counter whose name does not end in _total: typed untyped-but-monotonic
            self._family(name, doc, "unknown",
                         [(name, labels, (_VALUES, i)) for labels, i in rows])

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
            out.append(("mlmon_prediction_window_min", "Smallest prediction in the window.",
                        "gauge", [Sample(*self._min_template, lo)]))
            out.append(("mlmon_prediction_window_max", "Largest prediction in the window.",
                        "gauge", [Sample(*self._max_template, hi)]))
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
