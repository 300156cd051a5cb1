"""Counter storage: process memory, or one memory-mapped file per worker process.

prometheus_client's multiprocess mode keys every value by name and labels in a dict-backed mmap;
our hot path instead adds to a flat array of doubles, so we keep the same flat array in a file:

    $MLMON_MULTIPROC_DIR/mlmon_<key>.json    profile, layout options and the counters' start
                                             time (written once, by the first process that
                                             opens the profile)
    $MLMON_MULTIPROC_DIR/mlmon_<key>_*.db    worker files and the compacted file of dead
                                             workers (`mlmon.exporter.worker_files`)

where `<key>` is `Layout.file_key`, `<profile_sha>-v<layout version>`: files an older mlmon
wrote for the same profile with another slot order are left alone, never misread. A worker
file's life in one process (created at start-up and again after a fork; process memory while it
cannot be opened) is `mlmon.exporter.worker_array`'s, shared with the challenger comparisons.

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

import glob
import json
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from mlmon.exporter.layout import Layout
from mlmon.exporter.worker_array import WorkerArray
from mlmon.exporter.worker_files import (
    compact_held,
    directory_lock,
    read_totals,
    worker_pid,
)

ENV_VARS = ("MLMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
COUNTERS_START_KEY = "counters_start"


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


class Storage(WorkerArray):
    """A flat array of doubles: `values` for the hot path (a list in one process, a memoryview
    of the mmap with a worker file) and, with a file, `array`, a numpy view of the same bytes.

    A forked child that cannot open a file of its own counts in memory and retries
    (`WorkerArray`); its failed opens are counted under `mlmon_worker_file_errors_total{reason}`.
    Until it has its file, the scrapes it answers add those counts to the files'.
    """

    def __init__(self, layout: Layout, directory: str | None = None) -> None:
        self.layout = layout
        self._segments: list[tuple[int, Any]] = []
        self._on_reopen: list[weakref.WeakMethod[Any]] = []
        if directory is None:
            # A list: item updates cost half of a memoryview's (26 vs 52 ns measured), and the
            # per-record budget is a few microseconds for ~50 updates.
            self.values = [0.0] * max(layout.size, 1)
            self.array = None
        # no file key in one process: an OutcomeMonitor's layout has none
        super().__init__(layout, directory, "" if directory is None else layout.file_key)

    def _prepare_held(self) -> None:
        assert self.directory is not None
        _write_meta(self.directory, self.layout)

    def _count_error(self, reason: str) -> None:
        self.values[self.layout.worker_file_errors[reason]] += 1.0

    def count_file_error(self, reason: str) -> None:
        """Count a failed open of another worker file of this process (a challenger
        comparison's) under this monitor's `mlmon_worker_file_errors_total{reason}`."""
        with self.lock:
            self._count_error(reason)

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

    def _reopened(self) -> None:
        """Monitors hold segments (memoryview slices) of the old file and its lock: the
        subscribed callbacks let them fetch new ones."""
        for ref in self._on_reopen:
            callback = ref()
            if callback is not None:
                callback()

    def _lost(self) -> str:
        return (f"the {int(self.values[self.layout.observations])} records it observed since "
                "it was forked")

    def totals(self) -> Totals:
        """This profile's counters, one array per process (just ours when single)."""
        if self.directory is None:
            array = np.array(self.values, dtype=np.float64)
            for start, seg in self._segments:
                array[start:start + len(seg)] = seg
            return Totals([array], None)
        directory = self.directory
        shas, started_at = _compatible(directory, self.layout)
        return Totals(self.read_with_memory(lambda: read_totals(directory, shas, self.layout)),
                      started_at)


_SHARED: dict[tuple[str, str], Storage] = {}


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
