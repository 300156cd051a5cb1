"""Labels a service learns itself, joined off the request path (`PredictionLogger.record_outcome`).

`OutcomeWorker.submit(label)` is an O(1) append to a bounded queue; one thread takes batches
from it and runs `OutcomeJoiner.join`, which writes each outcome onto its record and counts it
into the service's own monitor (its /metrics is scraped). What cannot be joined is counted by
reason, never raised and never dropped silently:

- queue full (Elasticsearch slower than the labels come): `queue_full`, at once;
- the record is not found: the label may come moments after its prediction, while the record is
  still in the shipper's queue or spool, so an unknown id is tried again every `retry_s` until
  `unknown_grace_s` after it was submitted, then counted `unknown_id`;
- Elasticsearch down: the labels wait, retried every `retry_s`, for at most `max_wait_s` after
  they were submitted, then are counted `es_unavailable` (dropped: the label is not kept on disk,
  unlike the records; feed it again with `mlmon outcomes` once Elasticsearch is back);
- the join raises (a bug: it is not meant to): the batch is logged and counted `join_error`
  (outcomes the join wrote and counted before raising are then counted twice: once each way);
- `close()` joins what is queued one last time; what still cannot be joined is counted the same.
  Labels still queued when `close()` gives up waiting (the last join outlasted its timeout), and
  labels submitted after `close()`, are counted `closed`.

Both waits are measured on the worker's monotonic clock from `submit`, not from the label's
`arrived_at` (the caller's time, which may be old: a label arriving late is still given the
grace its record may need to reach Elasticsearch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from mlmon.exporter.layout import CLOSED, ES_UNAVAILABLE, JOIN_ERROR, QUEUE_FULL, UNKNOWN_ID
from mlmon.log_shipper.join import Label, OutcomeJoiner

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 10_000
DEFAULT_BATCH = 500


class OutcomeWorker:
    """A thread joining submitted labels in batches.

    >>> worker = OutcomeWorker(OutcomeJoiner(client, profile, {"3": monitor}))
    >>> worker.submit(Label("req-1", "churn", time.time()))
    True
    >>> worker.close()
    """

    def __init__(self, joiner: OutcomeJoiner, *, max_queue: int = DEFAULT_MAX_QUEUE,
                 batch: int = DEFAULT_BATCH, linger_s: float = 0.2, retry_s: float = 2.0,
                 unknown_grace_s: float = 60.0, max_wait_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.joiner = joiner
        self.max_queue = max_queue
        self.batch = batch
        self.linger_s = linger_s
        self.retry_s = retry_s
        self.unknown_grace_s = unknown_grace_s
        self.max_wait_s = max_wait_s
        self._clock = clock
        # Queued labels: (submitted at, label), on `clock`; the waits are measured from it.
        self._queue: deque[tuple[float, Label]] = deque()
        # Labels to try again: (not before, submitted at, label).
        self._later: deque[tuple[float, float, Label]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self.joined = 0  # labels the worker settled (counted or rejected), for tests and stats
        self._thread = threading.Thread(target=self._run, name="mlmon-outcomes", daemon=True)
        self._thread.start()

    def submit(self, label: Label) -> bool:
        """Queue a label; False when the queue is full (counted `queue_full`) or the worker
        is closed (counted `closed`)."""
        submitted = self._clock()
        with self._lock:
            if self._closing:
                refused: str | None = CLOSED
            elif len(self._queue) + len(self._later) >= self.max_queue:
                refused = QUEUE_FULL
            else:
                self._queue.append((submitted, label))
                refused = None
        if refused is not None:
            self.joiner.rejects.reject_outcome(refused)
            return False
        if len(self._queue) >= self.batch:
            self._wake.set()
        return True

    def pending(self) -> int:
        """Labels queued or waiting for a retry."""
        with self._lock:
            return len(self._queue) + len(self._later)

    def close(self, timeout: float = 10.0) -> None:
        """Join what is queued once more, count what is left, stop the thread.

        Should the thread still be joining after `timeout` (Elasticsearch slow to answer), the
        labels it has not taken yet are counted `closed`; the batch in its hands is settled by
        the thread when its join returns.
        """
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._lock:
                left = len(self._queue) + len(self._later)
                self._queue.clear()
                self._later.clear()
            if left:
                log.warning("mlmon: outcome worker still busy after %.1f s; %d labels not "
                            "joined, counted closed", timeout, left)
                self.joiner.rejects.reject_outcome(CLOSED, left)
                self.joined += left

    # ---- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            closing = self._closing
            try:
                while self._step(final=closing):
                    pass
            except Exception:  # noqa: BLE001 - the worker must outlive a bug in one batch
                log.exception("mlmon: outcome worker step failed")
                time.sleep(self.retry_s)
            if closing:
                return

    def _take(self, final: bool) -> list[tuple[float, Label]]:
        now = self._clock()
        with self._lock:
            taken: list[tuple[float, Label]] = []
            while self._later and (final or self._later[0][0] <= now) and len(
                    taken) < self.batch:
                taken.append(self._later.popleft()[1:])
            while self._queue and len(taken) < self.batch:
                taken.append(self._queue.popleft())
        return taken

    def _step(self, final: bool) -> bool:
        """Join one batch; True when there may be more to do now."""
        taken = self._take(final)
        if not taken:
            return False
        labels = [label for _submitted, label in taken]
        # An unknown id is only counted once the label is old enough (the record may be on
        # its way); on the last pass everything is settled.
        try:
            verdicts = self.joiner.join(labels, uncounted=() if final else (UNKNOWN_ID,))
            if len(verdicts) != len(labels):
                raise ValueError(f"{len(verdicts)} verdicts for {len(labels)} labels")
        except Exception:  # noqa: BLE001 - a bug in the join must not lose the batch silently
            log.exception("mlmon: outcome join failed; %d labels counted join_error",
                          len(labels))
            self.joiner.rejects.reject_outcome(JOIN_ERROR, len(labels))
            self.joined += len(labels)
            return True
        now = self._clock()
        retry_at = now + self.retry_s
        unavailable = False
        for (submitted, label), verdict in zip(taken, verdicts, strict=True):
            if verdict not in (UNKNOWN_ID, ES_UNAVAILABLE) or (final and verdict == UNKNOWN_ID):
                self.joined += 1  # settled, and counted by the joiner
                continue
            unavailable = unavailable or verdict == ES_UNAVAILABLE
            limit = self.max_wait_s if verdict == ES_UNAVAILABLE else self.unknown_grace_s
            if final or now - submitted >= limit:
                self.joiner.rejects.reject_outcome(verdict)
                self.joined += 1
            else:
                with self._lock:
                    self._later.append((retry_at, submitted, label))
        if unavailable and final:
            with self._lock:  # no time left to wait for Elasticsearch: settle the rest now
                rest = len(self._queue) + len(self._later)
                self._queue.clear()
                self._later.clear()
            if rest:
                self.joiner.rejects.reject_outcome(ES_UNAVAILABLE, rest)
                self.joined += rest
        if unavailable:
            log.warning("mlmon: Elasticsearch unavailable for outcomes (%s); retrying",
                        self.joiner.last_error)
            return False  # wait for the next wake-up before asking again
        return True

