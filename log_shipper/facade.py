"""One call per prediction feeds the exporter (Prometheus) and the shipper (Elasticsearch).

`PredictionLogger.record(...)` runs `ModelMonitor.observe()` for the metrics, captures what the
ECS record needs (with the flags the monitor found) and hands it to the shipper and/or the
JSON-lines log, whose threads build, redact and encode it: the request thread pays for observe()
and an enqueue (docs/shipper-records.md has the measured costs). It never raises: a failure is
counted in `errors` and the prediction goes on.

`with logger.track_request():` around the request adds the monitor's in-flight gauge, latency
and outcome; `record()` calls inside it leave the latency histogram to the request (so it is
counted once per request) and still put the latency in the record's `event.duration`.

`logger.add_challenger(profile, predict)` runs a second model version in shadow on the same
requests, off the request path (log_shipper/shadow.py, docs/challenger.md).
`record_outcome(request_id, actual)` is for a service that learns the truth itself: it queues the
label for a worker thread (started on first use, again in a forked child) that joins it to the
record in Elasticsearch and counts it into this process's monitor (mlmon.log_shipper.join,
mlmon.log_shipper.outcome_worker for what happens when Elasticsearch is down).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlmon.log_shipper.join import Label, OutcomeJoiner
from mlmon.log_shipper.logging_sink import JsonLinesSink
from mlmon.log_shipper.outcome_worker import OutcomeWorker
from mlmon.log_shipper.record import (
    RecordBuilder,
    challenger_record_id,
    index_name,
    materialize,
)
from mlmon.log_shipper.redact import Redactor
from mlmon.log_shipper.shadow import DEFAULT_PREDICT_TIMEOUT
from mlmon.log_shipper.shadow_process import DEFAULT_NICE
from mlmon.log_shipper.shipper import Shipper
from mlmon.log_shipper.spool import SpoolLockedError
from mlmon.log_shipper.spool_dirs import orphan_candidates, own_dir_choices
from mlmon.names import CHALLENGER_ROLE, CHAMPION_ROLE

if TYPE_CHECKING:
    from mlmon.exporter.monitor import ModelMonitor, RequestTracker
    from mlmon.exporter.profile import Profile
    from mlmon.log_shipper.shadow import Challenger, Isolation, Predict

log = logging.getLogger(__name__)


class TrackedRequest:
    """One request under `PredictionLogger.track_request()` (a context manager).

    Entering counts the request in flight; leaving counts its latency and outcome (error when
    the block raises, or after `error()`) through the monitor, once. While it is open,
    `record()` of the same logger does not count latency again.
    """

    def __init__(self, monitor: ModelMonitor | None) -> None:
        self.monitor = monitor
        self._tracker: RequestTracker | None = monitor.track_request() if monitor else None
        self._start = 0.0
        self._token: Token[TrackedRequest | None] | None = None

    def error(self) -> None:
        """Mark the request failed without raising (e.g. a 4xx/5xx answer built by hand)."""
        if self._tracker is not None:
            self._tracker.error()

    def elapsed_s(self) -> float:
        """Seconds since the request started."""
        return time.perf_counter() - self._start

    def __enter__(self) -> TrackedRequest:
        self._start = time.perf_counter()
        self._token = _CURRENT.set(self)
        if self._tracker is not None:
            self._tracker.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
        if self._tracker is not None:
            self._tracker.__exit__(exc_type, exc, tb)


# The request open in this thread / task. A context variable, not a thread-local, so async
# handlers sharing a thread each see their own request.
_CURRENT: ContextVar[TrackedRequest | None] = ContextVar("mlmon_tracked_request", default=None)


class PredictionLogger:
    """Exporter + shipper behind one call.

    >>> logger = PredictionLogger.from_profile(profile, es_url="http://127.0.0.1:9200",
    ...                                        spool_dir="/var/lib/mlmon/spool",
    ...                                        service_name="churn-api", environment="prod")
    >>> event_id = logger.record({"age": 42, "city": "paris"}, 0.73, latency_s=0.012)
    >>> logger.record_outcome(event_id, 0.70)   # later: the truth, joined off the request path
    >>> with logger.track_request():       # or: in-flight, latency and outcome per request
    ...     y = model.predict(x)
    ...     event_id = logger.record(x, y)  # latency counted once, by the request
    >>> logger.close()
    """

    def __init__(self, builder: RecordBuilder, *, monitor: ModelMonitor | None = None,
                 shipper: Shipper | None = None, log_sink: JsonLinesSink | None = None,
                 outcome_worker: Callable[[], OutcomeWorker] | None = None) -> None:
        self.builder = builder
        self.monitor = monitor
        self.shipper = shipper
        self.log_sink = log_sink
        self.errors = 0  # record() / record_outcome() calls that failed inside
        self.challengers: list[Challenger] = []
        # The outcome worker is made on the first record_outcome(): a service that never calls
        # it runs no thread. (pid, worker): a forked child makes its own.
        self._outcome_factory = outcome_worker
        self._outcomes: tuple[int, OutcomeWorker] | None = None
        self._outcomes_lock = (os.getpid(), threading.Lock())

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        service_name: str,
        environment: str,
        es_url: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        log_sink: JsonLinesSink | None = None,
        redactor: Redactor | None = None,
        monitor: ModelMonitor | None = None,
        registry: Any = None,
        outcome_options: Mapping[str, Any] | None = None,
        **shipper_options: Any,
    ) -> PredictionLogger:
        """Monitor, record builder and (with `es_url`) shipper for one profile.

        `redactor` defaults to `Redactor.from_env()` (MLMON_REDACT, MLMON_REDACT_SALT); its
        rules must name features of the profile (`RedactionError`, a ValueError, otherwise);
        the spool directory to `$MLMON_SPOOL_DIR/<index>/pid-<pid>`, one per process. A
        `spool_dir` given explicitly is used as is unless another process holds it, then
        `<spool_dir>/pid-<pid>`. Either way, spool directories under the same root left by dead
        processes are adopted and replayed; dead letters go to `<root>/dead-letter.ndjson`.
        `outcome_options`: `OutcomeWorker`'s (max_queue, unknown_grace_s, max_wait_s, ...).
        """
        from mlmon.exporter.monitor import ModelMonitor

        builder = RecordBuilder(model=profile.model_name, model_version=profile.model_version,
                                service_name=service_name, environment=environment,
                                profile=profile)
        # Rules are checked against the profile here, at start-up: a rule naming a feature the
        # profile lacks (a typo) would otherwise redact nothing and ship the raw value.
        if redactor is not None:
            redactor.check(profile)
        else:
            redactor = Redactor.from_env(profile)
        shipper = None
        if es_url is not None:
            index = index_name(profile.model_name)
            explicit = spool_dir is not None
            if spool_dir is None:
                base = os.environ.get("MLMON_SPOOL_DIR")
                if not base:
                    raise ValueError("the shipper needs a spool directory: pass spool_dir or "
                                     "set MLMON_SPOOL_DIR")
                spool_dir = Path(base) / index
            shipper = _shipper_with_own_spool(es_url, index, Path(spool_dir), explicit,
                                              redactor, shipper_options)
        if log_sink is not None:
            log_sink.redact_with_if_unset(redactor)
        # The monitor last: registering it is the one step that cannot be undone by a retry,
        # so every check that can fail (redaction rules, spool directory) has run before it.
        if monitor is None:
            try:
                monitor = ModelMonitor(profile, registry)
            except Exception:
                if shipper is not None:
                    shipper.close(timeout=5)
                raise
        worker = None
        if es_url is not None:
            worker = functools.partial(_outcome_worker, es_url, profile, monitor,
                                       dict(outcome_options or {}))
        return cls(builder, monitor=monitor, shipper=shipper, log_sink=log_sink,
                   outcome_worker=worker)

    def record(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        latency_s: float | None = None,
        scores: Mapping[str, float] | float | None = None,
        request_id: str | None = None,
    ) -> str | None:
        """Observe and ship one prediction; returns the record's id (None when it failed).

        Inside `track_request()` the request counts the latency; the record's `event.duration`
        is `latency_s`, or when it is None the time since the request started.
        """
        try:
            flags: Mapping[str, tuple[str, ...]] = {}
            unknown: tuple[str, ...] | None = None
            monitor_latency = latency_s
            request = _CURRENT.get()
            if request is not None and request.monitor is self.monitor:
                monitor_latency = None
                if latency_s is None:
                    latency_s = request.elapsed_s()
            if self.monitor is not None:
                observation = self.monitor.observe(features, prediction,
                                                   latency_s=monitor_latency, scores=scores)
                flags, unknown = observation.flags, observation.unknown_features
            # Only capture here; the shipper's and the log sink's threads build and encode.
            record = self.builder.defer(features, prediction, latency_s=latency_s,
                                        scores=scores, request_id=request_id, flags=flags,
                                        unknown_features=unknown)
            if self.shipper is not None:
                self.shipper.ship(record)
            if self.log_sink is not None:
                self.log_sink.emit(record)
            for challenger in self.challengers:
                challenger.submit(features, prediction, record.id)
            return record.id
        except Exception:  # noqa: BLE001 - monitoring must not break the prediction
            self.errors += 1
            return None

    def record_outcome(self, request_id: str, actual: Any, *,
                       arrived_at: float | None = None) -> bool:
        """Queue the actual value of the prediction recorded under `request_id`; never raises
        or blocks. True when queued; False when there is nowhere to join it (no Elasticsearch:
        counted in `errors`) or the queue is full (counted `queue_full`).

        The worker writes the outcome onto the record (once: a second label for the same id
        is a `duplicate`) and counts it into this process's monitor. `arrived_at`: Unix
        seconds, default now.
        """
        try:
            worker = self._outcome_worker()
            if worker is None:
                self.errors += 1
                return False
            when = time.time() if arrived_at is None else arrived_at
            queued = worker.submit(Label(str(request_id), actual, when))
            # the same label scores each challenger, on its own record of the request
            for challenger in self.challengers:
                role = challenger.logger.builder.role or CHALLENGER_ROLE
                worker.submit(Label(challenger_record_id(str(request_id), role), actual, when))
            return queued
        except Exception:  # noqa: BLE001 - monitoring must not break the caller
            self.errors += 1
            return False

    def _outcome_worker(self) -> OutcomeWorker | None:
        current = self._outcomes
        pid = os.getpid()
        if current is not None and current[0] == pid:
            return current[1]
        if self._outcome_factory is None:
            return None
        if self._outcomes_lock[0] != pid:  # forked: the parent's lock may have been held
            self._outcomes_lock = (pid, threading.Lock())
        with self._outcomes_lock[1]:
            if self._outcomes is None or self._outcomes[0] != pid:
                self._outcomes = (pid, self._outcome_factory())
                self._join_challengers()
            return self._outcomes[1]

    def _join_challengers(self) -> None:
        """Let the outcome worker count each challenger's labels into its own monitor (the
        join picks the monitor by the record's model version)."""
        if self._outcomes is None:
            return
        counters = self._outcomes[1].joiner.counters
        for challenger in self.challengers:
            monitor = challenger.logger.monitor
            if monitor is not None:
                counters.setdefault(monitor.model_version, monitor)

    def track_request(self) -> TrackedRequest:
        """`with logger.track_request():` around one request: in-flight gauge, latency and
        outcome through the monitor, with `record()` inside not counting the latency again."""
        return TrackedRequest(self.monitor)

    def add_challenger(self, profile: Profile, predict: Predict, *, workers: int = 1,
                       max_pending: int = 1000, tolerance: float | None = None,
                       with_scores: bool = False, monitor: ModelMonitor | None = None,
                       isolation: Isolation = "process",
                       predict_timeout: float = DEFAULT_PREDICT_TIMEOUT,
                       nice: int = DEFAULT_NICE) -> Challenger:
        """Run `predict(features)` of another version of this model in shadow on every request
        this logger records: through `workers` threads, at most `max_pending` waiting (more are
        shed, counted), never in the caller's latency, never raising into it.

        `isolation="process"` (default): each worker thread has `predict` run in its own child
        process (`predict` pickled once, here; ValueError if it cannot be), answering within
        `predict_timeout` seconds or killed and replaced (counted), at `nice` (0-19) over this
        process; "thread": in the worker thread, sharing this process's GIL with the requests
        (log_shipper/shadow.py).

        The challenger is monitored under its own version (`profile`, a monitor on this
        logger's registry), its records go through this logger's shipper and log sink with
        `model.role` and the request's id in `trace.id`, and its agreement with this model is
        counted (regression: |difference| <= `tolerance`, default 0.1 x this model's reference
        prediction std). `with_scores`: `predict` returns `(prediction, scores)`. Raises
        ValueError for a profile that cannot be a challenger (another model, the same version).
        """
        from mlmon.exporter.challenger import Comparison
        from mlmon.exporter.monitor import ModelMonitor
        from mlmon.log_shipper.shadow import Challenger

        if self.monitor is None:
            raise ValueError("add_challenger needs a logger with a monitor (the champion's)")
        if monitor is not None and monitor.registry is not self.monitor.registry:
            raise ValueError("the challenger's monitor must be on the champion's registry")
        # the champion's multi-process directory (or none) for the challenger's counts too
        directory = self.monitor.storage.directory
        comparison = Comparison(self.monitor.profile, profile, tolerance=tolerance,
                                directory=directory, file_errors=self.monitor.storage)
        own_monitor = monitor is None
        if monitor is None:
            monitor = ModelMonitor(profile, self.monitor.registry,
                                   multiproc_directory=directory)
        builder = self.builder.for_model(profile.model_name, profile.model_version, profile,
                                         CHALLENGER_ROLE)
        if self.builder.role is None:
            self.builder = self.builder.with_role(CHAMPION_ROLE)
        logger = PredictionLogger(builder, monitor=monitor, shipper=self.shipper,
                                  log_sink=self.log_sink)
        try:
            challenger = Challenger(predict, logger, comparison, workers=workers,
                                    max_pending=max_pending, with_scores=with_scores,
                                    isolation=isolation, predict_timeout=predict_timeout,
                                    nice=nice)
        except ValueError:  # e.g. a predict that cannot pickle: as if never called
            if own_monitor:
                monitor.unregister()
            raise
        self.challengers.append(challenger)
        self._join_challengers()
        return challenger

    def close(self, timeout: float = 10.0) -> bool:
        """Let challengers finish (or count what they leave), then flush the shipper and the
        log sink; True when everything was delivered."""
        delivered = True
        for challenger in self.challengers:
            challenger.close(timeout)
        if self.shipper is not None:
            delivered = self.shipper.close(timeout)
        # After the shipper: the last labels' records are in Elasticsearch by now.
        outcomes = self._outcomes
        if outcomes is not None and outcomes[0] == os.getpid():
            outcomes[1].close(timeout)
        if self.log_sink is not None:
            self.log_sink.close()
        return delivered


def _outcome_worker(es_url: str, profile: Profile, monitor: ModelMonitor,
                    options: dict[str, Any]) -> OutcomeWorker:
    """The worker joining this service's labels, counting into its monitor."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=10, max_retries=1, retry_on_timeout=True)
    joiner = OutcomeJoiner(client, profile, {profile.model_version: monitor})
    return OutcomeWorker(joiner, **options)


def _shipper_with_own_spool(es_url: str, index: str, root: Path, explicit: bool,
                            redactor: Redactor | None, options: dict[str, Any]) -> Shipper:
    """A shipper on the first spool directory no other process holds, adopting the orphans."""
    # prepare: the spool writer builds each PendingRecord, so a record that fails to build is
    # counted as prepare_error (not as unserializable)
    options = {"dead_letter_path": root / "dead-letter.ndjson", "prepare": materialize, **options}
    choices = own_dir_choices(root, use_root=explicit)
    for n, own in enumerate(choices):
        try:
            shipper = Shipper(es=es_url, index=index, spool_dir=own, redactor=redactor,
                              adopt_dirs=orphan_candidates(root, own), **options)
        except SpoolLockedError:
            if n == len(choices) - 1:
                raise
            continue
        if n and explicit:
            log.info("mlmon: spool directory %s is held by another process; using %s", root, own)
        return shipper
    raise AssertionError("unreachable")
