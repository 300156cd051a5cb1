"""The sender role's work: spooled records to Elasticsearch, oldest first, none lost.

One `turn()` at a time (run by a `SupervisedRole`): pick the spool to send from (orphans of
dead processes before our own), read a batch bounded by `BatchLimits`, send it, and acknowledge
it only when each document was indexed, already present (409) or dead-lettered. Documents that
failed retryably stay at the head and are sent again after a capped exponential backoff, which
a cheap probe (`HEAD /` every `PROBE_EVERY_S`) ends as soon as Elasticsearch answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from elasticsearch import ApiError, Elasticsearch

from mlmon.log_shipper.chunking import BatchLimits
from mlmon.log_shipper.deadletter import DeadLetter
from mlmon.log_shipper.metrics import ShipperStats
from mlmon.log_shipper.sender import BulkSender, Document, SendResult, backoff_delay
from mlmon.log_shipper.spool import Spool
from mlmon.log_shipper.spool_dirs import discard_orphan

log = logging.getLogger(__name__)

IDLE_S = 0.5         # longest sleep of an idle sender; bounds how late a lost wake-up is seen
PROBE_EVERY_S = 0.5  # during a backoff, how often Elasticsearch is asked whether it is back
PROBE_TIMEOUT_S = 1.0


def encode_spooled(doc: Document) -> bytes:
    """Spool payload: `<id length>:<id><source>`, so replay needs no JSON parsing."""
    ident = doc.id.encode("utf-8")
    return b"%d:" % len(ident) + ident + doc.source


def decode_spooled(payload: bytes) -> Document:
    """The inverse of `encode_spooled`."""
    length, _, rest = payload.partition(b":")
    n = int(length)
    return Document(rest[:n].decode("utf-8"), rest[n:])


def probe(client: Elasticsearch) -> Callable[[], bool]:
    """A cheap check: does Elasticsearch answer HTTP below 500 (it may be able to index)?"""
    quick = client.options(request_timeout=PROBE_TIMEOUT_S, max_retries=0)

    def answers() -> bool:
        try:
            quick.perform_request("HEAD", "/")
        except ApiError as exc:
            return int(exc.meta.status) < 500
        except Exception:  # noqa: BLE001 - refused, reset, timeout: still down
            return False
        return True

    return answers


class Host(Protocol):
    """What the sender needs to know about the shipper it works for."""

    def closing(self) -> bool: ...
    def flushing(self) -> bool: ...
    def close_deadline(self) -> float | None: ...
    def unsent(self) -> int: ...


class SpoolSender:
    """The sender's state and one turn of its work.

    >>> role = SupervisedRole("sender", turn=spool_sender.turn, finished=...)
    """

    def __init__(self, host: Host, *, index: str, spool: Spool, adopted: list[Spool],
                 sender: BulkSender, answers: Callable[[], bool], dead: DeadLetter,
                 stats: ShipperStats, limits: BatchLimits, initial_backoff_s: float,
                 max_backoff_s: float, wake: threading.Event, warn: Callable[[str], None],
                 clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self._host, self.index = host, index
        self._spool, self._adopted = spool, adopted
        self._sender, self._answers, self._dead = sender, answers, dead
        self._stats, self._limits = stats, limits
        self._initial_backoff_s, self._max_backoff_s = initial_backoff_s, max_backoff_s
        self._wake, self._warn = wake, warn
        self._clock, self._wall_clock = clock, wall_clock
        # the batch being sent: its spool, end position, documents still to send, batch size
        self.head: tuple[Spool, Any, list[Document], int] | None = None
        self.busy = False
        self.failures = 0  # consecutive failed attempts (the backoff grows with them)
        self._recovering = bool(spool)  # a backlog from before: its sends are replays
        self._first_unsent_at: float | None = None
        self.taken = 0  # records of the own spool acknowledged (spooled - taken = unsent)

    def turn(self) -> None:
        """Send the due batch (or wait for one); acknowledge it or back off."""
        now = self._clock()
        if self.head is None:
            source = self._due_source(now)
            if source is None:
                self.busy = False
                self._wake.wait(self._wait(now))
                self._wake.clear()
                return
            self.busy = True
            batch = source.peek(self._limits.max_docs, self._limits.max_bytes)
            self._stats.spool_corrupt = (self._spool.corrupt
                                         + sum(s.corrupt for s in self._adopted))
            self.head = (source, batch.end, [decode_spooled(p) for p in batch.records],
                         len(batch.records))
        self.busy = True
        source, end, docs, count = self.head
        if docs:
            try:
                result = self._sender.send(docs)
            except Exception as exc:  # noqa: BLE001 - e.g. a body that is not JSON: retry later
                result = SendResult(retry=list(docs), error=f"{type(exc).__name__}: {exc}")
            self._account(result, replay=self._recovering or source is not self._spool)
            if result.retry:
                self.head = (source, end, result.retry, count)  # only the failed ones again
                self._back_off(result.error)
                return
        self._acknowledge(source, end)

    def _due_source(self, now: float) -> Spool | None:
        """The spool to send from now: an orphan with records, or our own when a batch is due."""
        for orphan in self._adopted:
            if orphan:
                return orphan
        if not self._spool:
            self._first_unsent_at = None
            return None
        if self._first_unsent_at is None:
            self._first_unsent_at = now
        if self._host.closing() or self._host.flushing() or self._recovering:
            return self._spool
        waited = now - self._first_unsent_at
        due = self._limits.due(max(self._host.unsent(), 1), self._spool.pending_bytes, waited)
        return self._spool if due else None

    def _wait(self, now: float) -> float:
        if self._first_unsent_at is None:
            return IDLE_S
        return max(0.001, min(IDLE_S, self._first_unsent_at + self._limits.max_age_s - now))

    def _acknowledge(self, source: Spool, end: Any) -> None:
        source.ack(end)
        assert self.head is not None
        if source is self._spool:
            self.taken += self.head[3]
        self.head = None
        if source is self._spool and not source:
            self._recovering = False
            self._first_unsent_at = None
            self.taken = self._stats.spooled
        if source is not self._spool and not source:
            self._adopted.remove(source)
            removed = discard_orphan(source)
            log.info("mlmon shipper: replayed the orphaned spool %s%s", source.directory,
                     " and removed it" if removed else "; its other files are kept")
        if self.failures:
            log.warning("mlmon shipper: Elasticsearch accepts %s again; sending the spool",
                        self.index)
        self.failures = 0

    def _back_off(self, error: str | None) -> None:
        """Wait the capped exponential backoff, but stop early when a probe finds Elasticsearch
        answering again (or the close deadline comes)."""
        self.failures += 1
        self._recovering = True
        if self.failures == 1:
            log.warning("mlmon shipper: cannot index into %s (%s); records wait in the spool",
                        self.index, error)
        until = self._clock() + backoff_delay(self.failures, self._initial_backoff_s,
                                              self._max_backoff_s)
        while True:
            limit = until  # close() may come during the backoff: its deadline caps the wait
            deadline = self._host.close_deadline()
            if deadline is not None:
                limit = min(limit, deadline)
            now = self._clock()
            if now >= limit:
                return
            time.sleep(min(PROBE_EVERY_S, limit - now))
            if self._clock() < limit and self._answers():
                return

    def _account(self, result: SendResult, *, replay: bool) -> None:
        stats = self._stats
        stats.retried += result.retries
        if not replay:
            # A fresh record's first send answered 409: another record already holds its id (a
            # reused request_id), and this one was not indexed. A 409 on a re-send (retry,
            # replay) is our own earlier copy, delivered: not counted here.
            stats.duplicate_ids += result.first_conflicts
        if result.ok:
            if replay:
                stats.replayed += len(result.ok)
            else:
                stats.shipped += len(result.ok)
            stats.last_success = self._wall_clock()
        if result.rejected:
            try:
                self._dead.write(self.index, result.rejected)
                stats.dead_lettered += len(result.rejected)
            except OSError as exc:
                stats.worker_drop("dead_letter_error", len(result.rejected))
                self._warn(f"cannot write the dead-letter file: {exc}")
