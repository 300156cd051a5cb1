"""Shadow mode: a challenger model run on the champion's requests, off the request path.

`PredictionLogger.add_challenger(profile, predict)` attaches a `Challenger`. Each
`logger.record(...)` of the champion then hands the request's features, its prediction and its
record id to the challenger with one non-blocking put into a bounded queue; worker threads
(`workers`, default 1) take it from there: they call `predict(features)`, record the
challenger's prediction under its own model version (its own monitor; records through the
champion's shipper with `model.role: challenger` and the champion's request id in `trace.id`)
and count the agreement of the two predictions (mlmon/exporter/challenger.py).

The request pays the queue put and a copy of the features, nothing else (`make bench`:
bench/bench_challenger.py). When the workers fall behind and `max_pending` requests wait, new
ones are shed and counted (`mlmon_challenger_skipped_total{reason="queue_full"}`), never queued
without bound; a challenger that raises is counted (`predict_error`), never seen by the caller.
`close()` lets the workers finish what is pending within a timeout and counts the rest as
`closed`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlmon.exporter.challenger import Comparison, register_comparison, unregister_comparison

if TYPE_CHECKING:
    from mlmon.log_shipper.facade import PredictionLogger

log = logging.getLogger(__name__)

Predict = Callable[[dict[str, Any]], Any]  # gets its own copy of the request's features
_STOP = object()
DEFAULT_MAX_PENDING = 1000


class Challenger:
    """Runs `predict` on the champion's requests in `workers` threads, bounded by `max_pending`.

    Made by `PredictionLogger.add_challenger(...)`, which also closes it.

    >>> challenger = logger.add_challenger(challenger_profile, model_b.predict_one)
    >>> challenger.logger.monitor.model_version    # its own series, under its own version
    '2'
    """

    def __init__(self, predict: Predict, logger: PredictionLogger, comparison: Comparison, *,
                 workers: int = 1, max_pending: int = DEFAULT_MAX_PENDING,
                 with_scores: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.predict = predict
        self.logger = logger
        self.comparison = comparison
        self.workers = workers
        self.max_pending = max_pending
        self.with_scores = with_scores
        self._clock = clock
        self._closed = False
        self._start()
        # A forked child (gunicorn --preload) has the queue but not the threads: start afresh.
        os.register_at_fork(after_in_child=_restart_in_child(weakref.ref(self)))
        monitor = logger.monitor
        if monitor is not None:
            register_comparison(monitor.registry, comparison)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._submit_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(self.max_pending)
        self._threads = [threading.Thread(target=self._work, name=f"mlmon-challenger-{i}",
                                          daemon=True) for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Requests waiting for a worker."""
        return self._queue.qsize()

    def submit(self, features: Mapping[str, Any], champion_prediction: Any,
               request_id: str) -> bool:
        """Queue one request for the challenger (O(1), never blocks, never raises); False when
        it was shed (counted)."""
        try:
            # a copy: the caller may reuse or change its dict once record() has returned
            item = (dict(features), champion_prediction, request_id)
            with self._submit_lock:  # so that close() counts whatever got in before it
                if self._closed:
                    self.comparison.skip("closed")
                    return False
                self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.comparison.skip("queue_full")
        except Exception:  # noqa: BLE001 - e.g. features that are not a mapping
            self.comparison.skip("not_comparable")
        return False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._run(*item)
            except Exception:  # noqa: BLE001 - a worker must outlive any one request
                log.exception("mlmon challenger: unexpected error")
                self.comparison.skip("record_error")
            finally:
                self._queue.task_done()

    def _run(self, features: dict[str, Any], champion: Any, request_id: str) -> None:
        start = self._clock()
        try:
            out = self.predict(features)
            prediction, scores = out if self.with_scores else (out, None)
        except Exception:  # noqa: BLE001 - the challenger's failure is counted, not raised
            self.comparison.skip("predict_error")
            monitor = self.logger.monitor
            if monitor is not None:
                monitor.record_request(self._clock() - start, ok=False)
            return
        latency = self._clock() - start
        monitor = self.logger.monitor
        if monitor is not None:
            monitor.record_request(None, ok=True)  # the latency: by record() below
        if self.logger.record(features, prediction, latency_s=latency, scores=scores,
                              request_id=request_id) is None:
            self.comparison.skip("record_error")
        self.comparison.compare(champion, prediction)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking requests, let the workers finish the pending ones within `timeout`
        seconds and count what is left as `closed`; True when nothing was left."""
        with self._submit_lock:
            self._closed = True
        deadline = time.monotonic() + timeout
        if self._pid == os.getpid():
            for _ in self._threads:  # after everything queued before: drains, then stops
                self._put_stop(deadline)
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left += 1
                self.comparison.skip("closed")
        return left == 0

    def _put_stop(self, deadline: float) -> None:
        try:
            self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            pass  # workers still busy at the deadline: the rest is counted as closed

    def unregister(self) -> None:
        """Stop exposing the comparison series (the challenger's monitor stays)."""
        monitor = self.logger.monitor
        if monitor is not None:
            unregister_comparison(monitor.registry, self.comparison)


def _restart_in_child(ref: weakref.ref[Challenger]) -> Callable[[], None]:
    def restart() -> None:
        challenger = ref()
        if challenger is not None and not challenger._closed:
            challenger._start()
    return restart
