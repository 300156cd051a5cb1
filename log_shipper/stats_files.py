"""The shipper's counters on disk, so that sums over worker processes never go back.

Each process rewrites `shipper-stats.json` in its spool directory (`write_stats_file`). A
process that takes over a directory whose previous owner died (a container restarted with the
same pid on a persistent spool volume) gets the dead owner's final counts from
`carried_counts` and continues from them, instead of replacing the file with zeros.
Each stats file carries an `instance` id, kept across a take-over.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlmon.names as N

STATS_FILE = "shipper-stats.json"             # in each process's spool directory
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
    tmp = directory / (STATS_FILE + ".tmp")
    tmp.write_text(json.dumps(values, sort_keys=True))
    os.replace(tmp, directory / STATS_FILE)


def carried_counts(directory: Path) -> tuple[str, dict[str, Any]]:
    """(instance, counts) for the process that now holds `directory`'s spool lock.

    A stats file found there was left by a dead owner (we hold its lock): continue it."""
    values = _read(directory / STATS_FILE)
    counts = empty_counts()
    if values is None:
        return uuid.uuid4().hex, counts
    add_counts(counts, values)
    return str(values.get(INSTANCE) or uuid.uuid4().hex), counts


def read_root_counts(root: Path) -> dict[str, Any]:
    """The sum over `root`: its own stats file and its subdirectories'."""
    total = {**empty_counts(), **dict.fromkeys(_GAUGES, 0)}
    for path in [root / STATS_FILE, *sorted(root.glob(f"*/{STATS_FILE}"))]:
        values = _read(path)
        if values is None:
            continue  # absent, or being replaced right now: next scrape
        add_counts(total, values)
        for gauge in _GAUGES:
            total[gauge] += values.get(gauge, 0)
    return total


def _read(path: Path) -> dict[str, Any] | None:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None
