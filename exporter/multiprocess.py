"""Counter storage: process memory, or one memory-mapped file per worker process.

prometheus_client's multiprocess mode keys every value by name and labels in a dict-backed mmap;
our hot path instead adds to a flat array of doubles, so we keep the same flat array in a file:

    $MLMON_MULTIPROC_DIR/mlmon_<key>.json    profile, layout options and the counters' start
                                             time (written once, by the first process that
                                             opens the profile)
    $MLMON_MULTIPROC_DIR/mlmon_<key>_*.db    worker files and the compacted file of dead
                                             workers (`mlmon.exporter.worker_files`)

where `<key>` is `Layout.file_key`, `<profile_sha>-v<layout version>`: files an older mlmon
wrote for the same profile with another slot order are left alone, never misread.

Writing through a `memoryview` of the mmap costs the same as writing to a bytearray, so workers
pay nothing extra. `/metrics` in any process sums every file of a profile, and of older profiles
of the same model version with the same slots (`profile_groups`).

Dead workers' counters are kept (merged into the compacted file), so the summed counters never
go backwards across worker restarts: they started from zero when the profile's metadata was
first written, whichever worker answers a scrape. That time is the `counters_start` exported as
`mlmon_counters_start_timestamp_seconds`, which the restart-aware window counts key on.
Metadata written by mlmon versions without it reads as 0 (the far past): never "recently
started", so the rules take the exact difference, or increase() without a sample one window ago.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from mlmon.exporter.layout import Layout
from mlmon.exporter.worker_files import (
    DOUBLE,
    WorkerFile,
    close_inherited_locks,
    compact_held,
    create_worker_file,
    directory_lock,
    error_reason,
    read_totals,
    worker_pid,
    zero_gauges,
)

ENV_VARS = ("MLMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
COUNTERS_START_KEY = "counters_start"
_log = logging.getLogger(__name__)


def multiproc_dir() -> str | None:
    """The multi-process directory from the environment, or None for single-process mode."""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def open_storage(layout: Layout, directory: str | None) -> Storage:
    """Storage for a monitor; in multi-process mode one per (directory, profile) per process
    (a forked child re-opens the ones it inherits, so the key needs no pid)."""
    if directory is None:
        return Storage(layout)
    key = (os.path.abspath(directory), layout.file_key)
    storage = _SHARED.get(key)
    if storage is None or storage.pid != os.getpid():
        storage = _SHARED[key] = Storage(layout, directory)
    elif storage.layout.options() != layout.options():
        raise ValueError(f"profile {layout.profile.sha} is already open with other options")
    else:
        _write_meta(directory, layout)  # opened again: this profile is the newest in use
    return storage


class Totals(NamedTuple):
    """What a scrape renders: one array per worker (summed by the renderer) and when those
    counters started from zero (None in one process: the monitor's own load time)."""

    arrays: list[np.ndarray]
    started_at: float | None


class Storage:
    """A flat array of doubles: `values` for the hot path (a list in one process, a memoryview
    of the mmap with a worker file) and, with a file, `array`, a numpy view of the same bytes.

    A forked child that cannot open a file of its own (full disk, no inodes or descriptors
    left, a read-only directory) never writes into its parent's: it counts into process memory
    laid out as the file, counts the failure under `mlmon_worker_file_errors_total{reason}`, and
    whoever takes `lock` after a capped exponential backoff retries; the file that opens then
    takes every count made meanwhile. Until then scrapes show the files only.
    """

    # the retry backoff, on `clock` (attributes, so tests can move them)
    retry_first_s = 1.0
    retry_max_s = 60.0
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, layout: Layout, directory: str | None = None) -> None:
        self.layout = layout
        self.directory = directory
        self.lock: Any = threading.Lock()
        self._mutex = self.lock
        self._file: WorkerFile | None = None
        self._segments: list[tuple[int, Any]] = []
        self._on_reopen: list[weakref.WeakMethod[Any]] = []
        self._failures = 0      # failed opens in a row
        self._retry_at = math.inf
        self.pid = os.getpid()
        if directory is None:
            # A list: item updates cost half of a memoryview's (26 vs 52 ns measured), and the
            # per-record budget is a few microseconds for ~50 updates.
            self.values: Any = [0.0] * max(layout.size, 1)
            self.array: np.ndarray | None = None
        else:
            self._open_file(compact=True)  # at start-up a failure raises: the caller sees it
        _LIVE.add(self)

    @property
    def path(self) -> str | None:
        """This process's worker file; None in one process, or while it could not be opened."""
        return None if self._file is None else self._file.path

    def _open_file(self, compact: bool) -> None:
        """Create this process's worker file and count into it (raises when it cannot)."""
        assert self.directory is not None
        os.makedirs(self.directory, exist_ok=True)
        sha = self.layout.file_key
        with directory_lock(self.directory, exclusive=True):
            _write_meta(self.directory, self.layout)
            if compact:  # compact first, then create: the directory stays bounded by workers
                compact_held(self.directory, sha, self.layout)
            created = create_worker_file(self.directory, sha, self.layout)
        self._file = created
        self._count_into(created.mm)

    def _count_into(self, buffer: Any) -> None:
        self.values = memoryview(buffer).cast("d")
        self.array = np.frombuffer(buffer, dtype=np.float64)

    def _without_file(self, exc: BaseException) -> None:
        """Count into process memory, laid out as a fresh file, until a retry opens one."""
        self._file = None
        self._count_into(bytearray(max(self.layout.size, 1) * DOUBLE))
        zero_gauges(self.values, self.layout)
        self.lock = _RetryingLock(self, self._mutex)
        self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.values[self.layout.worker_file_errors[error_reason(exc)]] += 1.0
        self._failures += 1
        self._retry_at = self.clock() + min(
            self.retry_max_s, self.retry_first_s * 2 ** (self._failures - 1))
        if self._failures == 2:  # not at the first, inside os.fork(): logging may not be ready
            _log.warning("mlmon: process %d cannot open its file in %s (%s: %s); counting in "
                         "memory and retrying", os.getpid(), self.directory, error_reason(exc),
                         exc)

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
        self._notify()

    def subscribe(self, callback: Callable[[], Any]) -> None:
        """Call the bound method `callback` after a fork re-opened the storage (held weakly, so
        a dropped monitor is not kept alive; dead references are pruned here)."""
        self._on_reopen = [r for r in self._on_reopen if r() is not None]
        self._on_reopen.append(weakref.WeakMethod(callback))

    def segment(self, start: int, length: int) -> Any:
        """Slots [start, start + length) as their own indexable object, so the hot path can
        index from 0 (saves an addition per update). A memoryview slice shares the file's
        bytes; in process memory it is a separate list that snapshots and batches fold in
        (one per distinct slice: bounded by the layout)."""
        if self.array is not None:
            return self.values[start:start + length]
        for begin, seg in self._segments:
            if begin == start and len(seg) == length:
                return seg
        seg = list(self.values[start:start + length])  # e.g. the window's empty slot ids
        self._segments.append((start, seg))
        return seg

    def add(self, delta: np.ndarray) -> None:
        """Add a batch's counts (caller holds the lock)."""
        if self.array is not None:
            self.array += delta
            return
        delta = delta.copy()
        for start, seg in self._segments:
            part = delta[start:start + len(seg)]
            for i in np.flatnonzero(part).tolist():
                seg[i] += float(part[i])
            part[:] = 0.0
        values = self.values
        for i in np.flatnonzero(delta).tolist():
            values[i] += float(delta[i])

    def reopen_after_fork(self) -> None:
        """A forked child must not write into its parent's file: start its own.

        It closes its copy of the parent's lock descriptor (closing, not LOCK_UN, which would
        release the parent's lock too). Monitors hold segments (memoryview slices) of the old
        file: the subscribed callbacks let them fetch new ones. Never raises (this runs inside
        `os.fork()`): without a file of its own the child counts in memory (`_without_file`)."""
        self.lock = self._mutex = threading.Lock()
        self.pid = os.getpid()
        if self.directory is not None:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    os.close(self._file.lock_fd)
            self._segments = []
            self._failures, self._retry_at = 0, math.inf
            try:
                self._open_file(compact=True)
            except Exception as exc:  # noqa: BLE001 - an error here would leave the parent's file
                self._without_file(exc)
        self._notify()

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
            _log.warning("mlmon: process %d exits without its file in %s: the %d records it "
                         "observed since it was forked are lost", os.getpid(), self.directory,
                         int(self.values[self.layout.observations]))

    def _notify(self) -> None:
        for ref in self._on_reopen:  # monitors bind the new lock (and the new file's segments)
            callback = ref()
            if callback is not None:
                callback()

    def totals(self) -> Totals:
        """This profile's counters, one array per process (just ours when single)."""
        if self.array is None:
            array = np.array(self.values, dtype=np.float64)
            for start, seg in self._segments:
                array[start:start + len(seg)] = seg
            return Totals([array], None)
        assert self.directory is not None
        shas, started_at = _compatible(self.directory, self.layout)
        return Totals(read_totals(self.directory, shas, self.layout), started_at)


class _RetryingLock:
    """A storage's lock while it has no worker file: taking it also retries the open once the
    backoff has passed (one clock read otherwise). Shares the storage's mutex, so holders of
    the plain lock and of this one exclude each other across the switch back."""

    __slots__ = ("_storage", "_mutex", "release")

    def __init__(self, storage: Storage, mutex: Any) -> None:
        self._storage = storage
        self._mutex = mutex
        self.release = mutex.release

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._mutex.acquire(blocking, timeout):
            return False
        storage = self._storage
        if storage.clock() >= storage._retry_at:
            try:
                storage._retry()
            except BaseException:
                self._mutex.release()  # a mutex left held would stop every thread
                raise
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()


# Storages alive in this process, re-opened in forked children (gunicorn --preload forks after
# the app, and with it a monitor, was created). One per (directory, profile): bounded.
_LIVE: weakref.WeakSet[Storage] = weakref.WeakSet()
_SHARED: dict[tuple[str, str], Storage] = {}


def _after_fork() -> None:
    close_inherited_locks()
    for storage in list(_LIVE):
        storage.reopen_after_fork()


def _before_exit() -> None:
    for storage in list(_LIVE):
        storage.retry_before_exit()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_before_exit)


def meta_path(directory: str, sha: str) -> str:
    return os.path.join(directory, f"mlmon_{sha}.json")


def _write_meta(directory: str, layout: Layout) -> None:
    """Record the profile, options and counters' start once, so any process can render the
    files; when the file exists, touch it: its mtime says which profile of a model version was
    opened last.

    Created with a hard link from a complete temporary file: it appears whole, and of racing
    processes exactly one wins (the others' link fails), so all agree on `counters_start`."""
    path = meta_path(directory, layout.file_key)
    meta = {"profile": layout.profile.to_dict(), "options": layout.options(),
            COUNTERS_START_KEY: time.time()}
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, sort_keys=True)
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            pass  # another process won: check its options below
        finally:
            os.unlink(tmp)
    existing = load_meta(path)
    if existing is not None and existing.get("options") != meta["options"]:
        raise ValueError(
            f"{path}: another process uses this profile with options "
            f"{existing.get('options')}, not {meta['options']}; use the same options"
        )
    try:
        os.utime(path)
    except OSError:
        pass  # read-only or gone: the order of profiles is a hint, not a requirement


def load_meta(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def counters_start(meta: dict[str, Any]) -> float:
    """When the counters of this metadata's profile started; 0 (the far past) when written by
    a version that did not record it: inventing a recent time would make the window counts
    take whole counters (an overcount)."""
    value = meta.get(COUNTERS_START_KEY)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def mark_process_dead(pid: int, directory: str | None = None) -> int:
    """Compact the files of workers that are gone (their lock is free), `pid`'s included.

    Returns how many of `pid`'s files were merged. Optional: scrapes compact too; kept for
    gunicorn `child_exit` hooks written for earlier versions (and prometheus_client's habit).
    """
    directory = directory or multiproc_dir()
    if directory is None or not os.path.isdir(directory):
        return 0
    merged = 0
    with directory_lock(directory, exclusive=True) as held:
        if not held:
            return 0
        for entry in _profiles_in(directory):
            merged += sum(worker_pid(name) == int(pid)
                          for name in compact_held(directory, entry.sha, entry.layout))
    return merged


class ProfileEntry(NamedTuple):
    mtime: float         # when the profile was last opened (metadata written or touched)
    sha: str
    layout: Layout
    started_at: float    # counters_start


class Group(NamedTuple):
    """What one (model, model_version) renders: the newest profile's layout, the shas whose
    files it sums, when that profile was last opened, and when the summed counters started
    (the earliest start of the group: the older files' counts are part of the sum)."""

    layout: Layout
    shas: list[str]
    opened_at: float
    started_at: float


def profile_groups(directory: str) -> list[Group]:
    """One group per (model, model_version) with metadata in `directory`, for a scrape-only
    process.

    Two profiles of one model version (a rolling deploy with a regenerated profile) must not
    both be rendered: every series would appear twice. The newest (metadata file written or
    touched last) is rendered; the files of older profiles with the same layout signature are
    summed into it (same slots, same series: counters carry on across the deploy); files of
    older profiles with other bins or categories are left out, since their counts belong to
    buckets that are no longer exposed.
    """
    by_model: dict[tuple[str, str], list[ProfileEntry]] = {}
    for entry in _profiles_in(directory):
        key = (entry.layout.profile.model_name, entry.layout.profile.model_version)
        by_model.setdefault(key, []).append(entry)
    groups = []
    for key in sorted(by_model):
        entries = sorted(by_model[key], key=lambda e: (e.mtime, e.sha), reverse=True)
        newest = entries[0]
        signature = newest.layout.signature()
        members = [e for e in entries if e.layout.signature() == signature]
        groups.append(Group(newest.layout, [e.sha for e in members], newest.mtime,
                            min(e.started_at for e in members)))
    return groups


def _compatible(directory: str, layout: Layout) -> tuple[list[str], float]:
    """`layout`'s own sha and those of other profiles of the same model version whose files
    share its slots (what a worker's own /metrics sums, so every scrape target agrees), and
    the earliest counters' start among them."""
    own, model = layout.file_key, (layout.profile.model_name, layout.profile.model_version)
    signature = layout.signature()
    entries = _profiles_in(directory)
    members = [e for e in entries if e.sha == own] + [
        e for e in entries if e.sha != own
        and (e.layout.profile.model_name, e.layout.profile.model_version) == model
        and e.layout.signature() == signature]
    # our own metadata is always there (written on open); 0.0 only if someone deleted it
    started = min((e.started_at for e in members), default=0.0)
    return [own] + [e.sha for e in members if e.sha != own], started


def _layout_kwargs(meta: dict[str, Any]) -> dict[str, Any]:
    options = meta.get("options") or {}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}


# Parsed metadata files per directory, by path, reused while the file's (mtime, size) stay the
# same: a scrape must not re-parse every profile. Each scan keeps only the files it found, so
# the cache holds what the directory holds now, not every profile ever seen.
_PARSED: dict[str, dict[str, tuple[tuple[int, int], tuple[Layout, float] | None]]] = {}


def _profiles_in(directory: str) -> list[ProfileEntry]:
    """An entry for every readable metadata file in `directory`."""
    from mlmon.exporter.profile import Profile, ProfileError

    cache = _PARSED.get(directory, {})
    fresh: dict[str, tuple[tuple[int, int], tuple[Layout, float] | None]] = {}
    out = []
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "mlmon_*.json"))):
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamp = (st.st_mtime_ns, st.st_size)
        cached = cache.get(path)
        if cached is not None and cached[0] == stamp:
            parsed = cached[1]
        else:
            meta = load_meta(path)
            try:
                parsed = None if meta is None else (Layout(
                    Profile.from_dict(meta["profile"]), **_layout_kwargs(meta)),
                    counters_start(meta))
            except (ProfileError, KeyError, TypeError, ValueError):
                parsed = None  # a broken file must not take /metrics down
        fresh[path] = (stamp, parsed)
        sha = os.path.basename(path)[len("mlmon_"):-len(".json")]
        # metadata of another slot order (an older mlmon's, named by the bare profile sha):
        # its files cannot be summed with this layout's, so the profile is not listed from it
        if parsed is not None and parsed[0].file_key == sha:
            out.append(ProfileEntry(st.st_mtime, sha, parsed[0], parsed[1]))
    _PARSED[directory] = fresh
    return out
