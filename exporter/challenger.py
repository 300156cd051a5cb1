"""Champion vs challenger: roles, agreement counts and what was skipped, as Prometheus series.

`Comparison` holds the counts of one (champion, challenger) pair of model versions; it is fed
by the shadow runner (log_shipper/shadow.py) off the request path and rendered at scrape time:

    mlmon_model_role_info{model, model_version, role, champion_version}   1 per version
    mlmon_challenger_compared_total{..., champion_version, agreement}      agree / disagree
    mlmon_challenger_class_pair_total{..., champion_class, challenger_class} (classification)
    mlmon_challenger_difference{..., le}  challenger - champion              (regression)
    mlmon_challenger_skipped_total{..., reason}

The comparison series carry the challenger's model and model_version (the rules pool them
with its other series) and the champion's version in `champion_version`. Bounded by the
profiles: classes of the challenger's profile plus `__unseen__`; difference edges from the
champion's reference prediction spread (`difference_edges`).

Counts live in this process, or, in multi-process mode, in one file per worker in the same
directory as the monitors' (mlmon/exporter/challenger_counts.py), summed at scrape; a worker
that cannot open its file counts in memory meanwhile, and the failed opens are counted in
`file_errors`, the champion monitor's storage (`mlmon_worker_file_errors_total`).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import mlmon.names as N
from mlmon.exporter.challenger_counts import Counts, counts_key
from mlmon.exporter.profile import ClassificationPrediction, Profile, RegressionPrediction
from mlmon.exporter.values import classify_label, classify_number

if TYPE_CHECKING:
    from mlmon.exporter.multiprocess import Storage

UNSEEN = N.UNSEEN_CLASS
AGREE, DISAGREE = "agree", "disagree"
# Why challenger work was not done or not compared (mlmon_challenger_skipped_total{reason});
# the shadow runner (log_shipper/shadow*.py) counts under these names.
QUEUE_FULL, CLOSED, PREDICT_ERROR, RECORD_ERROR = (
    "queue_full", "closed", "predict_error", "record_error")
NOT_COMPARABLE, PREDICT_TIMEOUT, PROCESS_DIED = (
    "not_comparable", "predict_timeout", "process_died")
# The order is the slot order of the per-process counts file: append, never reorder.
SKIP_REASONS = (QUEUE_FULL, CLOSED, PREDICT_ERROR, RECORD_ERROR, NOT_COMPARABLE,
                PREDICT_TIMEOUT, PROCESS_DIED)
# Multiples of the champion's reference prediction std: the difference histogram's edges
# (symmetric, with 0 so the sign of the difference is readable) and the default tolerance.
DIFFERENCE_STEPS = (0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_TOLERANCE_STD = 0.1


def difference_edges(std: float) -> tuple[float, ...]:
    """Histogram edges for challenger - champion: 0 and +-(0.05, 0.1, 0.25, 0.5, 1) x `std`."""
    scale = std if std > 0 and math.isfinite(std) else 1.0  # a constant model: unit steps
    steps = [k * scale for k in DIFFERENCE_STEPS]
    return (*(-s for s in reversed(steps)), 0.0, *steps)


def _kind(profile: Profile) -> str:
    if isinstance(profile.prediction, ClassificationPrediction):
        return "classification"
    if isinstance(profile.prediction, RegressionPrediction):
        return "regression"
    raise ValueError(f"profile of {profile.model_name} {profile.model_version} has no "
                     "prediction: a challenger is compared on its predictions")


class Comparison:
    """Agreement counts between a champion and a challenger version of one model.

    >>> c = Comparison(champion_profile, challenger_profile)
    >>> c.compare(151.0, 149.5)        # regression: counted in the difference histogram
    True
    """

    def __init__(self, champion: Profile, challenger: Profile, *,
                 tolerance: float | None = None, directory: str | None = None,
                 file_errors: Storage | None = None) -> None:
        if champion.model_name != challenger.model_name:
            raise ValueError(f"a challenger is another version of the same model: "
                             f"{challenger.model_name!r} is not {champion.model_name!r}")
        if champion.model_version == challenger.model_version:
            raise ValueError(f"champion and challenger are both version "
                             f"{champion.model_version!r}: give the challenger its own version")
        self.kind = _kind(champion)
        if _kind(challenger) != self.kind:
            raise ValueError("champion and challenger must both be classifiers or both "
                             "regressors")
        self.model = champion.model_name
        self.champion_version = champion.model_version
        self.challenger_version = challenger.model_version
        self.tolerance: float | None = None
        self.classes: tuple[str, ...] = ()
        self.edges: tuple[float, ...] = ()
        if self.kind == "classification":
            assert isinstance(challenger.prediction, ClassificationPrediction)
            self.classes = (*challenger.prediction.classes, UNSEEN)
            detail = len(self.classes) ** 2  # (champion class, challenger class), row-major
        else:
            assert isinstance(champion.prediction, RegressionPrediction)
            std = champion.prediction.binned.std
            self.edges = difference_edges(std)
            if tolerance is None:
                tolerance = DEFAULT_TOLERANCE_STD * (std if std > 0 and math.isfinite(std)
                                                     else 1.0)
            if not (tolerance >= 0 and math.isfinite(tolerance)):
                raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
            self.tolerance = float(tolerance)
            detail = len(self.edges) + 2  # buckets (not cumulative), then the sum
        self._class_index = {c: i for i, c in enumerate(self.classes)}
        # slots: agree, disagree, the skip reasons, then the kind's detail
        self._skip_slot = {reason: 2 + i for i, reason in enumerate(SKIP_REASONS)}
        self._detail = 2 + len(SKIP_REASONS)
        key = counts_key(self.model, self.champion_version, self.challenger_version, self.kind,
                         self.classes, self.edges)
        # failed opens of a worker file count under the champion's worker file errors
        self.counts = Counts(self._detail + detail, directory, key, file_errors)

    def compare(self, champion: Any, challenger: Any) -> bool:
        """Count one pair of predictions; False (counted `not_comparable`) when either is
        missing or invalid. Never raises."""
        try:
            if self.kind == "classification":
                a, reason_a = classify_label(champion)
                b, reason_b = classify_label(challenger)
                if reason_a is None and reason_b is None and a is not None and b is not None:
                    with self.counts.lock:
                        self._count_classes(a, b)
                    return True
            else:
                x, reason_x = classify_number(champion)
                y, reason_y = classify_number(challenger)
                if reason_x is None and reason_y is None and x is not None and y is not None:
                    with self.counts.lock:
                        self._count_difference(y - x)
                    return True
            self.skip(NOT_COMPARABLE)
            return False
        except Exception:  # noqa: BLE001 - off the request path, but still never raises
            self.skip(NOT_COMPARABLE)
            return False

    def _count_classes(self, a: str, b: str) -> None:
        index, unseen = self._class_index, len(self.classes) - 1
        values = self.counts.values
        values[self._detail + index.get(a, unseen) * len(self.classes) + index.get(b, unseen)] \
            += 1.0
        # agreement on the labels themselves: two different unseen classes disagree
        values[0 if a == b else 1] += 1.0

    def _count_difference(self, d: float) -> None:
        assert self.tolerance is not None
        values = self.counts.values
        values[self._detail + bisect_left(self.edges, d)] += 1.0
        values[self._detail + len(self.edges) + 1] += d
        values[0 if abs(d) <= self.tolerance else 1] += 1.0

    def skip(self, reason: str) -> None:
        """Count challenger work not done (or not compared) for `reason` (SKIP_REASONS)."""
        self.counts.add(self._skip_slot[reason])

    def role_rows(self) -> list[tuple[str, str, str, str]]:
        """(model, model_version, role, champion_version) of the role info series."""
        return [(self.model, self.champion_version, N.CHAMPION_ROLE, ""),
                (self.model, self.challenger_version, N.CHALLENGER_ROLE, self.champion_version)]

    def collect(self) -> Iterator[Metric]:
        """The pair's comparison families (`ComparisonCollector` merges pairs by name)."""
        model, champ, chall = self.model, self.champion_version, self.challenger_version
        base = [model, chall, champ]
        labels = ["model", "model_version", "champion_version"]
        totals = [float(v) for v in self.counts.totals()]
        compared = {AGREE: totals[0], DISAGREE: totals[1]}
        skipped = {reason: totals[slot] for reason, slot in self._skip_slot.items()}
        detail = totals[self._detail:]
        family = CounterMetricFamily(N.CHALLENGER_COMPARED.name, N.CHALLENGER_COMPARED.help,
                                     labels=[*labels, "agreement"])
        for agreement, value in compared.items():
            family.add_metric([*base, agreement], value)
        yield family
        family = CounterMetricFamily(N.CHALLENGER_SKIPPED.name, N.CHALLENGER_SKIPPED.help,
                                     labels=[*labels, "reason"])
        for reason, value in skipped.items():
            family.add_metric([*base, reason], value)
        yield family
        if self.kind == "classification":
            family = CounterMetricFamily(N.CHALLENGER_CLASS_PAIR.name,
                                         N.CHALLENGER_CLASS_PAIR.help,
                                         labels=[*labels, "champion_class", "challenger_class"])
            n = len(self.classes)
            for i, a in enumerate(self.classes):
                for j, b in enumerate(self.classes):
                    family.add_metric([*base, a, b], detail[i * n + j])
            yield family
            return
        assert self.tolerance is not None
        gauge = GaugeMetricFamily(N.CHALLENGER_TOLERANCE.name, N.CHALLENGER_TOLERANCE.help,
                                  labels=labels)
        gauge.add_metric(base, self.tolerance)
        yield gauge
        cumulative, running = [], 0.0
        buckets, total = detail[:len(self.edges) + 1], detail[-1]
        for le, count in zip([*map(floatToGoString, self.edges), "+Inf"], buckets, strict=True):
            running += count
            cumulative.append((le, running))
        # built by hand: HistogramMetricFamily drops _count and _sum when an edge is negative
        hist = Metric(N.CHALLENGER_DIFFERENCE.name, N.CHALLENGER_DIFFERENCE.help, "histogram")
        at = dict(zip(labels, base, strict=True))
        hist.samples += [Sample(N.CHALLENGER_DIFFERENCE.bucket, {**at, "le": le}, value)
                         for le, value in cumulative]
        hist.samples += [Sample(N.CHALLENGER_DIFFERENCE.count, at, running),
                         Sample(N.CHALLENGER_DIFFERENCE.sum, at, total)]
        yield hist


class ComparisonCollector(Collector):
    """Renders every `Comparison` of a registry (one per challenger)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._comparisons: list[Comparison] = []

    def add(self, comparison: Comparison) -> None:
        with self._lock:
            self._comparisons.append(comparison)

    def remove(self, comparison: Comparison) -> None:
        with self._lock:
            self._comparisons = [c for c in self._comparisons if c is not comparison]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            comparisons = list(self._comparisons)
        role = GaugeMetricFamily(N.MODEL_ROLE_INFO.name, N.MODEL_ROLE_INFO.help,
                                 labels=["model", "model_version", *N.MODEL_ROLE_INFO.labels])
        # a champion with two challengers has one role row
        for row in sorted({row for c in comparisons for row in c.role_rows()}):
            role.add_metric(list(row), 1.0)
        families: dict[str, Metric] = {role.name: role} if comparisons else {}
        for comparison in comparisons:
            for metric in comparison.collect():
                known = families.get(metric.name)
                if known is None:
                    families[metric.name] = metric
                else:
                    known.samples.extend(metric.samples)
        yield from families.values()


_COLLECTOR_ATTR = "_mlmon_comparisons_collector"
_LOCK = threading.Lock()


def register_comparison(registry: Any, comparison: Comparison) -> None:
    """Expose `comparison` on `registry` (one shared collector per registry)."""
    with _LOCK:
        collector = getattr(registry, _COLLECTOR_ATTR, None)
        if collector is None:
            collector = ComparisonCollector()
            setattr(registry, _COLLECTOR_ATTR, collector)
            registry.register(collector)
    collector.add(comparison)


def unregister_comparison(registry: Any, comparison: Comparison) -> None:
    with _LOCK:
        collector = getattr(registry, _COLLECTOR_ATTR, None)
    if collector is not None:
        collector.remove(comparison)
