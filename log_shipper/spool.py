"""Append-only disk spool: records wait here while Elasticsearch is down or behind.

Layout: a directory of segment files `00000000000000000001.seg`, ... and `cursor.json`, the
position up to which records were delivered. Each record is one line
`<crc32 hex> <length> <payload>\n`; a line whose checksum or length does not match (a write torn
by a crash or power loss) is skipped and counted, never replayed as garbage. A process always
writes to a fresh segment, so a torn tail left by a previous process is never glued to new data.

Durability (`fsync`):
- `always`: every `append` is fsynced before it returns: survives power loss.
- `interval`: fsync at most every `fsync_interval_s` (and on `sync()`/`close()`): power loss
  loses up to that interval.
- `never`: the OS writes back when it likes (Linux: ~30 s).
Every policy survives a process crash (SIGKILL): data is handed to the kernel with `os.write`,
never held in a user-space buffer.

`sync_on_append=False` leaves every fsync to the owner (`sync()` / `tick()`), whatever the
policy: appends then cost one `os.write`, and the shipper's worker fsyncs a group of them.

Threads: appends may come from any thread (the shipper's spool writer, or the caller itself
under `fsync="always"`) while one reader (the shipper's sender) peeks and acknowledges; a lock
guards the bookkeeping, and reads of segment bytes happen outside it (written bytes never
change). A write that fails (ENOSPC, EIO) raises `OSError` after cutting what part of it reached
the file, and the next append opens a new segment: the spool never holds half a record between
whole ones. A cursor that cannot be saved is logged and counted (`cursor_errors`), never raised:
it only means re-sending delivered records after a restart. A directory
belongs to one process at a time: the spool holds an exclusive `flock` on `<dir>/lock` from
construction to `close()`, and a second spool on the same directory (another worker process,
or the same process twice) raises `SpoolLockedError`, because two writers would delete each
other's segments when they acknowledge. The lock dies with its process, so a directory left by
a killed process is free to be opened again (and replayed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlmon.log_shipper.chunking import fits

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "interval", "never")
_SUFFIX = ".seg"
_CURSOR = "cursor.json"
_LOCK = "lock"


class SpoolLockedError(RuntimeError):
    """The spool directory is held by another process (or another `Spool` of this one)."""


@dataclass(frozen=True, order=True)
class Position:
    """A byte offset inside a segment."""

    segment: int
    offset: int


@dataclass
class SpoolBatch:
    """Records read from the head of the spool, and where the next read starts."""

    records: list[bytes] = field(default_factory=list)
    end: Position = Position(0, 0)
    nbytes: int = 0


def encode_line(payload: bytes) -> bytes:
    """`payload` framed with its checksum and length; the payload must not contain a newline."""
    return b"%08x %d " % (zlib.crc32(payload), len(payload)) + payload + b"\n"


def decode_line(line: bytes) -> bytes | None:
    """The payload of a framed line, or None when the line is torn or corrupt."""
    if not line.endswith(b"\n"):
        return None
    head = line.split(b" ", 2)
    if len(head) != 3:
        return None
    crc, length, payload = head[0], head[1], head[2][:-1]
    try:
        if int(length) != len(payload) or int(crc, 16) != zlib.crc32(payload):
            return None
    except ValueError:
        return None
    return payload


class Spool:
    """A bounded, append-only, crash-safe queue of byte records on disk.

    >>> spool = Spool("/var/lib/mlmon/spool", max_bytes=1 << 30, fsync="always")
    >>> spool.append([b'{"a": 1}'])          # number of records written
    >>> batch = spool.peek(500, 5 << 20)      # oldest records first
    >>> spool.ack(batch.end)                  # delivered: never read again
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: str = "interval",
        fsync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sync_on_append: bool = True,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self._lock_fd: int | None = None
        for attempt in range(3):
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                self._lock_fd = lock_directory(self.directory)  # before reading any state
                break
            except FileNotFoundError:  # an adopter removed it (drained) just now: make it anew
                if attempt == 2:
                    raise
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock
        self._sync_on_append = sync_on_append
        self._lock = threading.RLock()
        self.corrupt = 0  # torn or corrupt lines skipped
        self.cursor_errors = 0  # cursor saves that failed (disk full): re-sends, not losses
        self._cursor_failing = False
        self._sizes: dict[int, int] = {
            int(p.stem): p.stat().st_size for p in self.directory.glob("*" + _SUFFIX)
            if p.stem.isdigit()
        }
        self._cursor = self._load_cursor()
        self._fd: int | None = None  # the segment this process appends to
        self._active = max(self._sizes, default=0)  # never appended to: see module docstring
        self._dirty = False
        self._last_sync = clock()

    # ---- state ---------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet acknowledged."""
        with self._lock:
            cursor = self._cursor
            total = sum(size for seg, size in self._sizes.items() if seg >= cursor.segment)
            # The cursor may point at the end of a segment already deleted: nothing to subtract.
            return total - (cursor.offset if cursor.segment in self._sizes else 0)

    def __bool__(self) -> bool:
        """True while records wait to be delivered."""
        return self.pending_bytes > 0

    # ---- writing -------------------------------------------------------------------------

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write records in order; return how many fit under `max_bytes` (the rest are not)."""
        lines = [encode_line(p) for p in payloads]
        with self._lock:
            return self._append(lines)

    def _append(self, lines: list[bytes]) -> int:
        room = self.max_bytes - self.pending_bytes
        count, size = 0, 0
        for line in lines:
            if size + len(line) > room:
                break
            count, size = count + 1, size + len(line)
        if not count:
            return 0
        fd = self._writable_fd()
        data = b"".join(lines[:count])
        view = memoryview(data)
        try:
            while view:  # os.write may write less than asked
                written = os.write(fd, view)
                view = view[written:]
        except OSError:
            self._undo_partial_write()
            raise
        self._sizes[self._active] += len(data)
        self._dirty = True
        if not self._sync_on_append:
            return count
        if self.fsync == "always":
            os.fsync(fd)
            self._dirty = False
        else:
            self.tick()
        return count

    def tick(self) -> None:
        """Fsync under the `interval` policy when the interval has passed; call now and then."""
        if self._dirty and (self.fsync == "always" or (
                self.fsync == "interval"
                and self._clock() - self._last_sync >= self.fsync_interval_s)):
            self.sync()

    def sync(self) -> None:
        """Force written records to stable storage (not for `never`)."""
        with self._lock:
            # A duplicate of the descriptor, synced outside the lock: appends from other threads
            # (callers under fsync="always") do not wait for the disk, and a segment closed
            # meanwhile cannot turn our descriptor into another file's.
            fd = None
            if self._fd is not None and self._dirty and self.fsync != "never":
                fd = os.dup(self._fd)
            self._dirty = False
            self._last_sync = self._clock()
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError:
            with self._lock:
                self._dirty = True  # try again next time; the caller counts the failure
            raise
        finally:
            os.close(fd)

    def _writable_fd(self) -> int:
        if self._fd is not None and self._sizes[self._active] >= self.segment_bytes:
            self._close_fd()
        if self._fd is None:
            self._active += 1
            path = self._segment_path(self._active)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
            self._sizes[self._active] = 0
            if self.fsync == "always":  # the new file's directory entry must survive too
                self._fsync_directory()
        return self._fd

    def _undo_partial_write(self) -> None:
        """After a failed write (ENOSPC, EIO): cut what part of it reached the file, and start
        the next append in a new segment, so no torn line ever sits between whole ones."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._sizes[self._active])  # type: ignore[arg-type]
        with contextlib.suppress(OSError):
            os.close(self._fd)  # type: ignore[arg-type]
        self._fd = None
        self._dirty = False

    def _close_fd(self) -> None:
        with self._lock:
            if self._fd is not None:
                self.sync()
                os.close(self._fd)
                self._fd = None

    # ---- reading -------------------------------------------------------------------------

    def peek(self, max_records: int, max_bytes: int) -> SpoolBatch:
        """The oldest unacknowledged records (at least one if any); does not consume them."""
        with self._lock:  # what is written up to now; the bytes themselves never change
            sizes, cursor = dict(self._sizes), self._cursor
        batch = SpoolBatch(end=cursor)
        position = cursor
        while len(batch.records) < max_records:
            segment = self._next_segment(position, sizes)
            if segment is None:
                break
            if segment != position.segment:
                position = Position(segment, 0)
            position, done = self._read_segment(position, sizes[position.segment], batch,
                                                max_records, max_bytes)
            batch.end = position
            if not done:
                break
        return batch

    def _next_segment(self, position: Position, sizes: dict[int, int]) -> int | None:
        """The segment holding the next record at or after `position`."""
        for seg in sorted(s for s in sizes if s >= position.segment):
            start = position.offset if seg == position.segment else 0
            if sizes[seg] > start:
                return seg
        return None

    def _read_segment(self, position: Position, size: int, batch: SpoolBatch, max_records: int,
                      max_bytes: int) -> tuple[Position, bool]:
        """Read records from one segment (its first `size` bytes) into `batch`; True when the
        segment was finished."""
        offset = position.offset
        with open(self._segment_path(position.segment), "rb") as f:
            f.seek(offset)
            while offset < size:
                line = f.readline(size - offset)
                if not line:
                    break
                if not line.endswith(b"\n") and position.segment == self._active and self._fd:
                    break  # cannot happen (whole lines are written), but never read half a line
                payload = decode_line(line)
                if payload is not None and not fits(len(batch.records), batch.nbytes,
                                                    len(payload), max_records, max_bytes):
                    return Position(position.segment, offset), False  # starts the next batch
                offset += len(line)
                if payload is None:
                    self.corrupt += 1
                    log.warning("spool %s: skipped a torn or corrupt record at %d:%d",
                                self.directory, position.segment, offset - len(line))
                    continue
                batch.records.append(payload)
                batch.nbytes += len(payload)
        return Position(position.segment, offset), True

    def ack(self, end: Position) -> None:
        """Everything before `end` was delivered: drop finished segments and move the cursor."""
        finished_segments = []
        with self._lock:
            if end <= self._cursor:
                return
            self._cursor = end
            for seg in sorted(self._sizes):
                finished = seg < end.segment or (seg == end.segment
                                                 and end.offset >= self._sizes[seg])
                if not finished or (seg == self._active and self._fd is not None):
                    continue
                finished_segments.append(seg)
                del self._sizes[seg]
        # Outside the lock: appends need not wait for the file system. Only the reader acks.
        # Neither failure loses a record: a segment left behind or a stale cursor only means
        # re-sending delivered records after a restart, answered 409 thanks to op_type create.
        try:
            for seg in finished_segments:
                self._segment_path(seg).unlink(missing_ok=True)
            self._save_cursor(end)
        except OSError as exc:
            if not self._cursor_failing:  # once per run of failures, not once per batch
                log.warning("spool %s: cannot save the cursor (%s); delivered records may be "
                            "re-sent after a restart", self.directory, exc)
            self.cursor_errors += 1
            self._cursor_failing = True
        else:
            self._cursor_failing = False

    # ---- cursor --------------------------------------------------------------------------

    def _load_cursor(self) -> Position:
        oldest = Position(min(self._sizes, default=0), 0)
        try:
            data = json.loads((self.directory / _CURSOR).read_text())
            cursor = Position(int(data["segment"]), int(data["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return oldest  # lost cursor: replay everything; `create` makes re-sends harmless
        if cursor.segment not in self._sizes:
            return oldest  # its segment was finished and deleted
        return cursor

    def _save_cursor(self, cursor: Position) -> None:
        # Not fsynced: a cursor lost at power failure only means re-sending delivered records,
        # which Elasticsearch answers with 409 (already exists) because of op_type create.
        tmp = self.directory / (_CURSOR + ".tmp")
        tmp.write_text(json.dumps({"segment": cursor.segment, "offset": cursor.offset}))
        os.replace(tmp, self.directory / _CURSOR)

    def _segment_path(self, seg: int) -> Path:
        return self.directory / f"{seg:020d}{_SUFFIX}"

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies of the descriptors without syncing
        or locking (the parent still owns the directory, its lock and its segment)."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None

    def close(self) -> None:
        """Sync and close the segment being written, and release the directory."""
        self._close_fd()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def discard(self) -> bool:
        """Delete a drained spool's files and directory (an adopted orphan's) and release it.

        False, with the directory left in place (and released), when records are pending or
        files other than the spool's own are there (e.g. a dead-letter file for a person)."""
        pending = bool(self)
        self._close_fd()
        if not pending:
            for seg in list(self._sizes):
                self._segment_path(seg).unlink(missing_ok=True)
            self._sizes.clear()
            (self.directory / _CURSOR).unlink(missing_ok=True)
        others = [p for p in self.directory.iterdir() if p.name != _LOCK]
        if pending or others:
            self.close()
            return False
        # Rename first, holding the lock: a process opening the old name now gets a fresh
        # directory, never this one while its lock file is being removed.
        tomb = self.directory.with_name(f".{self.directory.name}.gone-{os.getpid()}")
        os.rename(self.directory, tomb)
        (tomb / _LOCK).unlink(missing_ok=True)
        self.close()
        with contextlib.suppress(OSError):
            tomb.rmdir()
        return True


def lock_directory(directory: Path) -> int:
    """An open descriptor holding an exclusive flock on `<directory>/lock`, with our pid in it.

    Raises `SpoolLockedError` (naming the holder's pid) when another descriptor holds it."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise SpoolLockedError(
            f"spool directory {directory} is in use (held by pid {holder}); "
            "give every process its own spool directory") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    return fd
