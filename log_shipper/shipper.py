"""`Shipper`: records into Elasticsearch without ever slowing the prediction path, none lost.

`ship(record)` appends to a bounded in-memory deque and returns: constant time, no lock, no I/O,
never raises. One background worker does the rest, in this order every turn:

1. drain the deque into the chunker (count, bytes, age) and dispatch ready chunks:
   - straight to Elasticsearch when the spool is empty and Elasticsearch is healthy;
   - to the disk spool otherwise (an outage, a backlog to keep in order, the deque filling up
     because Elasticsearch is slower than the traffic, or shutdown past its deadline);
2. replay the spool head, oldest first, when the backoff allows; a chunk is acknowledged only
   when each of its documents was indexed, already present (409) or dead-lettered.

Documents failing with 429 / 5xx / connection errors are retried (only those) with capped
exponential backoff; documents Elasticsearch rejects for their content go to the dead-letter
file with the reason. The deque overflows only when even the disk cannot keep up: those drops,
and drops because the spool is full, are counted (`mlmon_shipper_dropped_total`) and logged.

Durability (`durability`):
- `"memory"` (the default unless `fsync="always"`): as above. A SIGKILL loses what is still in
  the deque, in the chunker and in the bulk request in flight.
- `"spool_first"` (the default with `fsync="always"`): `ship()` redacts and serializes the
  record and appends it to the spool itself (one `os.write`, under the spool's lock): once it
  returns True the record is in the kernel's page cache, which survives a SIGKILL of the
  process. The worker fsyncs per policy (a group of records per fsync under `always`) and sends
  only from the spool. It costs more per call (measured in bench/bench_shipper.py), and the
  serialization happens in the caller's thread.

`adopt_dirs`: spool directories left by other processes (a worker killed and replaced by one
with a new pid). Each one whose lock is free is taken over at start-up and replayed before the
shipper's own spool; once drained its directory is removed.
"""

from __future__ import annotations

import atexit
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

from log_shipper.chunking import Chunker
from log_shipper.deadletter import DeadLetter
from log_shipper.metrics import ShipperStats
from log_shipper.redact import Redactor
from log_shipper.sender import BulkSender, Document, SendResult, backoff_delay
from log_shipper.spool import Spool, SpoolLockedError

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5  # longest sleep of an idle worker; bounds how late a lost wake-up is noticed
_DROP_LOG_EVERY_S = 10.0
DURABILITY_MODES = ("memory", "spool_first")


def encode_spooled(doc: Document) -> bytes:
    """Spool payload: `<id length>:<id><source>`, so replay needs no JSON parsing."""
    ident = doc.id.encode("utf-8")
    return b"%d:" % len(ident) + ident + doc.source


def decode_spooled(payload: bytes) -> Document:
    """The inverse of `encode_spooled`."""
    length, _, rest = payload.partition(b":")
    n = int(length)
    return Document(rest[:n].decode("utf-8"), rest[n:])


class Shipper:
    """Ships record dicts to one Elasticsearch index or data stream.

    >>> shipper = Shipper(es="http://127.0.0.1:9200", index="mlmon-predictions-churn",
    ...                   spool_dir="/var/lib/mlmon/spool/churn", fsync="always")
    >>> shipper.ship(record)        # True when queued
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
        durability: str | None = None,
        handle_signals: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        durability = durability or ("spool_first" if fsync == "always" else "memory")
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}, "
                             f"not {durability!r}")
        self.durability = durability
        self._spool_first = durability == "spool_first"
        client = Elasticsearch(es) if isinstance(es, str) else es
        self.index = index
        self.stats = ShipperStats()
        self._queue: deque[Any] = deque()
        self._queue_size = queue_size
        self._wake_at = max_docs  # a full chunk is waiting: worth waking the worker for
        # Past this depth the deque is drained to disk instead of waiting on Elasticsearch.
        self._high_water = max(max_docs, queue_size // 2)
        self._chunker: Chunker[Document] = Chunker(max_docs=max_docs, max_bytes=max_bytes,
                                                   max_age_s=max_age_s)
        self._max_docs, self._max_bytes = max_docs, max_bytes
        self._spool = Spool(spool_dir, max_bytes=spool_max_bytes, segment_bytes=segment_bytes,
                            fsync=fsync, fsync_interval_s=fsync_interval_s, clock=clock,
                            sync_on_append=not self._spool_first)
        self._adopted = self._adopt(adopt_dirs, spool_max_bytes, segment_bytes, fsync,
                                    fsync_interval_s, clock)
        self._dead = DeadLetter(dead_letter_path or Path(spool_dir) / "dead-letter.ndjson",
                                fsync=fsync == "always", clock=wall_clock)
        self._sender = BulkSender(client, index, max_retries=max_retries,
                                  initial_backoff_s=initial_backoff_s,
                                  max_backoff_s=max_backoff_s,
                                  request_timeout_s=request_timeout_s, sleep=sleep)
        self._redactor = redactor or None
        self._prepare = prepare
        self._initial_backoff_s, self._max_backoff_s = initial_backoff_s, max_backoff_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._on_durable = on_durable
        self._clock, self._wall_clock = clock, wall_clock
        # worker state (only the worker thread touches these)
        # spool batch being replayed: (its spool, end position, documents still to send)
        self._head: tuple[Spool, Any, list[Document]] | None = None
        self._recovering = bool(self._spool)  # sends from the spool count as replayed until
        self._max_age_s = max_age_s            # it is empty (spool_first mode)
        self._next_batch_at = 0.0
        # spool_first: ids appended by callers, reported durable by the worker after its fsync
        self._appended: list[str] = []
        self._appended_count = 0
        self._failures = 0
        self._next_probe = 0.0
        self._dropped_logged = 0
        self._next_drop_log = 0.0
        # shared flags (a bool store is atomic under the GIL)
        self._closed = False
        self._busy = False
        self._flush_requested = False
        self._close_deadline: float | None = None
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mlmon-shipper-{index}",
                                        daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))
        if handle_signals:
            self._chain_sigterm()

    # ---- the prediction path ---------------------------------------------------------------

    def ship(self, record: Any) -> bool:
        """Queue one record; never blocks, never raises. False when it was dropped (counted).

        In `spool_first` mode the record is in the spool (page cache) when this returns True."""
        if self._spool_first:
            return self._ship_to_spool(record)
        try:
            if self._closed:
                self.stats.drop("closed")
                return False
            queue = self._queue
            if len(queue) >= self._queue_size:
                self.stats.drop("queue_full")
                return False
            queue.append(record)
            if len(queue) == self._wake_at:
                self._wake.set()
            return True
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            return False

    def _ship_to_spool(self, record: Any) -> bool:
        try:
            if self._closed:
                self.stats.drop("closed")
                return False
            doc = self._encode(record, worker=False)
            if doc is None:
                return False
            if not self._spool.append([encode_spooled(doc)]):
                self.stats.drop("spool_full")
                return False
            with self.stats._lock:  # producers in several threads
                self.stats.queued += 1
                self.stats.spooled += 1
                self._appended.append(doc.id)
                self._appended_count += 1
                wake = self._appended_count % self._wake_at == 0
            if wake:
                self._wake.set()
            return True
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            self.stats.drop("spool_error")
            return False

    # ---- state ---------------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Records in the in-memory queue."""
        return len(self._queue)

    def spool_bytes(self) -> int:
        """Bytes waiting in the disk spool (adopted orphans' included)."""
        return self._spool.pending_bytes + sum(s.pending_bytes for s in list(self._adopted))

    def _backlog(self) -> bool:
        return bool(self._spool) or any(self._adopted)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued and spooled record was delivered; False on timeout."""
        deadline = self._clock() + timeout
        self._flush_requested = True
        try:
            while self._clock() < deadline:
                self._wake.set()
                if self._drained():
                    return True
                if self._done.is_set():
                    return False
                time.sleep(0.01)
            return self._drained()
        finally:
            self._flush_requested = False

    def close(self, timeout: float | None = None) -> bool:
        """Flush for up to `timeout` seconds, spool what is left, stop the worker.

        Returns True when everything was delivered to Elasticsearch (nothing left in the spool).
        """
        timeout = self._shutdown_timeout_s if timeout is None else timeout
        if not self._closed:
            self._closed = True
            self._close_deadline = self._clock() + timeout
        self._wake.set()
        # The worker stops at the deadline; spooling what remains takes a moment more.
        self._thread.join(timeout + 5.0)
        return self._done.is_set() and not self._backlog() and not self._queue

    def _drained(self) -> bool:
        return (not self._busy and not self._queue and not len(self._chunker)
                and not self._backlog() and self._head is None)

    # ---- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                self._busy = True
                now = self._clock()
                worked = self._drain(now)
                self._spool.tick()
                self._report_appended()
                worked = self._replay(now) or worked
                self._log_drops(now)
                self._busy = False
                if self._closed and self._finish_if_due(now):
                    return
                if not worked:
                    self._wake.wait(self._idle_wait(now))
        except Exception:  # noqa: BLE001 - log, keep the process alive; records stay spooled
            log.exception("mlmon shipper worker for %s stopped", self.index)
        finally:
            self._busy = False
            try:
                self._spool.close()
                for orphan in self._adopted:
                    orphan.close()  # still an orphan: the next process adopts it
                self._dead.close()
            finally:
                self._done.set()

    def _finish_if_due(self, now: float) -> bool:
        """At close: stop once all is delivered, or at the deadline with the rest spooled."""
        if self._queue or len(self._chunker):
            return False
        if not self._backlog() and self._head is None:
            return True
        assert self._close_deadline is not None
        return now >= self._close_deadline

    def _report_appended(self) -> None:
        """spool_first: report the ids callers appended, now synced per the fsync policy."""
        if self._appended and self._on_durable is not None:
            with self.stats._lock:
                ids, self._appended = self._appended, []
            self._durable(ids)
        elif self._appended:
            self._appended = []

    def _idle_wait(self, now: float) -> float:
        wait = _IDLE_WAIT_S
        due = self._chunker.deadline()
        if due is not None:
            wait = min(wait, due - now)
        if self._backlog():
            wait = min(wait, max(self._next_probe, self._next_batch_at) - now)
        return max(wait, 0.001)

    def _drain(self, now: float) -> bool:
        """Move up to one chunk's worth of records from the deque through the chunker."""
        queue = self._queue
        moved = 0
        while queue and moved < self._max_docs:
            record = queue.popleft()
            moved += 1
            doc = self._encode(record)
            if doc is not None:
                for chunk in self._chunker.add(doc, len(doc.source), now):
                    self._dispatch(chunk.items, now)
        self.stats.queued += moved
        if queue:
            return True
        finishing = self._closed or self._flush_requested
        chunk = self._chunker.flush() if finishing else self._chunker.poll(now)
        if chunk is not None:
            self._dispatch(chunk.items, now)
        return moved > 0 or chunk is not None

    def _encode(self, item: Any, worker: bool = True) -> Document | None:
        drop = self.stats.worker_drop if worker else self.stats.drop
        if self._prepare is not None:
            try:
                record = self._prepare(item)
            except Exception as exc:  # noqa: BLE001 - a bad item must not stop the worker
                drop("prepare_error")
                log.warning("mlmon shipper: dropped an item prepare() failed on: %r", exc)
                return None
        else:
            record = item
        try:
            doc = dict(record)
            if self._redactor is not None:
                doc = self._redactor(doc)
            event = doc.get("event")
            doc_id = event.get("id") if isinstance(event, Mapping) else None
            if not doc_id:  # a record without a stable id gets one now, before any send
                doc_id = str(uuid.uuid4())
                doc["event"] = {**(event if isinstance(event, Mapping) else {}), "id": doc_id}
            source = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                                allow_nan=False).encode("utf-8")
            return Document(str(doc_id), source)
        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
            drop("unserializable")
            log.warning("mlmon shipper: dropped a record that is not JSON-serializable: %s", exc)
            return None

    def _divert(self, now: float) -> bool:
        """True when new chunks must go to the spool instead of straight to Elasticsearch."""
        if self._spool or self._head is not None or now < self._next_probe:
            return True  # outage or backlog: keep order, don't hammer a sick cluster
        if len(self._queue) > self._high_water:
            return True  # Elasticsearch slower than the traffic
        return self._close_deadline is not None and now >= self._close_deadline

    def _dispatch(self, docs: list[Document], now: float) -> None:
        if self._divert(now):
            self._to_spool(docs)
            return
        result = self._sender.send(docs)
        self._account(result, replay=False)
        if result.retry:
            self._failed(result.error)
            self._to_spool(result.retry)

    def _replay(self, now: float) -> bool:
        """Send the spool head once if due; True when something happened."""
        if self._head is None:
            source = next((s for s in self._adopted if s), self._spool)  # orphans first
            if not source or now < self._next_probe:
                return False
            if source is self._spool and self._spool_first and not self._batch_due(now):
                return False
            batch = source.peek(self._max_docs, self._max_bytes)
            self.stats.spool_corrupt = self._spool.corrupt + sum(s.corrupt for s in self._adopted)
            self._head = (source, batch.end, [decode_spooled(p) for p in batch.records])
        elif now < self._next_probe:
            return False
        source, end, docs = self._head
        if docs:
            result = self._sender.send(docs)
            self._account(result, replay=not self._spool_first or self._recovering
                          or source is not self._spool)
            if result.retry:
                self._head = (source, end, result.retry)  # only the failed documents again
                self._failed(result.error)
                return True
        source.ack(end)
        self._head = None
        if source is self._spool and not source:
            self._recovering = False
        if source is not self._spool and not source:
            self._adopted.remove(source)
            source.discard()
            log.info("mlmon shipper: replayed and removed the orphaned spool %s",
                     source.directory)
        if self._failures:
            log.warning("mlmon shipper: Elasticsearch accepts %s again; replaying the spool",
                        self.index)
        self._failures = 0
        self._next_probe = 0.0
        return True

    def _batch_due(self, now: float) -> bool:
        """spool_first: send when a chunk's worth is waiting, the oldest is `max_age_s` old,
        or on flush / close; so a trickle of records is still sent in batches."""
        if self._closed or self._flush_requested or self._recovering or now >= self._next_batch_at:
            self._next_batch_at = now + self._max_age_s
            return True
        if self._spool.pending_bytes >= self._max_bytes or self._appended_count >= self._wake_at:
            self._appended_count = 0
            self._next_batch_at = now + self._max_age_s
            return True
        return False

    def _adopt(self, dirs: Iterable[str | os.PathLike[str]], max_bytes: int, segment_bytes: int,
               fsync: str, fsync_interval_s: float, clock: Callable[[], float]) -> list[Spool]:
        """Take over every orphaned spool directory whose lock is free (start-up, caller's
        thread: opening a spool reads only file sizes and the cursor)."""
        adopted: list[Spool] = []
        for directory in dirs:
            try:
                orphan = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes,
                               fsync=fsync, fsync_interval_s=fsync_interval_s, clock=clock)
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
                orphan.discard()
        return adopted

    def _failed(self, error: str | None) -> None:
        self._failures += 1
        self._recovering = True
        delay = backoff_delay(self._failures, self._initial_backoff_s, self._max_backoff_s)
        self._next_probe = self._clock() + delay
        if self._failures == 1:
            log.warning("mlmon shipper: cannot index into %s (%s); spooling to disk",
                        self.index, error)

    def _account(self, result: SendResult, *, replay: bool) -> None:
        self.stats.retried += result.retries
        if not replay:
            # A fresh record's first send answered 409: another record already holds its id (a
            # reused request_id), and this one was not indexed. A 409 on a re-send (retry,
            # replay) is our own earlier copy, delivered: not counted here.
            self.stats.duplicate_ids += result.first_conflicts
        if result.ok:
            if replay:
                self.stats.replayed += len(result.ok)
            else:
                self.stats.shipped += len(result.ok)
            self.stats.last_success = self._wall_clock()
            self._durable(d.id for d in result.ok)
        if result.rejected:
            self._dead.write(self.index, result.rejected)
            self.stats.dead_lettered += len(result.rejected)
            self._durable(d.id for d, _, _ in result.rejected)

    def _to_spool(self, docs: list[Document]) -> None:
        written = self._spool.append([encode_spooled(d) for d in docs])
        self.stats.spooled += written
        self._durable(d.id for d in docs[:written])
        if written < len(docs):
            self.stats.worker_drop("spool_full", len(docs) - written)

    def _durable(self, ids: Iterable[str]) -> None:
        if self._on_durable is not None:
            try:
                self._on_durable(list(ids))
            except Exception:  # noqa: BLE001 - a caller's hook must not stop the worker
                log.exception("mlmon shipper: on_durable hook failed")

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


def _close_at_exit(ref: weakref.ref[Shipper]) -> None:
    shipper = ref()
    if shipper is not None and not shipper._done.is_set():
        shipper.close()
