"""The shipper's own health as Prometheus series `mlmon_shipper_*`.

The worker thread updates plain integers in `ShipperStats` (no locks, no prometheus_client call
on the prediction path); `ShipperCollector` turns them into metric families at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DROP_REASONS = ("queue_full", "spool_full", "closed", "unserializable", "spool_error",
                "prepare_error")


@dataclass
class ShipperStats:
    """Counters since start-up. Written by the worker; `dropped` also by producers (locked)."""

    queued: int = 0          # records the worker took from the queue (+ depth = accepted)
    shipped: int = 0         # indexed (or already present: 409) by a direct send
    retried: int = 0         # document re-sends after a retryable failure
    spooled: int = 0         # written to the disk spool
    replayed: int = 0        # indexed from the spool
    dead_lettered: int = 0   # rejected by Elasticsearch for their content
    spool_corrupt: int = 0   # torn / corrupt spool lines skipped
    duplicate_ids: int = 0   # 409 on a record's first send: its id was already indexed
    last_success: float | None = None  # wall-clock time of the last accepted bulk request
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drop(self, reason: str, count: int = 1) -> None:
        """Count records lost for `reason` by a producer thread (serialized by a lock)."""
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def worker_drop(self, reason: str, count: int = 1) -> None:
        """Count a drop from the worker. No lock: only the worker writes these reasons, and
        taking the producers' lock could wait on a SIGTERM handler that interrupted a holder."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class ShipperCollector(Collector):
    """Yields the `mlmon_shipper_*` families from a stats object and live gauges.

    >>> REGISTRY.register(ShipperCollector(shipper.stats, shipper.queue_depth,
    ...                                    shipper.spool_bytes))
    """

    def __init__(self, stats: ShipperStats, queue_depth: Callable[[], int],
                 spool_bytes: Callable[[], int]) -> None:
        self._stats = stats
        self._queue_depth = queue_depth
        self._spool_bytes = spool_bytes

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        for name, value, text in (
            ("queued", s.queued + self._queue_depth(), "records accepted by ship()"),
            ("shipped", s.shipped, "records indexed by a direct bulk request"),
            ("retried", s.retried, "document re-sends after a retryable failure"),
            ("spooled", s.spooled, "records written to the disk spool"),
            ("replayed", s.replayed, "records indexed from the disk spool"),
            ("dead_lettered", s.dead_lettered, "records Elasticsearch rejected for their content"),
            ("spool_corrupt", s.spool_corrupt, "torn or corrupt spool records skipped"),
            ("duplicate_ids", s.duplicate_ids,
             "records not indexed because their id (request_id) was already indexed"),
        ):
            yield CounterMetricFamily(f"mlmon_shipper_{name}", text, value=value)
        dropped = CounterMetricFamily("mlmon_shipper_dropped", "records lost, by reason",
                                      labels=["reason"])
        counts = dict(s.dropped)
        for reason, value in sorted(counts.items()):
            dropped.add_metric([reason], value)
        yield dropped
        yield GaugeMetricFamily("mlmon_shipper_queue_depth", "records in the in-memory queue",
                                value=self._queue_depth())
        yield GaugeMetricFamily("mlmon_shipper_spool_bytes", "bytes waiting in the disk spool",
                                value=self._spool_bytes())
        if s.last_success is not None:
            yield GaugeMetricFamily("mlmon_shipper_last_success_timestamp_seconds",
                                    "when Elasticsearch last accepted a bulk request",
                                    value=s.last_success)
