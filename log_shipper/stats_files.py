"""The shipper's counters on disk, so that sums over worker processes never go back.

Each process rewrites `shipper-stats.json` in its spool directory (`write_stats_file`). Two
events would make a sum over those files go back, and this module handles both:

- A process takes over a directory whose previous owner died (a container restarted with the
  same pid on a persistent spool volume): `carried_counts` gives it the dead owner's final
  counts to continue from, so the file's totals go on from there instead of restarting at zero.
- A drained orphan's directory is removed (so recycled workers do not pile up `pid-*`
  directories): `retire` first folds its final counts into the root's `RETIRED_FILE`, once.

Each stats file carries an `instance` id, kept across a take-over. The retired file records
the instances it absorbed, so a crash between "retired file written" and "stats file removed"
neither counts the orphan twice (readers and later retirements skip an absorbed instance) nor
lets a process continue from counts already retired. Retirements take the root's lock
exclusively and `read_root_counts` takes it shared, so a scrape sees each count exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlmon.names as N

STATS_FILE = "shipper-stats.json"             # in each process's spool directory
RETIRED_FILE = "shipper-stats-retired.json"   # in the spool root: removed directories' counts
_ROOT_LOCK = "shipper-stats.lock"             # in the spool root: guards the retired file
INSTANCE = "instance"                          # the stats file's lineage (kept on take-over)
_GAUGES = ("queue_depth", "spool_bytes")       # a dead process holds no queue, no spool


def empty_counts() -> dict[str, Any]:
    """Counters at zero, in the shape of a stats file."""
    return {**dict.fromkeys(N.SHIPPER_COUNTERS, 0), "dropped": {}, "last_success": None}


def add_counts(total: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Add the counters of `values` to `total` (`last_success`: the latest of both)."""
    for name in N.SHIPPER_COUNTERS:
        total[name] = total.get(name, 0) + values.get(name, 0)
    dropped = total.setdefault("dropped", {})
    for reason, count in values.get("dropped", {}).items():
        dropped[reason] = dropped.get(reason, 0) + count
    if values.get("last_success") is not None:
        total["last_success"] = max(total.get("last_success") or 0, values["last_success"])


def write_stats_file(directory: Path, values: Mapping[str, Any]) -> None:
    """Replace `<directory>/shipper-stats.json` atomically (raises OSError, e.g. disk full)."""
    _replace(directory / STATS_FILE, values)


def carried_counts(directory: Path) -> tuple[str, dict[str, Any]]:
    """(instance, counts) for the process that now holds `directory`'s spool lock.

    A stats file found there was left by a dead owner (we hold its lock): continue its
    instance and counts, unless its root already retired them."""
    values = _read(directory / STATS_FILE)
    retired = _read_retired(directory.parent)  # replaced atomically: no lock needed to read it
    if values is None or _instance(directory / STATS_FILE, values) in retired["absorbed"]:
        return uuid.uuid4().hex, empty_counts()
    counts = empty_counts()
    add_counts(counts, values)
    return _instance(directory / STATS_FILE, values), counts


def retire(directory: Path) -> None:
    """Fold a drained orphan's final counts into its root's retired file, then remove its stats
    file. The caller holds the orphan's spool lock (raises OSError, e.g. disk full)."""
    root, path = directory.parent, directory / STATS_FILE
    with _root_lock(root, shared=False) as locked:
        if not locked:
            raise OSError(f"cannot lock {root / _ROOT_LOCK}")
        values = _read(path)
        if values is not None:
            retired = _read_retired(root)
            instance = _instance(path, values)
            if instance not in retired["absorbed"]:
                add_counts(retired["counts"], values)
                retired["absorbed"][instance] = directory.name
                _forget_removed(root, retired["absorbed"])
                _replace(root / RETIRED_FILE, retired)
        path.unlink(missing_ok=True)


def read_root_counts(root: Path) -> dict[str, Any]:
    """The sum over `root`: its own stats file, its subdirectories' and the retired counts."""
    total = {**empty_counts(), **dict.fromkeys(_GAUGES, 0)}
    with _root_lock(root, shared=True):  # not locked (read-only root): a rare miss, not a double
        retired = _read_retired(root)
        add_counts(total, retired["counts"])
        for path in [root / STATS_FILE, *sorted(root.glob(f"*/{STATS_FILE}"))]:
            values = _read(path)
            if values is None or _instance(path, values) in retired["absorbed"]:
                continue  # absent, or being replaced right now (next scrape), or retired
            add_counts(total, values)
            for gauge in _GAUGES:
                total[gauge] += values.get(gauge, 0)
    return total


def _instance(path: Path, values: Mapping[str, Any]) -> str:
    # A file written before instances existed: its directory and write time name it, stable
    # while its owner is dead (nobody rewrites it).
    instance = values.get(INSTANCE)
    if instance:
        return str(instance)
    try:
        return f"{path.parent.name}@{path.stat().st_mtime_ns}"
    except OSError:
        return f"{path.parent.name}@gone"


def _forget_removed(root: Path, absorbed: dict[str, str]) -> None:
    """Drop absorbed instances whose stats file is gone: nobody can read them twice any more."""
    for instance, name in list(absorbed.items()):
        path = root / name / STATS_FILE
        values = _read(path)
        if values is None or _instance(path, values) != instance:
            del absorbed[instance]


def _read_retired(root: Path) -> dict[str, Any]:
    retired = _read(root / RETIRED_FILE) or {}
    return {"counts": retired.get("counts", empty_counts()),
            "absorbed": retired.get("absorbed", {})}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def _replace(path: Path, values: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(values, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def _root_lock(root: Path, *, shared: bool) -> Iterator[bool]:
    """flock on the root's lock file; yields False when it cannot be opened (e.g. read-only)."""
    try:
        fd = os.open(root / _ROOT_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)
