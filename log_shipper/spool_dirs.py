"""Which spool directory a process uses, and which ones other processes left behind.

A spool directory belongs to one process (`Spool` locks it). Several worker processes of one
service (gunicorn, uvicorn `--workers`) share a configuration, so each gets its own directory
under a common root: `<root>/pid-<pid>`. A worker killed and replaced by one with a new pid
leaves its directory behind; the next process to start adopts every such orphan whose lock is
free and replays it (`Shipper(adopt_dirs=...)`), so no record is stranded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mlmon.log_shipper.spool import Spool
from mlmon.log_shipper.stats_files import retire

log = logging.getLogger(__name__)

PROCESS_PREFIX = "pid-"
_CHOICES = 3  # per-process names tried when one is (briefly) held by an adopter


def own_dir_choices(root: Path, *, use_root: bool, pid: int | None = None) -> list[Path]:
    """Directories this process may spool to, first choice first.

    `use_root` (a spool_dir given explicitly): the root itself, as before there were several
    processes, then a per-process subdirectory when another process holds the root."""
    pid = os.getpid() if pid is None else pid
    per_process = [root / f"{PROCESS_PREFIX}{pid}"]
    per_process += [root / f"{PROCESS_PREFIX}{pid}.{n}" for n in range(1, _CHOICES)]
    return ([root] if use_root else []) + per_process


def orphan_candidates(root: Path, own: Path) -> list[Path]:
    """The root and its per-process subdirectories, except `own`: the ones that may be orphans.

    Whether one is (its lock is free) is decided by taking the lock, not here."""
    found = [root] if root != own and root.is_dir() else []
    try:
        children = sorted(p for p in root.iterdir()
                          if p.name.startswith(PROCESS_PREFIX) and p.is_dir())
    except OSError:
        children = []
    return found + [p for p in children if p != own]


def discard_orphan(orphan: Spool) -> bool:
    """Delete a drained orphan's directory, its final counts first folded into the root's
    retired stats (a `pid-` directory only: the root itself is never deleted).

    False when the directory stays (records pending, other files, the counts not folded)."""
    if not orphan and orphan.directory.name.startswith(PROCESS_PREFIX):
        try:
            retire(orphan.directory)
        except OSError as exc:  # kept, with its stats file: still counted, retired next time
            log.warning("mlmon shipper: cannot retire the stats of %s: %s", orphan.directory, exc)
    return orphan.discard()
