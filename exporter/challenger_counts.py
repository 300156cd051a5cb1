"""Where a champion/challenger comparison keeps its counters: this process, or worker files.

In one process, a numpy array. In multi-process mode (the challenger's monitor has a
multi-process directory, docs/multi-worker.md), one file per process in that directory,

    $MLMON_MULTIPROC_DIR/mlmon_challenger_<key>_<pid>.db   float64 counters, memory-mapped

and a scrape in any worker sums every file of the comparison: the series are the pool's, as
the monitors' are. `key` is a hash of what fixes the slots (model, both versions, classes or
difference edges), so a comparison with other slots never reads them. Files of exited
workers are kept, like the monitors' counts, so the summed counters never go backwards; a
worker that inherits a file through fork opens its own in the child.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import weakref
from typing import Any

import numpy as np

PREFIX = "mlmon_challenger_"


def counts_key(*parts: object) -> str:
    """A short stable hash of what fixes a comparison's slots."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


class Counts:
    """`size` float64 counters: `add(slot, value)`, and `totals()` over every process."""

    def __init__(self, size: int, directory: str | None, key: str) -> None:
        self.size = size
        self.directory = directory
        self.key = key
        self.lock = threading.Lock()
        self._open()
        if directory is not None:
            os.register_at_fork(after_in_child=_reopen_in_child(weakref.ref(self)))

    def _path(self, pid: int | str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, f"{PREFIX}{self.key}_{pid}.db")

    def _open(self) -> None:
        self.lock = threading.Lock()
        if self.directory is None:
            self.values: Any = np.zeros(self.size)
            return
        path = self._path(os.getpid())
        # r+ when a process with this pid left a file: its counts stay in the sum
        exists = os.path.exists(path) and os.path.getsize(path) == 8 * self.size
        self.values = np.memmap(path, dtype=np.float64, mode="r+" if exists else "w+",
                                shape=(self.size,))

    def add(self, slot: int, value: float = 1.0) -> None:
        with self.lock:
            self.values[slot] += value

    def totals(self) -> np.ndarray:
        """The counters summed over this process, or over every worker file."""
        if self.directory is None:
            with self.lock:
                return np.array(self.values)
        total = np.zeros(self.size)
        for path in glob.glob(self._path("*")):
            try:
                data = np.fromfile(path, dtype=np.float64)
            except OSError:
                continue  # removed while we looked: the directory was cleaned
            if data.shape == (self.size,):
                total += data
        return total


def _reopen_in_child(ref: weakref.ref[Counts]) -> Any:
    def reopen() -> None:
        counts = ref()
        if counts is not None:
            counts._open()
    return reopen
