"""The shipper's own health as Prometheus series `mlmon_shipper_*`.

The roles update plain integers in `ShipperStats` (no prometheus_client call on the prediction
path); `ShipperCollector` turns them into metric families at scrape time.

Several worker processes: each process counts its own records from zero (a forked child too)
and writes them, plus what a dead previous owner of its directory had counted, to
`shipper-stats.json` in its spool directory (`stats_files`); `SpoolRootCollector` sums the
files under a spool root into one pid-free series per name (docs/shipper-delivery.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import mlmon.names as N
from mlmon.log_shipper.stats_files import read_root_counts

# Records lost, by reason. ship() returned False for queue_full and ship_error (and for closed,
# unless close() came while the record was being queued); the others were accepted and could
# not be made durable or delivered.
DROP_REASONS = ("queue_full", "closed", "ship_error", "prepare_error", "unserializable",
                "spool_full", "disk_full", "disk_error", "spool_error", "dead_letter_error")


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


# ShipperStats field -> its series, in the order they are exported
COUNTERS = N.SHIPPER_COUNTERS


def snapshot(stats: ShipperStats, queue_depth: int, spool_bytes: int) -> dict[str, Any]:
    """The values one process exports, as plain data (also what its stats file holds)."""
    values: dict[str, Any] = {name: getattr(stats, name) for name in COUNTERS}
    values["queued"] += queue_depth
    values.update(dropped=dict(stats.dropped), queue_depth=queue_depth, spool_bytes=spool_bytes,
                  last_success=stats.last_success)
    return values


def _families(values: Mapping[str, Any],
              roles: Iterable[tuple[str, bool, int]] | None) -> Iterator[Metric]:
    for name, series in COUNTERS.items():
        yield CounterMetricFamily(series.name, series.help, value=values[name])
    dropped = CounterMetricFamily(N.SHIPPER_DROPPED.name, N.SHIPPER_DROPPED.help,
                                  labels=list(N.SHIPPER_DROPPED.labels))
    for reason, value in sorted(values["dropped"].items()):
        dropped.add_metric([reason], value)
    yield dropped
    for series, key in ((N.SHIPPER_QUEUE_DEPTH, "queue_depth"),
                        (N.SHIPPER_SPOOL_BYTES, "spool_bytes"),
                        (N.SHIPPER_LAST_SUCCESS, "last_success")):
        if values[key] is not None:  # last_success: none before the first accepted request
            yield GaugeMetricFamily(series.name, series.help, value=values[key])
    if roles is not None:
        up = GaugeMetricFamily(N.SHIPPER_ROLE_UP.name, N.SHIPPER_ROLE_UP.help,
                               labels=list(N.SHIPPER_ROLE_UP.labels))
        restarts = CounterMetricFamily(N.SHIPPER_ROLE_RESTARTS.name, N.SHIPPER_ROLE_RESTARTS.help,
                                       labels=list(N.SHIPPER_ROLE_RESTARTS.labels))
        for role, is_up, count in roles:
            up.add_metric([role], 1.0 if is_up else 0.0)
            restarts.add_metric([role], count)
        yield up
        yield restarts


class ShipperCollector(Collector):
    """Yields the `mlmon_shipper_*` families of one process's shipper.

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
        values = snapshot(self._stats, self._queue_depth(), self._spool_bytes())
        yield from _families(values, self._roles() if self._roles is not None else None)


class SpoolRootCollector(Collector):
    """The `mlmon_shipper_*` families summed over every process spooling under `root`.

    Each shipper rewrites its `shipper-stats.json` about once a second; this sums those files
    (the root's and its `pid-*` subdirectories'), so a metrics-only process of a multi-worker
    service exports one series per name, without a pid, like the model counters beside it.
    A file left by a dead worker keeps counting its final values, and once its drained
    directory is removed they live on in the root's retired file, so the sums never go back
    (`mlmon.log_shipper.stats_files`).
    `last_success` is the latest of all; the per-process role series are not summed.

    >>> REGISTRY.register(SpoolRootCollector("/var/lib/mlmon/spool/mlmon-predictions-churn"))
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def collect(self) -> Iterator[Metric]:
        total = read_root_counts(self.root)
        total["dropped"] = {**dict.fromkeys(DROP_REASONS, 0), **total["dropped"]}
        yield from _families(total, None)
