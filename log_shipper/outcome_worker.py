"""Labels a service learns itself, joined off the request path (`PredictionLogger.record_outcome`).

`OutcomeWorker.submit(label)` is an O(1) append to a bounded queue; one thread takes batches
from it and runs `OutcomeJoiner.join`, which writes each outcome onto its record and counts it
into the service's own monitor (its /metrics is scraped). What cannot be joined is counted by
reason, never raised and never dropped silently:

- queue full (Elasticsearch slower than the labels come): `queue_full`, at once;
- the record is not found: the label may come moments after its prediction, while the record is
  still in the shipper's queue or spool, so an unknown id is tried again every `retry_s` until
  the label is `unknown_grace_s` old, then counted `unknown_id`;
- Elasticsearch down: the labels wait, retried every `retry_s`, for at most `max_wait_s` from
  their arrival, then are counted `es_unavailable` (dropped: the label is not kept on disk, unlike
  the records; feed it again with `mlmon outcomes` once Elasticsearch is back);
- `close()` joins what is queued one last time; what still cannot be joined is counted the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from mlmon.exporter.layout import ES_UNAVAILABLE, QUEUE_FULL, UNKNOWN_ID
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
                 clock: Callable[[], float] = time.time) -> None:
        self.joiner = joiner
        self.max_queue = max_queue
        self.batch = batch
        self.linger_s = linger_s
        self.retry_s = retry_s
        self.unknown_grace_s = unknown_grace_s
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._queue: deque[Label] = deque()
        # Labels to try again: (not before, label).
        self._later: deque[tuple[float, Label]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self.joined = 0  # labels the worker settled (counted or rejected), for tests and stats
        self._thread = threading.Thread(target=self._run, name="mlmon-outcomes", daemon=True)
        self._thread.start()

    def submit(self, label: Label) -> bool:
        """Queue a label; False (counted `queue_full`) when the queue is full or closed."""
        with self._lock:
            if self._closing or len(self._queue) + len(self._later) >= self.max_queue:
                full = True
            else:
                self._queue.append(label)
                full = False
        if full:
            self.joiner.rejects.reject_outcome(QUEUE_FULL)
            return False
        if len(self._queue) >= self.batch:
            self._wake.set()
        return True

    def pending(self) -> int:
        """Labels queued or waiting for a retry."""
        with self._lock:
            return len(self._queue) + len(self._later)

    def close(self, timeout: float = 10.0) -> None:
        """Join what is queued once more, count what is left, stop the thread."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

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

    def _take(self, final: bool) -> list[Label]:
        now = self._clock()
        with self._lock:
            labels: list[Label] = []
            while self._later and (final or self._later[0][0] <= now) and len(
                    labels) < self.batch:
                labels.append(self._later.popleft()[1])
            while self._queue and len(labels) < self.batch:
                labels.append(self._queue.popleft())
        return labels

    def _step(self, final: bool) -> bool:
        """Join one batch; True when there may be more to do now."""
        labels = self._take(final)
        if not labels:
            return False
        # An unknown id is only counted once the label is old enough (the record may be on
        # its way); on the last pass everything is settled.
        verdicts = self.joiner.join(labels, uncounted=() if final else (UNKNOWN_ID,))
        now = self._clock()
        retry_at = now + self.retry_s
        unavailable = False
        for label, verdict in zip(labels, verdicts, strict=True):
            if verdict not in (UNKNOWN_ID, ES_UNAVAILABLE) or (final and verdict == UNKNOWN_ID):
                self.joined += 1  # settled, and counted by the joiner
                continue
            unavailable = unavailable or verdict == ES_UNAVAILABLE
            limit = self.max_wait_s if verdict == ES_UNAVAILABLE else self.unknown_grace_s
            if final or now - label.arrived_at >= limit:
                self.joiner.rejects.reject_outcome(verdict)
                self.joined += 1
            else:
                with self._lock:
                    self._later.append((retry_at, label))
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

