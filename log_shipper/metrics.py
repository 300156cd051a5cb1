"""The shipper's own health as Prometheus series `mlmon_shipper_*`.

The roles update plain integers in `ShipperStats` (no prometheus_client call on the prediction
path); `ShipperCollector` turns them into metric families at scrape time.

Several worker processes: each process counts its own records from zero (a forked child too)
and no series carries a `pid` label; docs/shipper-delivery.md says how to sum them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Records lost, by reason. ship() returned False for the first two; the others were accepted
# and could not be made durable or delivered.
DROP_REASONS = ("queue_full", "closed", "prepare_error", "unserializable", "spool_full",
                "disk_full", "disk_error", "spool_error", "dead_letter_error")


@dataclass
class ShipperStats:
    """Counters since start-up. Written by the roles; `dropped` also by producers (locked)."""

    queued: int = 0          # records the writer took from the queue (+ depth = accepted)
    shipped: int = 0         # indexed (or already present: 409) on their first delivery try
    retried: int = 0         # document re-sends after a retryable failure
    spooled: int = 0         # written to the disk spool
    replayed: int = 0        # indexed after a failure, or from a spool left by a process
    dead_lettered: int = 0   # rejected by Elasticsearch for their content
    spool_corrupt: int = 0   # torn / corrupt spool lines skipped
    duplicate_ids: int = 0   # 409 on a record's first send: its id was already indexed
    fsync_failures: int = 0  # fsyncs that failed: spooled records not safe from power loss
    last_success: float | None = None  # wall-clock time of the last accepted bulk request
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drop(self, reason: str, count: int = 1) -> None:
        """Count records lost for `reason` by a producer thread (serialized by a lock)."""
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def worker_drop(self, reason: str, count: int = 1) -> None:
        """Count a drop from a role. No lock: each reason is written by one role only, and
        taking the producers' lock could wait on a SIGTERM handler that interrupted a holder."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def reset(self) -> None:
        """Zero every counter and make a fresh lock (a forked child counts its own records)."""
        for f in fields(self):
            setattr(self, f.name, f.default_factory() if callable(f.default_factory)
                    else f.default)


class ShipperCollector(Collector):
    """Yields the `mlmon_shipper_*` families from a stats object and live gauges.

    >>> REGISTRY.register(shipper.collector())   # or, by hand:
    >>> REGISTRY.register(ShipperCollector(shipper.stats, shipper.queue_depth,
    ...                                    shipper.spool_bytes))
    """

    def __init__(self, stats: ShipperStats, queue_depth: Callable[[], int],
                 spool_bytes: Callable[[], int],
                 roles: Callable[[], Iterable[tuple[str, bool, int]]] | None = None) -> None:
        self._stats = stats
        self._queue_depth = queue_depth
        self._spool_bytes = spool_bytes
        self._roles = roles

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        for name, value, text in (
            ("queued", s.queued + self._queue_depth(), "records accepted by ship()"),
            ("shipped", s.shipped, "records indexed on their first delivery attempt"),
            ("retried", s.retried, "document re-sends after a retryable failure"),
            ("spooled", s.spooled, "records written to the disk spool"),
            ("replayed", s.replayed,
             "records indexed after a failure or from a spool left by a previous process"),
            ("dead_lettered", s.dead_lettered, "records Elasticsearch rejected for their content"),
            ("spool_corrupt", s.spool_corrupt, "torn or corrupt spool records skipped"),
            ("duplicate_ids", s.duplicate_ids,
             "records not indexed because their id (request_id) was already indexed"),
            ("fsync_failures", s.fsync_failures,
             "spool fsyncs that failed (records kept, not safe from a power loss)"),
        ):
            yield CounterMetricFamily(f"mlmon_shipper_{name}", text, value=value)
        dropped = CounterMetricFamily("mlmon_shipper_dropped", "records lost, by reason",
                                      labels=["reason"])
        for reason, value in sorted(dict(s.dropped).items()):
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
        if self._roles is not None:
            up = GaugeMetricFamily("mlmon_shipper_role_up",
                                   "1 while the role runs, 0 while it backs off after an error",
                                   labels=["role"])
            restarts = CounterMetricFamily("mlmon_shipper_role_restarts",
                                           "restarts of the role after an unexpected error",
                                           labels=["role"])
            for role, is_up, count in self._roles():
                up.add_metric([role], 1.0 if is_up else 0.0)
                restarts.add_metric([role], count)
            yield up
            yield restarts
