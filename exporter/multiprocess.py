"""Counter storage: process memory, or one memory-mapped file per worker process.

prometheus_client's multiprocess mode keys every value by name and labels in a dict-backed mmap;
our hot path instead adds to a flat array of doubles, so we keep the same flat array in a file:

    $MLMON_MULTIPROC_DIR/mlmon_<profile_sha>.json        profile + layout options (written once)
    $MLMON_MULTIPROC_DIR/mlmon_<profile_sha>_<pid>.db    the worker's doubles, native byte order

Writing through a `memoryview` of the mmap costs the same as writing to a bytearray, so workers
pay nothing extra. `/metrics` in any process sums every file of a profile (`read_arrays`), and
of older profiles of the same model version with the same slots (`profile_groups`).

Dead workers: their files are kept and summed, so counters keep counting across restarts, as
with prometheus_client. The only gauge summed across files is in-flight requests (and the
prediction window, which expires by itself); `mark_process_dead(pid)` zeroes both in a dead
worker's files (call it from gunicorn's `child_exit` hook). A new process that gets a dead
worker's pid continues that file and zeroes its gauges on open.
"""

from __future__ import annotations

import glob
import json
import mmap
import os
import threading
import weakref
from typing import Any

import numpy as np

from exporter.layout import WINDOW_SLOTS, Layout

ENV_VARS = ("MLMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
_DOUBLE = 8


def multiproc_dir() -> str | None:
    """The multi-process directory from the environment, or None for single-process mode."""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def open_storage(layout: Layout, directory: str | None) -> Storage:
    """Storage for a monitor; in multi-process mode one per (directory, profile) per process."""
    if directory is None:
        return Storage(layout)
    key = (os.path.abspath(directory), layout.profile.sha, os.getpid())
    storage = _SHARED.get(key)
    if storage is None or storage.pid != os.getpid():
        storage = _SHARED[key] = Storage(layout, directory)
    elif storage.layout.options() != layout.options():
        raise ValueError(f"profile {layout.profile.sha} is already open with other options")
    else:
        _write_meta(directory, layout)  # opened again: this profile is the newest in use
    return storage


class Storage:
    """A flat array of doubles: `values` for the hot path (a list in one process, a memoryview
    of the mmap with a worker file) and, with a file, `array`, a numpy view of the same bytes."""

    def __init__(self, layout: Layout, directory: str | None = None) -> None:
        self.layout = layout
        self.directory = directory
        self.lock = threading.Lock()
        self._mmap: mmap.mmap | None = None
        self._segments: list[tuple[int, Any]] = []
        self.on_reopen: list[weakref.WeakMethod[Any]] = []
        self._open(os.getpid())
        _LIVE.add(self)

    def _open(self, pid: int) -> None:
        size = max(self.layout.size, 1)
        self.pid = pid
        if self.directory is None:
            # A list: item updates cost half of a memoryview's (26 vs 52 ns measured), and the
            # per-record budget is a few microseconds for ~50 updates.
            self.values: Any = [0.0] * size
            self.array: np.ndarray | None = None
        else:
            os.makedirs(self.directory, exist_ok=True)
            _write_meta(self.directory, self.layout)
            path = data_path(self.directory, self.layout.profile.sha, pid)
            with open(path, "a+b") as fh:
                if os.fstat(fh.fileno()).st_size < size * _DOUBLE:
                    fh.truncate(size * _DOUBLE)
                self._mmap = mmap.mmap(fh.fileno(), size * _DOUBLE)
            self.values = memoryview(self._mmap).cast("d")
            self.array = np.frombuffer(self._mmap, dtype=np.float64)
        # Fresh file: empty window. A dead worker's file reused with its pid: its counters carry
        # on, its in-flight gauge and window are not ours.
        _zero_gauges(self.values, self.layout)

    def segment(self, start: int, length: int) -> Any:
        """Slots [start, start + length) as their own indexable object, so the hot path can
        index from 0 (saves an addition per update). A memoryview slice shares the file's
        bytes; in process memory it is a separate list that snapshots and batches fold in."""
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

        Monitors hold segments (memoryview slices) of the old file: `on_reopen` callbacks
        (weak, so a dropped monitor is not kept alive) let them fetch new ones."""
        self.lock = threading.Lock()
        if self.directory is not None:
            self._segments = []
            self._open(os.getpid())
        for ref in self.on_reopen:  # monitors bind the new lock (and the new file's segments)
            callback = ref()
            if callback is not None:
                callback()

    def snapshots(self) -> list[np.ndarray]:
        """One array per process holding this profile's counters (just ours when single)."""
        if self.array is None:
            array = np.array(self.values, dtype=np.float64)
            for start, seg in self._segments:
                array[start:start + len(seg)] = seg
            return [array]
        return [a for sha in compatible_shas(self.directory, self.layout)
                for a in read_arrays(self.directory, sha, self.layout.size)]


# Storages alive in this process, re-opened in forked children (gunicorn --preload forks after
# the app, and with it a monitor, was created).
_LIVE: weakref.WeakSet[Storage] = weakref.WeakSet()
_SHARED: dict[tuple[str, str, int], Storage] = {}


def _after_fork() -> None:
    for storage in list(_LIVE):
        storage.reopen_after_fork()


os.register_at_fork(after_in_child=_after_fork)


def data_path(directory: str, sha: str, pid: int) -> str:
    return os.path.join(directory, f"mlmon_{sha}_{pid}.db")


def meta_path(directory: str, sha: str) -> str:
    return os.path.join(directory, f"mlmon_{sha}.json")


def _write_meta(directory: str, layout: Layout) -> None:
    """Record the profile and options once, so any process can render the files; when the file
    exists, touch it: its mtime says which profile of a model version was opened last."""
    path = meta_path(directory, layout.profile.sha)
    meta = {"profile": layout.profile.to_dict(), "options": layout.options()}
    if os.path.exists(path):
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
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, sort_keys=True)
    os.replace(tmp, path)


def load_meta(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def read_arrays(directory: str, sha: str, size: int) -> list[np.ndarray]:
    """Copies of every worker's counters for one profile; short or unreadable files skipped."""
    out = []
    for path in sorted(glob.glob(os.path.join(directory, f"mlmon_{sha}_*.db"))):
        try:
            data = np.fromfile(path, dtype=np.float64, count=size)
        except (OSError, ValueError):
            continue
        if data.size == size:
            out.append(data)
    return out


def _zero_gauges(values: Any, layout: Layout) -> None:
    values[layout.in_flight] = 0.0
    if layout.window >= 0:
        # slot id -1 never matches a current slot, so the window reads as empty
        for i in range(WINDOW_SLOTS):
            values[layout.window + 3 * i] = -1.0


def mark_process_dead(pid: int, directory: str | None = None) -> int:
    """Zero the gauges (in-flight, prediction window) in a dead worker's files; counters stay.

    Returns how many files were updated. Safe to call for a pid that never wrote anything.
    """
    from exporter.profile import Profile

    directory = directory or multiproc_dir()
    if directory is None:
        return 0
    done = 0
    for path in glob.glob(os.path.join(directory, f"mlmon_*_{int(pid)}.db")):
        sha = os.path.basename(path)[len("mlmon_"):].rsplit("_", 1)[0]
        meta = load_meta(meta_path(directory, sha))
        if meta is None:
            continue
        layout = Layout(Profile.from_dict(meta["profile"]), **_layout_kwargs(meta))
        with open(path, "r+b") as fh:
            if os.fstat(fh.fileno()).st_size < layout.size * _DOUBLE:
                continue
            with mmap.mmap(fh.fileno(), layout.size * _DOUBLE) as mm:
                with memoryview(mm) as raw, raw.cast("d") as values:
                    _zero_gauges(values, layout)
        done += 1
    return done


def _layout_kwargs(meta: dict[str, Any]) -> dict[str, Any]:
    options = meta.get("options") or {}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}


def profile_groups(directory: str) -> list[tuple[Layout, list[str], float]]:
    """One entry per (model, model_version) with metadata in `directory`, for a scrape-only
    process: (layout of the newest profile, shas whose files it sums, when that profile was
    last opened).

    Two profiles of one model version (a rolling deploy with a regenerated profile) must not
    both be rendered: every series would appear twice. The newest (metadata file written or
    touched last) is rendered; the files of older profiles with the same layout signature are
    summed into it (same slots, same series: counters carry on across the deploy); files of
    older profiles with other bins or categories are left out, since their counts belong to
    buckets that are no longer exposed.
    """
    by_model: dict[tuple[str, str], list[tuple[float, str, Layout]]] = {}
    for mtime, sha, layout in _profiles_in(directory):
        key = (layout.profile.model_name, layout.profile.model_version)
        by_model.setdefault(key, []).append((mtime, sha, layout))
    groups = []
    for key in sorted(by_model):
        entries = sorted(by_model[key], key=lambda e: (e[0], e[1]), reverse=True)
        mtime, _, newest = entries[0]
        signature = newest.signature()
        shas = [sha for _, sha, lay in entries if lay.signature() == signature]
        groups.append((newest, shas, mtime))
    return groups


def compatible_shas(directory: str, layout: Layout) -> list[str]:
    """`layout`'s own sha and those of other profiles of the same model version whose files
    share its slots (what a worker's own /metrics sums, so every scrape target agrees)."""
    own, model = layout.profile.sha, (layout.profile.model_name, layout.profile.model_version)
    signature = layout.signature()
    return [own] + [sha for _, sha, lay in _profiles_in(directory) if sha != own and (
        lay.profile.model_name, lay.profile.model_version) == model
        and lay.signature() == signature]


# Parsed metadata files by path, reused while the file's (mtime, size) stay the same: a scrape
# must not re-parse every profile.
_PARSED: dict[str, tuple[tuple[int, int], Layout | None]] = {}


def _profiles_in(directory: str) -> list[tuple[float, str, Layout]]:
    """(mtime, sha, layout) for every readable metadata file in `directory`."""
    from exporter.profile import Profile, ProfileError

    out = []
    for path in sorted(glob.glob(os.path.join(directory, "mlmon_*.json"))):
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == stamp:
            layout = cached[1]
        else:
            meta = load_meta(path)
            try:
                layout = None if meta is None else Layout(
                    Profile.from_dict(meta["profile"]), **_layout_kwargs(meta))
            except (ProfileError, KeyError, TypeError, ValueError):
                layout = None  # a broken file must not take /metrics down
            _PARSED[path] = (stamp, layout)
        if layout is not None:
            out.append((st.st_mtime, os.path.basename(path)[len("mlmon_"):-len(".json")], layout))
    return out
