"""Where a champion/challenger comparison keeps its counters: this process, or worker files.

In one process, a numpy array. In multi-process mode (the challenger's monitor has a
multi-process directory, docs/multi-worker.md), one worker file per process in that directory,
handled as the monitors' are (`mlmon.exporter.worker_array`, `mlmon.exporter.worker_files`):

    $MLMON_MULTIPROC_DIR/mlmon_challenger_<key>_<pid>_<token>.db   float64 counters, mmap'ed
    $MLMON_MULTIPROC_DIR/mlmon_challenger_<key>_compacted.db       the exited workers' sum

and a scrape in any worker sums every file of the comparison: the series are the pool's, as
the monitors' are. `key` is a hash of what fixes the slots (model, both versions, classes or
difference edges), so a comparison with other slots never reads them. Exited workers' counts
are compacted, never dropped, so the summed counters never go backwards; files named
`mlmon_challenger_<key>_<pid>.db` (mlmon versions before worker locks) are summed as they are.

A forked worker opens a file of its own. When it cannot, it counts in memory (added to the
scrapes it answers), retries with backoff and moves its counts into the file once it opens;
each failed open is counted under the champion monitor's `mlmon_worker_file_errors_total{reason}`
(`file_errors`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmon.exporter.worker_array import WorkerArray
from mlmon.exporter.worker_files import read_totals

if TYPE_CHECKING:
    from mlmon.exporter.multiprocess import Storage

KEY_PREFIX = "challenger_"


def counts_key(*parts: object) -> str:
    """A short stable hash of what fixes a comparison's slots."""
    return KEY_PREFIX + hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


class Counts(WorkerArray):
    """`size` float64 counters: `add(slot, value)`, and `totals()` over every process.

    >>> counts = Counts(9, directory, counts_key("churn", "3", "4"), file_errors=storage)
    >>> counts.add(0)
    """

    def __init__(self, size: int, directory: str | None, key: str,
                 file_errors: Storage | None = None) -> None:
        if directory is not None and file_errors is None:
            raise ValueError("counts in a multi-process directory need a storage to count "
                             "failed opens of their files in (the champion monitor's)")
        self.size = size
        self._file_errors = file_errors
        if directory is None:
            self.values = np.zeros(size)
            self.array = None
        super().__init__(self, directory, key)

    def clear_gauges(self, values: Any) -> None:
        """Every slot is a counter."""

    def _count_error(self, reason: str) -> None:
        assert self._file_errors is not None
        self._file_errors.count_file_error(reason)

    def _lost(self) -> str:
        return "the comparisons it counted since it was forked"

    def add(self, slot: int, value: float = 1.0) -> None:
        with self.lock:
            self.values[slot] += value

    def totals(self) -> np.ndarray:
        """The counters summed over this process, or over every worker file (and this
        process's memory while it has no file)."""
        directory = self.directory
        if directory is None:
            with self.lock:
                return np.array(self.values)
        total = np.zeros(self.size)
        for data in self.read_with_memory(lambda: read_totals(directory, [self.key], self)):
            total += data
        return total
