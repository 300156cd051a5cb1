"""One process's counters in a worker file of its own, or in memory while it cannot have one.

`WorkerArray` is what the monitors' storage (`mlmon.exporter.multiprocess.Storage`) and the
challenger comparisons' counts (`mlmon.exporter.challenger_counts.Counts`) share: a flat array
of doubles in a worker file (`mlmon.exporter.worker_files`: created allocated, flock'ed,
compacted once its owner is gone), re-created in every forked child.

A forked child that cannot open a file of its own (full disk, no inodes or descriptors left, a
read-only directory) never writes into its parent's: it counts into process memory laid out as
the file, counts the failure (`_count_error`, by `error_reason`), and whoever takes `lock`
after a capped exponential backoff retries; the file that opens then takes every count made
meanwhile. At interpreter exit a process still without its file tries once more.

Scrapes read the files (`read_with_memory`): a process without its file adds what it holds in
memory to the scrapes it answers, so its counts and its failures show while the fault lasts.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from mlmon.exporter.worker_files import (
    DOUBLE,
    FileSlots,
    WorkerFile,
    close_inherited_locks,
    compact_held,
    create_worker_file,
    directory_lock,
    error_reason,
)

_log = logging.getLogger(__name__)


class WorkerArray:
    """`slots.size` doubles: `values` for the hot path (a memoryview of the file, or of memory
    while there is none) and `array`, a numpy view of the same bytes. Subclasses count failed
    opens (`_count_error`) and may prepare the directory (`_prepare_held`)."""

    # the retry backoff, on `clock` (attributes, so tests can move them)
    retry_first_s = 1.0
    retry_max_s = 60.0
    clock: Callable[[], float] = staticmethod(time.monotonic)

    values: Any
    array: np.ndarray | None

    def __init__(self, slots: FileSlots, directory: str | None, key: str) -> None:
        self.slots = slots
        self.directory = directory
        self.key = key
        self.lock: Any = threading.Lock()
        self._mutex = self.lock
        self._file: WorkerFile | None = None
        self._failures = 0      # failed opens in a row
        self._retry_at = math.inf
        self.pid = os.getpid()
        if directory is not None:
            self._open_file(compact=True)  # at start-up a failure raises: the caller sees it
        order = next(_ORDER)
        _LIVE[order] = weakref.ref(self, lambda _: _LIVE.pop(order, None))

    @property
    def path(self) -> str | None:
        """This process's worker file; None in one process, or while it could not be opened."""
        return None if self._file is None else self._file.path

    def _prepare_held(self) -> None:
        """With the directory lock held, before the file is created (nothing by default)."""

    def _count_error(self, reason: str) -> None:
        """Count a failed open for `reason` (called with `_mutex` held, or inside os.fork())."""
        raise NotImplementedError

    def _reopened(self) -> None:
        """After a fork or a successful retry gave this process new `values` (nothing)."""

    def _open_file(self, compact: bool) -> None:
        """Create this process's worker file and count into it (raises when it cannot)."""
        assert self.directory is not None
        os.makedirs(self.directory, exist_ok=True)
        with directory_lock(self.directory, exclusive=True):
            self._prepare_held()
            if compact:  # compact first, then create: the directory stays bounded by workers
                compact_held(self.directory, self.key, self.slots)
            created = create_worker_file(self.directory, self.key, self.slots)
        self._file = created
        self._count_into(created.mm)

    def _count_into(self, buffer: Any) -> None:
        self.values = memoryview(buffer).cast("d")
        self.array = np.frombuffer(buffer, dtype=np.float64)

    def _without_file(self, exc: BaseException) -> None:
        """Count into process memory, laid out as a fresh file, until a retry opens one."""
        self._file = None
        self._count_into(bytearray(max(self.slots.size, 1) * DOUBLE))
        self.slots.clear_gauges(self.values)
        self.lock = _RetryingLock(self, self._mutex)
        self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._count_error(error_reason(exc))
        self._failures += 1
        self._retry_at = self.clock() + min(
            self.retry_max_s, self.retry_first_s * 2 ** (self._failures - 1))
        if self._failures == 2:  # not at the first, inside os.fork(): logging may not be ready
            _log.warning("mlmon: process %d cannot open its file %s in %s (%s: %s); counting "
                         "in memory and retrying", os.getpid(), self.key, self.directory,
                         error_reason(exc), exc)

    def _retry(self) -> None:
        """With `_mutex` held and the backoff passed: open the file and move the counts made
        meanwhile into it, or count the failure and back off further."""
        held = self.array
        try:
            self._open_file(compact=False)  # no compaction: a request is waiting
        except Exception as exc:  # noqa: BLE001 - called in the serving path
            self._failed(exc)
            return
        assert self.array is not None and held is not None
        self.array[:] = held  # the file started as the memory did: zeros and empty gauges
        self._failures, self._retry_at = 0, math.inf
        self.lock = self._mutex
        _log.info("mlmon: process %d opened its file %s", os.getpid(), self.path)
        self._reopened()

    def read_with_memory(self, read: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """The arrays `read` returns (the worker files'), plus, while this process has no file,
        a copy of the counts it holds in memory, which no file holds.

        Without a file, both are read holding `lock`, which the catch-up into a new file holds
        too (`_retry`): a count is either still in memory or already in the file, so it is
        summed once. Taking it may itself retry the open, past the backoff, before reading. The
        hot path of this process waits for the read meanwhile, only while it has no file."""
        if self._file is not None or self.directory is None:
            return read()  # a file, once open, is this process's until it exits
        with self.lock:
            arrays = read()
            if self._file is None:
                assert self.array is not None
                arrays.append(self.array.copy())
            return arrays

    def reopen_after_fork(self) -> None:
        """A forked child must not write into its parent's file: start its own.

        It closes its copy of the parent's lock descriptor (closing, not LOCK_UN, which would
        release the parent's lock too). Never raises (this runs inside `os.fork()`): without a
        file of its own the child counts in memory (`_without_file`)."""
        self.lock = self._mutex = threading.Lock()
        self.pid = os.getpid()
        if self.directory is not None:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    os.close(self._file.lock_fd)
            self._failures, self._retry_at = 0, math.inf
            try:
                self._open_file(compact=True)
            except Exception as exc:  # noqa: BLE001 - an error here would leave the parent's file
                self._without_file(exc)
        self._reopened()

    def retry_before_exit(self) -> None:
        """At interpreter exit: a process still without its file tries once more, whatever the
        backoff, since the counts it holds in memory are lost when it is gone."""
        if self._file is not None or self.directory is None or self.pid != os.getpid():
            return
        if not self._mutex.acquire(timeout=1.0):  # a thread stuck holding it: do not hang exit
            return
        try:
            self._retry()
        finally:
            self._mutex.release()
        if self._file is None:
            _log.warning("mlmon: process %d exits without its file %s in %s: %s is lost",
                         os.getpid(), self.key, self.directory, self._lost())

    def _lost(self) -> str:
        """What a process that exits without its file loses, for the warning."""
        return "what it counted since it was forked"


class _RetryingLock:
    """An array's lock while it has no worker file: taking it also retries the open once the
    backoff has passed (one clock read otherwise). Shares the array's mutex, so holders of the
    plain lock and of this one exclude each other across the switch back."""

    __slots__ = ("_array", "_mutex", "release")

    def __init__(self, array: WorkerArray, mutex: Any) -> None:
        self._array = array
        self._mutex = mutex
        self.release = mutex.release

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._mutex.acquire(blocking, timeout):
            return False
        array = self._array
        if array.clock() >= array._retry_at:
            try:
                array._retry()
            except BaseException:
                self._mutex.release()  # a mutex left held would stop every thread
                raise
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()


# Arrays alive in this process, re-opened in forked children (gunicorn --preload forks after
# the app, and with it a monitor, was created), in the order they were made: an array that
# counts its failures into another (a comparison into its champion's storage) is made after
# it, so that one already counts into the child's own file or memory.
_ORDER = itertools.count()
_LIVE: dict[int, weakref.ref[WorkerArray]] = {}


def _live() -> list[WorkerArray]:
    return [array for ref in list(_LIVE.values()) if (array := ref()) is not None]


def _after_fork() -> None:
    close_inherited_locks()
    for array in _live():
        array.reopen_after_fork()


def _before_exit() -> None:
    for array in _live():
        array.retry_before_exit()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_before_exit)
