"""Worker files in a multi-process directory: names, liveness locks, reading, compaction.

Files of one profile (`sha`: its `Layout.file_key`, or a challenger comparison's key) in the
directory:

    mlmon_<sha>_<pid>_<token>.db   one per worker process, flock'ed (LOCK_EX) for its lifetime
    mlmon_<sha>_compacted.db       the counters of every dead worker, summed, then a JSON trailer
                                   naming the worker files it absorbed
    mlmon_<sha>_<pid>.db           written by mlmon versions without locks: read, never compacted
    mlmon.lock, mlmon.turnstile    the directory lock (below)

Liveness is the worker's flock, not its pid: the kernel releases it on any death (SIGKILL
included), it is immune to pid reuse (the random token makes every file name unique anyway) and
it works for a process in another container sharing the volume, provided the directory is on a
local filesystem.

Counters never go backwards and every scrape sees consistent totals: compaction and the
creation of a worker file hold the directory lock exclusively, readers hold it shared. A
compactor killed after replacing the compacted file but before unlinking what it absorbed
leaves files that readers skip (they are named in the trailer) and the next compaction unlinks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import mmap
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from mlmon.exporter.layout import (
    NO_FILE_DESCRIPTORS,
    NO_SPACE,
    NOT_WRITABLE,
    OTHER_ERROR,
)

DOUBLE = 8
LOCK_NAME = "mlmon.lock"
TURNSTILE_NAME = "mlmon.turnstile"
COMPACTED = "compacted"
_WORKER = re.compile(r"(?P<pid>\d+)_(?P<token>[0-9a-f]+)")
_LEGACY = re.compile(r"\d+")

# Directory-lock descriptors this process holds right now. A child forked while a thread held
# one inherits the descriptor, and with it the lock (flock belongs to the open file description):
# it must close them before taking the lock itself, or it would wait on itself.
_HELD: set[int] = set()


def data_path(directory: str, sha: str, pid: int, token: str) -> str:
    return os.path.join(directory, f"mlmon_{sha}_{pid}_{token}.db")


def compacted_path(directory: str, sha: str) -> str:
    return os.path.join(directory, f"mlmon_{sha}_{COMPACTED}.db")


def _tmp_path(directory: str, sha: str) -> str:
    # hidden: never matched by the `mlmon_*` globs of readers
    return os.path.join(directory, f".mlmon_{sha}_{COMPACTED}.{os.getpid()}.tmp")


class FileSlots(Protocol):
    """What a worker file holds: `size` doubles, some of them gauges (a monitor's `Layout`)."""

    size: int

    def clear_gauges(self, values: Any) -> None:
        """Reset the gauges in `values` (a dead worker's, or a fresh file's)."""


class DataFiles(NamedTuple):
    """One profile's `.db` files by kind (base names)."""

    workers: list[str]
    legacy: list[str]
    compacted: bool


def list_files(directory: str, sha: str) -> DataFiles:
    prefix = f"mlmon_{sha}_"
    workers, legacy, compacted = [], [], False
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return DataFiles([], [], False)
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".db")):
            continue
        rest = name[len(prefix):-len(".db")]
        if rest == COMPACTED:
            compacted = True
        elif _WORKER.fullmatch(rest):
            workers.append(name)
        elif _LEGACY.fullmatch(rest):
            legacy.append(name)
    return DataFiles(workers, legacy, compacted)


def worker_pid(name: str) -> int | None:
    """The pid in a worker file's base name, or None for other files."""
    parts = name.removesuffix(".db").rsplit("_", 2)
    if len(parts) == 3 and _WORKER.fullmatch(f"{parts[1]}_{parts[2]}"):
        return int(parts[1])
    return None


@contextlib.contextmanager
def directory_lock(directory: str, exclusive: bool) -> Iterator[bool]:
    """Hold the directory lock; yields False when the lock files cannot be opened at all (a
    read-only directory that never held a writer: there is nothing to be consistent with).

    flock lets new shared holders in while an exclusive one waits, so frequent scrapes could
    starve a starting worker. A turnstile in front gives writers the way: a writer holds it
    while it waits for and holds the lock; a reader passes through it (shared) before taking
    the lock, so readers arriving after a waiting writer queue behind it."""
    with _flocked(os.path.join(directory, TURNSTILE_NAME), exclusive) as turn:
        if exclusive:
            with _flocked(os.path.join(directory, LOCK_NAME), True) as held:
                yield held and turn
            return
    with _flocked(os.path.join(directory, LOCK_NAME), False) as held:
        yield held


@contextlib.contextmanager
def _flocked(path: str, exclusive: bool) -> Iterator[bool]:
    fd = -1
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o666)
            break
        except OSError:
            continue
    if fd < 0:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        _HELD.add(fd)
        try:
            yield True
        finally:
            _HELD.discard(fd)
    finally:
        os.close(fd)  # releases the lock


def close_inherited_locks() -> None:
    """In a forked child: drop the parent's directory-lock descriptors (not LOCK_UN, which
    would release the parent's lock)."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


class WorkerFile(NamedTuple):
    lock_fd: int     # held open, flock'ed, for the worker's lifetime
    path: str
    mm: mmap.mmap


def create_worker_file(directory: str, sha: str, slots: FileSlots) -> WorkerFile:
    """A new zeroed file for this process, locked before any other process can see it.

    The caller holds the directory lock exclusively, so no compactor can find the file between
    its creation and its flock. The lock is taken through a descriptor of its own: mmap keeps
    a duplicate of the descriptor it maps, which a forked child cannot close while the hot
    path's views exist; a lock held through that one would outlive the worker in its children.
    Raises OSError when the file cannot be made (`error_reason` says why).
    """
    size = max(slots.size, 1) * DOUBLE
    path = data_path(directory, sha, os.getpid(), secrets.token_hex(6))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    lock_fd = -1
    try:
        lock_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a scrape's probe may hold it for a moment
        _reserve(fd, size)
        mm = mmap.mmap(fd, size)
    except BaseException:
        if lock_fd >= 0:
            os.close(lock_fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)  # the mmap keeps its own duplicate
    with memoryview(mm) as raw, raw.cast("d") as values:
        zero_gauges(values, slots)
    return WorkerFile(lock_fd, path, mm)


def _reserve(fd: int, size: int) -> None:
    """Size the file with its blocks allocated. A file only truncated to size has none: on a
    full filesystem the first count written through the mapping would kill the process with
    SIGBUS, where this raises ENOSPC while the caller can still do without the file."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # a filesystem without fallocate: write the zeros (a short write raises ENOSPC next)
        done = 0
        while done < size:
            done += os.pwrite(fd, bytes(min(size - done, 1 << 20)), done)


# errno -> the reason a worker file could not be opened (mlmon_worker_file_errors_total)
_ERROR_REASONS = {
    errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE,
    errno.EROFS: NOT_WRITABLE, errno.EACCES: NOT_WRITABLE, errno.EPERM: NOT_WRITABLE,
    errno.EMFILE: NO_FILE_DESCRIPTORS, errno.ENFILE: NO_FILE_DESCRIPTORS,
}


def error_reason(exc: BaseException) -> str:
    """Why opening a worker file failed, as one of layout.WORKER_FILE_ERRORS."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERROR_REASONS.get(exc.errno, OTHER_ERROR)
    return OTHER_ERROR


def zero_gauges(values: Any, slots: FileSlots) -> None:
    """Clear the slots that are gauges, not counters."""
    slots.clear_gauges(values)


def read_compacted(directory: str, sha: str, size: int) -> tuple[np.ndarray | None, list[str]]:
    """The compacted counters (None when absent or unreadable) and the files they absorbed."""
    try:
        with open(compacted_path(directory, sha), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None, []
    if len(raw) < size * DOUBLE:
        return None, []
    try:
        trailer = json.loads(raw[size * DOUBLE:].decode("utf-8") or "{}")
        absorbed = [str(n) for n in trailer.get("absorbed", [])]
    except (ValueError, AttributeError):
        absorbed = []
    return np.frombuffer(raw, dtype=np.float64, count=size).copy(), absorbed


def _read_data(path: str, size: int) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.float64, count=size)
    except (OSError, ValueError):
        return None
    return data if data.size == size else None


def _read_held(fd: int, size: int) -> np.ndarray:
    """The counters of a worker file through a descriptor the caller holds; raises OSError
    when they cannot all be read (a size other than the layout's included: never guess)."""
    raw = os.pread(fd, size * DOUBLE, 0)
    if len(raw) != size * DOUBLE:
        raise OSError(errno.EIO, f"read {len(raw)} of {size * DOUBLE} bytes")
    counters: np.ndarray = np.frombuffer(raw, dtype=np.float64).copy()
    return counters


def read_profile(directory: str, sha: str, size: int) -> list[np.ndarray]:
    """Copies of one profile's arrays: the compacted file, then every file it did not absorb.
    Call with the directory lock held (shared) for totals consistent with compaction."""
    files = list_files(directory, sha)
    out = []
    absorbed: set[str] = set()
    if files.compacted:
        compacted, names = read_compacted(directory, sha, size)
        if compacted is not None:
            out.append(compacted)
            absorbed = set(names)
    for name in files.workers + files.legacy:
        if name not in absorbed:
            data = _read_data(os.path.join(directory, name), size)
            if data is not None:
                out.append(data)
    return out


def read_totals(directory: str, shas: Sequence[str], slots: FileSlots) -> list[np.ndarray]:
    """Every array of these profiles. When a worker file's lock is free (its owner is gone)
    and the directory is writable, compact first: after any scrape the directory holds the
    live workers' files and one compacted file per profile (plus files of older versions)."""
    if os.access(directory, os.W_OK) and any(_owner_gone(directory, sha) for sha in shas):
        with directory_lock(directory, exclusive=True):
            for sha in shas:
                compact_held(directory, sha, slots)
    with directory_lock(directory, exclusive=False):
        return [a for sha in shas for a in read_profile(directory, sha, slots.size)]


def _owner_gone(directory: str, sha: str) -> bool:
    """Whether some worker file of `sha` has a free lock (a probe: not under the directory
    lock, so the compaction checks again)."""
    for name in list_files(directory, sha).workers:
        fd = _take_if_dead(os.path.join(directory, name))
        if fd is not None:
            os.close(fd)
            return True
    return False


def _take_if_dead(path: str) -> int | None:
    """An fd holding the file's lock when its owner is gone, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def compact_held(directory: str, sha: str, slots: FileSlots) -> list[str]:
    """Merge the files of dead workers of one profile into its compacted file and remove them;
    returns the base names absorbed. The caller holds the directory lock exclusively.

    Never raises: a compaction that cannot write (full disk, read-only) leaves every file as it
    was, and readers keep summing them."""
    try:
        return _compact(directory, sha, slots)
    except OSError:
        return []


def _compact(directory: str, sha: str, slots: FileSlots) -> list[str]:
    size = slots.size
    files = list_files(directory, sha)
    total, absorbed = (read_compacted(directory, sha, size) if files.compacted else (None, []))
    if files.compacted and total is None:
        return []  # unreadable (truncated by hand?): replacing it would lose its counts
    for stale in glob.glob(os.path.join(glob.escape(directory), f".mlmon_{sha}_{COMPACTED}.*.tmp")):
        with contextlib.suppress(OSError):  # a compactor died while writing (we hold the lock)
            os.unlink(stale)
    # a previous compactor died before unlinking what it had absorbed: finish its work
    leftover = []
    for name in absorbed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
        if os.path.exists(os.path.join(directory, name)):
            leftover.append(name)
    dead: list[tuple[str, int, np.ndarray]] = []
    try:
        for name in files.workers:
            if name in absorbed:
                continue
            path = os.path.join(directory, name)
            fd = _take_if_dead(path)
            if fd is None:
                continue
            try:
                never_sized = os.fstat(fd).st_size == 0
                data = None if never_sized else _read_held(fd, size)
            except OSError:
                # a failed read (EIO) or a size it cannot have says nothing about its counts:
                # keep it out of this compaction (readers sum it as a live file meanwhile, so
                # it is counted once) and leave it to a later one. Reading through the fd we
                # hold means no second open, so no EMFILE here.
                os.close(fd)
                continue
            if data is None:
                # its creator sizes it before counting anything, and died before that
                with contextlib.suppress(OSError):
                    os.unlink(path)
                os.close(fd)
                continue
            dead.append((name, fd, data))
        if not dead and leftover == absorbed:
            return []
        if total is None:
            total = np.zeros(size)
        for _, _, data in dead:
            total += data
        zero_gauges(total, slots)
        _replace_compacted(directory, sha, total, [n for n, _, _ in dead] + leftover)
        for name, _, _ in dead:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
    finally:
        for _, fd, _ in dead:
            os.close(fd)
    return [n for n, _, _ in dead]


def _replace_compacted(directory: str, sha: str, total: np.ndarray, absorbed: list[str]) -> None:
    """Write the compacted file whole and switch to it atomically (readers see old or new)."""
    tmp = _tmp_path(directory, sha)
    try:
        with open(tmp, "wb") as fh:
            fh.write(total.astype(np.float64).tobytes())
            fh.write(json.dumps({"absorbed": sorted(absorbed)}).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, compacted_path(directory, sha))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
