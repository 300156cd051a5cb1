"""Shadow mode: a challenger model run on the champion's requests, off the request path.

`PredictionLogger.add_challenger(profile, predict)` attaches a `Challenger`. Each
`logger.record(...)` of the champion then hands the request's features, its prediction and its
record id to the challenger with one non-blocking put into a bounded queue; worker threads
(`workers`, default 1) take it from there: each has `predict(features)` computed, records the
challenger's prediction under its own model version (its own monitor; records through the
champion's shipper with `model.role: challenger` and the champion's request id in `trace.id`)
and counts the agreement of the two predictions (mlmon/exporter/challenger.py).

Where `predict` runs (`isolation`):
- "process" (the default): in a child process per worker thread
  (log_shipper/shadow_process.py), fed the pickled features. The model's work holds neither
  the serving process's GIL nor its share of the CPU; the worker thread waits on a pipe and
  keeps the counting, recording and monitoring in the serving process. `predict` must pickle
  (checked by `add_challenger`). A child that dies or hangs is counted (`process_died`,
  `predict_timeout`) and replaced. The child runs at a lower priority (`nice`, default +10):
  on a busy machine the kernel gives the CPU to the requests first.
- "thread": in the worker thread itself. For a `predict` that cannot be pickled; its pure
  Python parts then take the GIL from the requests (`make bench`: bench/bench_challenger.py).

The request pays the queue put and a copy of the features, nothing else. When the workers fall
behind and `max_pending` requests wait, new ones are shed and counted
(`mlmon_challenger_skipped_total{reason="queue_full"}`), never queued without bound; a
challenger that raises is counted (`predict_error`), never seen by the caller. `close()` lets
the workers finish what is pending within a timeout, counts the rest as `closed` and ends the
child processes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from mlmon.exporter.challenger import (
    CLOSED,
    NOT_COMPARABLE,
    PREDICT_ERROR,
    PREDICT_TIMEOUT,
    PROCESS_DIED,
    QUEUE_FULL,
    RECORD_ERROR,
    Comparison,
    register_comparison,
    unregister_comparison,
)
from mlmon.log_shipper.shadow_process import (
    DEFAULT_NICE,
    ChildFailed,
    ChildPredict,
    pickle_predict,
)

if TYPE_CHECKING:
    from mlmon.log_shipper.facade import PredictionLogger

log = logging.getLogger(__name__)

Predict = Callable[[dict[str, Any]], Any]  # gets its own copy of the request's features
Isolation = Literal["process", "thread"]
ISOLATIONS: tuple[Isolation, ...] = ("process", "thread")
_STOP = object()
DEFAULT_MAX_PENDING = 1000
DEFAULT_PREDICT_TIMEOUT = 30.0
_KILLED_JOIN_S = 5.0  # a worker whose child was killed wakes within milliseconds


class InThread:
    """`predict(features)` in the calling worker thread: `(output, seconds)`."""

    def __init__(self, predict: Predict, clock: Callable[[], float]) -> None:
        self.predict = predict
        self.clock = clock

    def __call__(self, features: dict[str, Any]) -> tuple[Any, float]:
        start = self.clock()
        return self.predict(features), self.clock() - start

    def close(self, timeout: float = 0.0) -> None:
        """Nothing to end."""

    def kill(self) -> None:
        """Nothing to end: a predict running in a thread finishes on its own."""

    def abandon(self) -> None:
        """Nothing inherited."""


class Challenger:
    """Runs `predict` on the champion's requests through `workers` threads (each with its child
    process, or in the thread: `isolation`), bounded by `max_pending`.

    Made by `PredictionLogger.add_challenger(...)`, which also closes it.

    >>> challenger = logger.add_challenger(challenger_profile, model_b.predict_one)
    >>> challenger.logger.monitor.model_version    # its own series, under its own version
    '2'
    """

    def __init__(self, predict: Predict, logger: PredictionLogger, comparison: Comparison, *,
                 workers: int = 1, max_pending: int = DEFAULT_MAX_PENDING,
                 with_scores: bool = False, isolation: Isolation = "process",
                 predict_timeout: float = DEFAULT_PREDICT_TIMEOUT, nice: int = DEFAULT_NICE,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, "
                             f"got {isolation!r}")
        if not predict_timeout > 0:
            raise ValueError(f"predict_timeout must be > 0 seconds, got {predict_timeout!r}")
        if not 0 <= nice <= 19:  # an unprivileged process can only lower its priority
            raise ValueError(f"nice must be between 0 and 19, got {nice!r}")
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
        self.isolation = isolation
        self.predict_timeout = predict_timeout
        self.nice = nice
        # pickled once, here: a configuration error shows at start-up, and every child (a
        # restart too) loads the same model, whatever happens to `predict` afterwards
        self._payload = pickle_predict(predict) if isolation == "process" else b""
        self._clock = clock
        self._closed = False
        self.runners: list[InThread | ChildPredict] = []
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
        for runner in self.runners:  # a forked child: the parent's processes are not ours
            runner.abandon()
        self.runners = [self._runner() for _ in range(self.workers)]
        self._threads = [threading.Thread(target=self._work, args=(runner,),
                                          name=f"mlmon-challenger-{i}", daemon=True)
                         for i, runner in enumerate(self.runners)]
        for thread in self._threads:
            thread.start()

    def _runner(self) -> InThread | ChildPredict:
        if self.isolation == "thread":
            return InThread(self.predict, self._clock)
        # started on the first request, in the process that serves it (after any fork)
        return ChildPredict(self._payload, timeout=self.predict_timeout, nice=self.nice)

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
                    self.comparison.skip(CLOSED)
                    return False
                self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.comparison.skip(QUEUE_FULL)
        except Exception:  # noqa: BLE001 - e.g. features that are not a mapping
            self.comparison.skip(NOT_COMPARABLE)
        return False

    def _work(self, runner: InThread | ChildPredict) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    runner.close()
                    return
                self._run(runner, *item)
            except Exception:  # noqa: BLE001 - a worker must outlive any one request
                log.exception("mlmon challenger: unexpected error")
                self.comparison.skip(RECORD_ERROR)
            finally:
                self._queue.task_done()

    def _run(self, runner: InThread | ChildPredict, features: dict[str, Any], champion: Any,
             request_id: str) -> None:
        start = self._clock()
        try:
            out, latency = runner(features)
            prediction, scores = out if self.with_scores else (out, None)
        except Exception as exc:  # noqa: BLE001 - the challenger's failure is counted, not raised
            reason = exc.reason if isinstance(exc, ChildFailed) else PREDICT_ERROR
            if reason in (PROCESS_DIED, PREDICT_TIMEOUT) and str(exc) != reason:
                log.warning("mlmon challenger %s: %s", self.comparison.challenger_version, exc)
            self.comparison.skip(reason)
            monitor = self.logger.monitor
            if monitor is not None and reason != CLOSED:
                monitor.record_request(self._clock() - start, ok=False)
            return
        monitor = self.logger.monitor
        if monitor is not None:
            monitor.record_request(None, ok=True)  # the latency: by record() below
        if self.logger.record(features, prediction, latency_s=latency, scores=scores,
                              request_id=request_id) is None:
            self.comparison.skip(RECORD_ERROR)
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
            for runner, thread in zip(self.runners, self._threads, strict=True):
                if thread.is_alive():  # still in a predict at the deadline: end its process
                    runner.kill()
                    # its thread then counts that request `closed` at once (a thread running
                    # predict itself cannot be stopped: it finishes in the background)
                    thread.join(_KILLED_JOIN_S if isinstance(runner, ChildPredict) else 0.0)
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left += 1
                self.comparison.skip(CLOSED)
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
