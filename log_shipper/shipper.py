"""`Shipper`: records into Elasticsearch through a write-ahead log on disk, none lost silently.

Every record takes one path: memory -> spool (disk) -> Elasticsearch. Two supervised roles
(`mlmon.log_shipper.supervisor`), each on its own thread, so neither can stall the other:

- the *spool writer* moves accepted records from the in-memory queue to the spool: `prepare`
  (optional), redaction, JSON encoding, one `os.write` per group, fsync per policy. It never
  touches the network, so a hung or slow Elasticsearch cannot delay spooling.
- the *sender* (`mlmon.log_shipper.delivery`) reads the spool oldest first (orphans before its own),
  sends batches (`chunking.BatchLimits`), and acknowledges a batch only when each document was
  indexed, already present (409) or dead-lettered. After a failure it backs off exponentially
  but probes Elasticsearch with a cheap request every `PROBE_EVERY_S`, so delivery resumes
  within about a second of the cluster coming back, whatever the backoff had grown to.

`fsync` is the durability policy of that one path:
- `"interval"` (default) / `"never"`: `ship()` appends to a bounded deque and returns: constant
  time, no lock, no I/O, never raises. The writer spools within `_WRITER_PERIOD_S`; the spool
  is fsynced every `fsync_interval_s` (`never`: when the OS likes).
- `"always"`: `ship()` itself runs the writer's step for its record (prepare, redact, encode,
  append): when it returns True the record is in the kernel's page cache, which survives a
  SIGKILL; the writer fsyncs what callers appended once per turn (group commit). When the record
  cannot be spooled (disk full, spool over its bound) `ship()` returns False and counts why.

Whatever cannot be made durable is counted in `stats.dropped[reason]` and logged (rate-limited):
`queue_full`, `ship_error` and `closed` (ship() returned False, except for a ship() racing
close() whose record came after the writer's exit), `prepare_error`, `unserializable`,
`spool_full`, `disk_full` (ENOSPC, EDQUOT, EFBIG), `disk_error` (EIO and other write errors),
`spool_error` (an unexpected error in the spool code: the role is restarted),
`dead_letter_error` (rejected by Elasticsearch and the dead-letter file could not be written).

Fork-safety: after `os.fork()` (gunicorn `--preload`) the child's shipper forgets the parent's
queue, files and threads, opens its own spool directory (`<root>/pid-<child pid>`, `root` being
the parent's directory or its parent when that is itself a `pid-` directory), starts its own
roles, and counts from zero (the parent still owes what it had accepted).

`adopt_dirs`: spool directories left by other processes (a worker killed and replaced by one
with a new pid). Each one whose lock is free is taken over at start-up and replayed before the
shipper's own spool; once drained, the dead process's final counts are folded into the root's
retired stats file (`stats_files.retire`) and the directory is deleted, unless it holds other
files (a dead-letter file). A directory taken over by a process with the same pid keeps its
counts: the new owner continues from them (`stats_files.carried_counts`).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import signal
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from elasticsearch import Elasticsearch

from mlmon.log_shipper.chunking import BatchLimits
from mlmon.log_shipper.deadletter import DeadLetter
from mlmon.log_shipper.delivery import SpoolSender, encode_spooled, probe
from mlmon.log_shipper.metrics import ShipperCollector, ShipperStats, snapshot
from mlmon.log_shipper.redact import Redactor
from mlmon.log_shipper.sender import BulkSender, Document
from mlmon.log_shipper.spool import FSYNC_POLICIES, Spool, SpoolLockedError
from mlmon.log_shipper.spool_dirs import PROCESS_PREFIX, discard_orphan, own_dir_choices
from mlmon.log_shipper.stats_files import INSTANCE, add_counts, carried_counts, write_stats_file
from mlmon.log_shipper.supervisor import SupervisedRole

log = logging.getLogger(__name__)

_WRITER_PERIOD_S = 0.05  # longest a record waits in memory before the writer spools it
_WRITE_GROUP = 1000      # records per spool append (one os.write)
_DROP_LOG_EVERY_S = 10.0
_STATS_FILE_EVERY_S = 1.0  # how stale the summed multi-process series may be
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stdlib_encode(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      allow_nan=False)


def _reused_encoder() -> Callable[[Any], str]:
    """`_stdlib_encode`, the same bytes, from one C encoder made once: `json.dumps` with
    options makes a `JSONEncoder` and a C encoder per call, a third of the cost of encoding a
    record. No circular-reference check (a record is a tree; a cycle ends as RecursionError,
    counted `unserializable` like any other failure). Falls back to `json.dumps` where the C
    encoder is missing or its signature differs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _stdlib_encode
    try:
        encoder = make(None, _not_serializable, json.encoder.encode_basestring, None, ":", ",",
                       True, False, False)
        if "".join(encoder({"b": [1.5, None], "a": "é"}, 0)) != '{"a":"é","b":[1.5,null]}':
            return _stdlib_encode
    except Exception:  # noqa: BLE001 - another Python's C encoder: the plain path
        return _stdlib_encode

    def encode(doc: Any) -> str:
        return "".join(encoder(doc, 0))

    return encode


_encode_text = _reused_encoder()


def encode_json(doc: Any) -> bytes:
    """A record's JSON, one line, UTF-8, keys sorted. A NaN or an infinity raises ValueError
    (allow_nan=False: such a record is refused and counted, never written as an invalid
    token or a silent null), as does anything JSON cannot hold (TypeError)."""
    return _encode_text(doc).encode("utf-8")


def write_error_reason(exc: OSError) -> str:
    """The drop reason for a spool write that failed with `exc`."""
    return "disk_full" if exc.errno in _DISK_FULL else "disk_error"


class Shipper:
    """Ships records to one Elasticsearch index or data stream through a disk spool.

    >>> shipper = Shipper(es="http://127.0.0.1:9200", index="mlmon-predictions-churn",
    ...                   spool_dir="/var/lib/mlmon/spool/churn", fsync="always")
    >>> shipper.ship(record)        # True when accepted; False when dropped (counted)
    >>> shipper.close(timeout=10)   # True when everything reached Elasticsearch
    """

    def __init__(
        self,
        *,
        es: Elasticsearch | str,
        index: str,
        spool_dir: str | os.PathLike[str],
        queue_size: int = 100_000,
        max_docs: int = 500,
        max_bytes: int = 5 << 20,
        max_age_s: float = 1.0,
        fsync: str = "interval",
        fsync_interval_s: float = 1.0,
        spool_max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        dead_letter_path: str | os.PathLike[str] | None = None,
        redactor: Redactor | None = None,
        max_retries: int = 2,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        request_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 10.0,
        on_durable: Callable[[Sequence[str]], None] | None = None,
        prepare: Callable[[Any], Mapping[str, Any]] | None = None,
        adopt_dirs: Iterable[str | os.PathLike[str]] = (),
        handle_signals: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self.index = index
        self.fsync = fsync
        self.stats = ShipperStats()
        self._es = es
        self._queue_size = queue_size
        self._wake_writer_at = max(1, min(_WRITE_GROUP, queue_size // 4))
        self._limits = BatchLimits(max_docs=max_docs, max_bytes=max_bytes, max_age_s=max_age_s)
        self._spool_options: dict[str, Any] = dict(
            max_bytes=spool_max_bytes, segment_bytes=segment_bytes, fsync=fsync,
            fsync_interval_s=fsync_interval_s, clock=clock, sync_on_append=False)
        self._spool = Spool(spool_dir, **self._spool_options)
        self._carry_counts()
        self._adopted = self._adopt(adopt_dirs)
        self._dead = DeadLetter(dead_letter_path or Path(spool_dir) / "dead-letter.ndjson",
                                fsync=fsync == "always", clock=wall_clock)
        self._sender_options: dict[str, Any] = dict(
            max_retries=max_retries, initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s, request_timeout_s=request_timeout_s, sleep=sleep)
        self._redactor = redactor or None
        self._prepare = prepare
        self._initial_backoff_s, self._max_backoff_s = initial_backoff_s, max_backoff_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._on_durable = on_durable
        self._clock, self._wall_clock = clock, wall_clock
        self._closed = False
        self._close_deadline: float | None = None
        self._start_process_state()
        _LIVE.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))
        if handle_signals:
            self._chain_sigterm()

    def _start_process_state(self) -> None:
        """Queue, clients, flags and the two roles of this process (again in a forked child)."""
        client = Elasticsearch(self._es) if isinstance(self._es, str) else self._es
        self._queue: deque[Any] = deque()
        self._appended: list[str] = []  # fsync="always": ids callers spooled, not yet synced
        self._append_lock = threading.Lock()
        self._sender_wake = threading.Event()
        self._delivery = SpoolSender(
            self, index=self.index, spool=self._spool, adopted=self._adopted,
            sender=BulkSender(client, self.index, **self._sender_options),
            answers=probe(client), dead=self._dead, stats=self.stats, limits=self._limits,
            initial_backoff_s=self._initial_backoff_s, max_backoff_s=self._max_backoff_s,
            wake=self._sender_wake, warn=self._warn_once_per_interval, clock=self._clock,
            wall_clock=self._wall_clock)
        # writer state
        self._dropped_logged = 0
        self._next_drop_log = 0.0
        self._next_fsync_log = 0.0
        self._next_stats_file = 0.0
        # shared flags (a bool store is atomic under the GIL)
        self._writer_busy = False
        self._flush_requested = False
        self._writer_wake = threading.Event()
        self._done = threading.Event()
        self.writer = SupervisedRole("spool writer", turn=self._writer_turn,
                                     finished=self._writer_finished, on_exit=self._writer_exit,
                                     clock=self._clock)
        self.sender = SupervisedRole("sender", turn=self._delivery.turn,
                                     finished=self._sender_finished, on_exit=self._sender_exit,
                                     clock=self._clock)
        if self._closed:  # a child forked from a closed shipper stays closed
            self._done.set()
            return
        self.writer.start(f"mlmon-spool-writer-{self.index}")
        self.sender.start(f"mlmon-sender-{self.index}")

    # ---- the prediction path ---------------------------------------------------------------

    def ship(self, record: Any) -> bool:
        """Accept one record (or, with `prepare`, the item it is built from); never raises.

        False when it was dropped (counted with its reason). Under `fsync="always"` the record
        is in the spool (page cache) when this returns True."""
        if self.fsync == "always":
            return self._ship_now(record)
        try:
            if self._closed:
                self.stats.drop("closed")
                return False
            queue = self._queue
            if len(queue) >= self._queue_size:
                self.stats.drop("queue_full")
                return False
            queue.append(record)
            if len(queue) == self._wake_writer_at:
                self._writer_wake.set()
            if self._closed and not self.writer.is_running():
                # close() came between the check above and the append, and the writer's last
                # turn may have missed this record: nobody else will take it now.
                self._drop_leftovers()
            return True
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            with contextlib.suppress(Exception):
                self.stats.drop("ship_error")
            return False

    def _ship_now(self, record: Any) -> bool:
        """fsync="always": the writer's step, in the caller's thread, for one record."""
        try:
            if self._closed:
                self.stats.drop("closed")
                return False
            doc = self._encode(record, self.stats.drop)
            if doc is None:
                return False
            with self._append_lock:  # the spool's order is the order ids are reported in
                try:
                    written = self._write([doc], self.stats.drop)
                except Exception:  # noqa: BLE001 - _write counted it (spool_error): once only
                    written = 0
                if written:
                    self._appended.append(doc.id)
            with self.stats._lock:
                self.stats.queued += 1
                self.stats.spooled += written
            if written and self.unsent() >= self._limits.max_docs:
                self._sender_wake.set()
            return written == 1
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            self.stats.drop("disk_error")
            return False

    # ---- state ---------------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Records in the in-memory queue."""
        return len(self._queue)

    def spool_bytes(self) -> int:
        """Bytes waiting in the disk spool (adopted orphans' included)."""
        return self._spool.pending_bytes + sum(s.pending_bytes for s in list(self._adopted))

    def collector(self) -> ShipperCollector:
        """The `mlmon_shipper_*` metric families of this shipper, roles included."""
        return ShipperCollector(self.stats, self.queue_depth, self.spool_bytes,
                                roles=self._role_states)

    def _role_states(self) -> list[tuple[str, bool, int]]:
        return [("spool_writer", self.writer.up, self.writer.restarts),
                ("sender", self.sender.up, self.sender.restarts)]

    def _backlog(self) -> bool:
        return bool(self._spool) or any(self._adopted)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every accepted record was delivered; False on timeout."""
        deadline = self._clock() + timeout
        self._flush_requested = True
        try:
            while self._clock() < deadline:
                self._writer_wake.set()
                self._sender_wake.set()
                if self._drained():
                    return True
                if self._done.is_set():
                    return False
                time.sleep(0.01)
            return self._drained()
        finally:
            self._flush_requested = False

    def close(self, timeout: float | None = None) -> bool:
        """Spool what is in memory, deliver for up to `timeout` seconds, stop both roles.

        Returns True when everything was delivered to Elasticsearch (nothing left in the spool).
        """
        timeout = self._shutdown_timeout_s if timeout is None else timeout
        if not self._closed:
            self._close_deadline = self._clock() + timeout
            self._closed = True
        self._writer_wake.set()
        self._sender_wake.set()
        # The sender stops at the deadline; the writer spools what remains, a moment more.
        if self.writer.join(timeout + 5.0):
            self._drop_leftovers()  # appended by a ship() racing close(), after the writer's exit
        self.sender.join(timeout + 5.0)
        return self._done.is_set() and not self._backlog() and not self._queue

    def _drained(self) -> bool:
        return (not self._writer_busy and not self._queue and not self._delivery.busy
                and not self._backlog() and self._delivery.head is None)

    # ---- the spool writer ------------------------------------------------------------------

    def _writer_finished(self) -> bool:
        return self._closed and not self._queue

    def _writer_turn(self) -> None:
        self._writer_wake.wait(_WRITER_PERIOD_S)
        self._writer_wake.clear()
        self._writer_busy = True
        try:
            self._spool_queue()
            self._sync()
            now = self._clock()
            self._log_drops(now)
            if now >= self._next_stats_file:
                self._next_stats_file = now + _STATS_FILE_EVERY_S
                self._write_stats_file()
        finally:
            self._writer_busy = False

    def _spool_queue(self) -> None:
        """Move every queued record to the spool (or count why it could not be)."""
        queue = self._queue
        while queue:
            items = _take(queue, _WRITE_GROUP)
            self.stats.queued += len(items)
            docs = [d for d in (self._encode(i, self.stats.worker_drop) for i in items) if d]
            written = self._write(docs, self.stats.worker_drop)
            self.stats.spooled += written
            self._durable_unless_always(docs[:written])
            if self.unsent() >= self._limits.max_docs:
                self._sender_wake.set()

    def _drop_leftovers(self) -> None:
        """Count as `closed` what is still queued once the writer has stopped for good."""
        while self._queue:
            items = _take(self._queue, _WRITE_GROUP)
            with self.stats._lock:  # ship() and close() may both drain: one count each
                self.stats.queued += len(items)
                self.stats.dropped["closed"] += len(items)

    def _writer_exit(self) -> None:
        try:
            self._spool_queue()  # a ship() racing close() may have appended after the last turn
            self._sync()
            self._log_drops(float("inf"))
        finally:
            self._sender_wake.set()

    def _carry_counts(self) -> None:
        """Continue the counts a dead owner of our spool directory left in its stats file, so the
        summed series never go back when a process restarts with the same pid."""
        self._stats_instance, self._carried = carried_counts(self._spool.directory)

    def _write_stats_file(self) -> None:
        """This process's counters for `SpoolRootCollector` (multi-worker services)."""
        values = snapshot(self.stats, self.queue_depth(), self.spool_bytes())
        add_counts(values, self._carried)
        values[INSTANCE] = self._stats_instance
        try:
            write_stats_file(self._spool.directory, values)
        except OSError as exc:
            self._warn_once_per_interval(f"cannot write the stats file: {exc}")

    def _encode(self, item: Any, drop: Callable[[str], None]) -> Document | None:
        """prepare -> redact -> JSON; None (counted with the reason) when that fails."""
        if self._prepare is not None:
            try:
                record = self._prepare(item)
            except Exception as exc:  # noqa: BLE001 - a bad item must not stop the role
                drop("prepare_error")
                self._warn_once_per_interval(f"prepare() failed: {exc!r}")
                return None
        else:
            record = item
        try:
            # Never changed in place (the redactor copies what it changes), so a dict is not
            # copied: the caller's record, or the one `prepare` built, stays as it was.
            doc = record if type(record) is dict else dict(record)
            if self._redactor is not None:
                doc = self._redactor(doc)
            event = doc.get("event")
            doc_id = (event.get("id") if type(event) is dict or isinstance(event, Mapping)
                      else None)
            if not doc_id:  # a record without a stable id gets one now, before any send
                doc_id = str(uuid.uuid4())
                doc = {**doc, "event": {**(event if isinstance(event, Mapping) else {}),
                                        "id": doc_id}}
            return Document(str(doc_id), encode_json(doc))
        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the role
            drop("unserializable")
            self._warn_once_per_interval(f"a record is not JSON-serializable: {exc}")
            return None

    def _write(self, docs: list[Document], drop: Callable[[str, int], None]) -> int:
        """Append `docs` to the spool; count those that could not be written, by reason."""
        if not docs:
            return 0
        try:
            written = self._spool.append([encode_spooled(d) for d in docs])
        except OSError as exc:
            drop(write_error_reason(exc), len(docs))
            self._warn_once_per_interval(f"cannot write to the spool: {exc}")
            return 0
        except Exception:
            drop("spool_error", len(docs))  # counted, then the supervisor logs and restarts
            raise
        if written < len(docs):
            drop("spool_full", len(docs) - written)
        return written

    def _sync(self) -> None:
        """Fsync per policy, then report the ids appended by callers (fsync="always")."""
        with self._append_lock:
            ids, self._appended = self._appended, []
        try:
            self._spool.tick()
        except OSError as exc:
            # The records stay in the spool and will be sent; what failed is the promise that
            # they survive a power loss. Counted and logged, and not reported as durable.
            self.stats.fsync_failures += 1
            self._warn_once_per_interval(f"fsync of the spool failed: {exc}")
            return
        self._durable(ids)

    def _durable_unless_always(self, docs: list[Document]) -> None:
        if self.fsync != "always":
            self._durable(d.id for d in docs)

    def _durable(self, ids: Iterable[str]) -> None:
        if self._on_durable is not None:
            ids = list(ids)
            if not ids:
                return
            try:
                self._on_durable(ids)
            except Exception:  # noqa: BLE001 - a caller's hook must not stop the role
                log.exception("mlmon shipper: on_durable hook failed")

    # ---- the sender ------------------------------------------------------------------------

    def _sender_finished(self) -> bool:
        if not self._closed or self.writer.is_running():
            return False
        if self._delivery.head is None and not self._backlog():
            return True
        assert self._close_deadline is not None
        return self._clock() >= self._close_deadline

    def _sender_exit(self) -> None:
        self._delivery.busy = False
        try:
            self._write_stats_file()  # the final counts, delivered ones included
            self._spool.close()
            for orphan in self._adopted:
                orphan.close()  # still an orphan: the next process adopts it
            self._dead.close()
        finally:
            self._done.set()

    # what the sender asks of its host (delivery.Host)
    def closing(self) -> bool:
        """True once close() was called."""
        return self._closed

    def flushing(self) -> bool:
        """True while flush() waits."""
        return self._flush_requested

    def close_deadline(self) -> float | None:
        """When close() stops delivering, on `clock`; None before close()."""
        return self._close_deadline

    def unsent(self) -> int:
        """Records written to the own spool and not yet acknowledged (an estimate)."""
        return self.stats.spooled - self._delivery.taken

    # ---- logging ---------------------------------------------------------------------------

    def _warn_once_per_interval(self, message: str) -> None:
        now = self._clock()
        if now >= self._next_fsync_log:
            self._next_fsync_log = now + _DROP_LOG_EVERY_S
            log.warning("mlmon shipper for %s: %s", self.index, message)

    def _log_drops(self, now: float) -> None:
        """Drops are never silent: one warning per interval with the count since the last."""
        if now < self._next_drop_log:
            return
        total = sum(self.stats.dropped.values())
        if total > self._dropped_logged:
            log.warning("mlmon shipper: dropped %d records for %s (by reason: %s)",
                        total - self._dropped_logged, self.index,
                        {k: v for k, v in self.stats.dropped.items() if v})
            self._dropped_logged = total
            self._next_drop_log = now + _DROP_LOG_EVERY_S

    # ---- start-up: orphans -----------------------------------------------------------------

    def _adopt(self, dirs: Iterable[str | os.PathLike[str]]) -> list[Spool]:
        """Take over every orphaned spool directory whose lock is free (start-up, caller's
        thread: opening a spool reads only file sizes and the cursor)."""
        adopted: list[Spool] = []
        for directory in dirs:
            try:
                orphan = Spool(directory, **self._spool_options)
            except SpoolLockedError:
                continue  # a live process owns it, or another one adopted it first
            except OSError as exc:
                log.warning("mlmon shipper: cannot adopt the spool %s: %s", directory, exc)
                continue
            if orphan:
                log.warning("mlmon shipper: adopting the orphaned spool %s (%d bytes to replay)",
                            orphan.directory, orphan.pending_bytes)
                adopted.append(orphan)
            else:
                discard_orphan(orphan)
        return adopted

    # ---- fork ------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A forked child: own spool directory, own threads and locks, counters from zero."""
        parent_dir = self._spool.directory
        for spool in (self._spool, *self._adopted):
            spool.forget_after_fork()
        self._adopted = []
        self._dead.forget_after_fork()
        self.stats.reset()
        if not self._closed:
            root = (parent_dir.parent if parent_dir.name.startswith(PROCESS_PREFIX)
                    else parent_dir)
            self._spool = self._own_spool(root)
            self._carry_counts()
        self._start_process_state()

    def _own_spool(self, root: Path) -> Spool:
        for own in own_dir_choices(root, use_root=False):
            try:
                return Spool(own, **self._spool_options)
            except SpoolLockedError:
                continue
        raise SpoolLockedError(f"no free per-process spool directory under {root}")

    # ---- process exit ----------------------------------------------------------------------

    def _chain_sigterm(self) -> None:
        """Close on SIGTERM, then hand the signal to whatever handled it before."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        previous = signal.getsignal(signal.SIGTERM)
        ref = weakref.ref(self)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            shipper = ref()
            if shipper is not None:
                shipper.close()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)


def _take(queue: deque[Any], limit: int) -> list[Any]:
    """Up to `limit` records from the head of `queue`; another thread may drain it meanwhile."""
    items = []
    with contextlib.suppress(IndexError):
        for _ in range(limit):
            items.append(queue.popleft())
    return items


_LIVE: weakref.WeakSet[Shipper] = weakref.WeakSet()


def _reinit_in_child() -> None:
    for shipper in list(_LIVE):
        try:
            shipper._after_fork_in_child()
        except Exception:  # noqa: BLE001 - never break the child's start-up
            # Fresh objects: the parent's may have been held by one of its threads at the fork.
            shipper.stats.reset()
            shipper._closed = True
            shipper._done = threading.Event()
            shipper._done.set()
            log.exception("mlmon shipper: cannot restart %s in the forked child; it drops "
                          "records as closed", shipper.index)


os.register_at_fork(after_in_child=_reinit_in_child)


def _close_at_exit(ref: weakref.ref[Shipper]) -> None:
    shipper = ref()
    if shipper is not None and not shipper._done.is_set():
        shipper.close()
