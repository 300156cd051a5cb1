"""BatchRun: a batch scoring job's counts, pushed to the Pushgateway when the run ends.

    with BatchRun("profile.json", job="nightly-scoring", pushgateway="http://pgw:9091") as run:
        for chunk in chunks:
            run.observe_batch(chunk[features], chunk["pred"])

A batch job exits before Prometheus could scrape it, so its counts are pushed: the exporter's
series of what the run scored (the same `ModelMonitor` counts a service exports) plus the run's
own series (`mlmon.names.BATCH_SERIES`: outcome, rows, duration, start and end, last success).
One Pushgateway group per (batch job, model, model_version): job `mlmon_batch`, grouping key
`batch_job`, `model`, `model_version`.

- A run that ends normally pushes with PUT: the group holds this run's counts alone (the
  previous run's are replaced, never added to), and `mlmon_batch_last_success_timestamp_seconds`
  moves to its end.
- A run that fails (an exception leaves the `with` block, or `fail()`) pushes with POST only the
  run series, outcome 0: the failure is visible at once, while the group keeps the counts and
  the last-success time of the last run that succeeded (the `:batch` rules keep describing a
  complete batch, and the missed-schedule alert still counts from the last success).

Errors: a bad profile, job name or Pushgateway URL raises at construction (before any work).
`observe_batch` never raises (what it cannot use is counted under `mlmon_rejected_total`). A
push is retried while the Pushgateway does not answer or answers 5xx, not when it refuses the
push (4xx: mlmon.exporter.pushgateway); one that still fails is logged and kept in `push_error`
(`failed_pushes` counts the failed requests). It raises `PushError` only with
`raise_on_push_error=True` (the CLI's choice): otherwise a finished batch's output is not thrown
away for its monitoring, and the missed-schedule alert notices the missing success. An
exception from the job's own code always propagates unchanged.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

import mlmon.names as N
from mlmon.exporter.monitor import BatchObservation, ModelMonitor
from mlmon.exporter.profile import Profile
from mlmon.exporter.pushgateway import PushError, Pushgateway

__all__ = ["BatchRun", "PushError"]

log = logging.getLogger(__name__)

_NOT_PUSHED = frozenset(s.name for s in N.BATCH_NOT_PUSHED)
_RUN_ENDED = {"success": 1.0, "failure": 0.0}
_SLICE = 1000  # rows between two looks at the shipper's queue


class _PushCollector:
    """What a push sends: the monitor's families (less the request-path ones) and the run's."""

    def __init__(self, run: BatchRun, series: tuple[N.Series, ...], with_counts: bool) -> None:
        self.run, self.series, self.with_counts = run, series, with_counts

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self.with_counts:
            for family in self.run.monitor.registry.collect():
                if family.name in _NOT_PUSHED or not family.name.startswith("mlmon_"):
                    continue  # process_* of the monitor's registry: the pusher's, not the job's
                yield family
        values = self.run.run_values()
        for series in self.series:
            family = GaugeMetricFamily(series.name, series.help)
            family.add_metric([], values[series.name])
            yield family


class BatchRun:
    """One run of a batch scoring job (a context manager); pushes its counts when it ends.

    >>> with BatchRun(profile, job="nightly-scoring", pushgateway="http://127.0.0.1:9091") as run:
    ...     run.observe_batch(frame[feature_columns], frame["pred"])
    >>> run.rows, run.outcome, run.push_error
    (10000, 'success', None)

    `pushgateway=None` counts without pushing (a dry run, or a test reading `monitor`).
    `es_url`: also send every scored row to Elasticsearch through the shipper
    (`PredictionLogger`, service.name = the job; `spool_dir`, `environment` and
    `shipper_options` are the logger's), see `observe_batch`; at the end of the run the
    shipper delivers for up to `records_timeout_s` (what is left stays in its spool, sent by
    the next run on the same spool directory).
    """

    def __init__(
        self,
        profile: Profile | str | os.PathLike[str],
        *,
        job: str,
        pushgateway: str | None,
        es_url: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        environment: str = "production",
        records_timeout_s: float = 300.0,
        timeout_s: float = 10.0,
        push_attempts: int = 3,
        raise_on_push_error: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **shipper_options: Any,
    ) -> None:
        if not isinstance(job, str) or not job.strip():
            raise ValueError("job: the batch job's name, a non-empty string")
        if push_attempts < 1:
            raise ValueError("push_attempts must be at least 1")
        if not isinstance(profile, Profile):
            profile = Profile.load(profile)
        self.job = job
        self.pushgateway = pushgateway
        # a URL that is not one raises here, before the job's work
        self._gateway = None if pushgateway is None else Pushgateway(
            pushgateway, timeout_s=timeout_s, attempts=push_attempts, sleep=sleep)
        self.timeout_s = timeout_s
        self.push_attempts = push_attempts
        self.raise_on_push_error = raise_on_push_error
        self.clock, self.sleep = clock, sleep
        # A private registry and no multi-process directory: the run's counts are its own.
        self.monitor = ModelMonitor(profile, CollectorRegistry(), clock=clock,
                                    multiproc_directory=None)
        self.records: Any = None
        self.records_timeout_s = records_timeout_s
        self._queue_bound = 0
        if es_url is not None:
            from mlmon.log_shipper.facade import PredictionLogger
            from mlmon.log_shipper.shipper import Shipper

            # A job produces rows faster than the shipper spools them: it waits while the
            # shipper's queue is half full rather than let the queue drop rows (queue_full).
            queue = shipper_options.get(
                "queue_size", inspect.signature(Shipper).parameters["queue_size"].default)
            self._queue_bound = int(queue) // 2

            # the run's monitor: each row is observed once, by the logger, flags and all
            self.records = PredictionLogger.from_profile(
                profile, service_name=job, environment=environment, es_url=es_url,
                spool_dir=spool_dir, monitor=self.monitor, **shipper_options)
        self.started_at = self.monitor.loaded_at
        self.ended_at: float | None = None
        self.rows = 0
        self.outcome: str | None = None  # "success" | "failure" once ended
        self.push_error: str | None = None
        self.failed_pushes = 0  # push attempts that failed (each retry counts)

    @property
    def grouping_key(self) -> dict[str, str]:
        """The Pushgateway group of this job and model version (besides job=mlmon_batch)."""
        return {N.BATCH_LABEL: self.job, "model": self.monitor.model,
                "model_version": self.monitor.model_version}

    # ---- scoring -------------------------------------------------------------------------

    def observe_batch(self, features: Any, predictions: Any = None, *, scores: Any = None,
                      columns: Any = None, ids: Any = None) -> BatchObservation:
        """Count a batch of scored rows (as `ModelMonitor.observe_batch`); never raises.

        With `es_url`, every row also goes to Elasticsearch, `event.id` from `ids` (one per
        row; None: generated): rows are then observed one by one, so each record carries its
        own flags for the red-flag searches.
        """
        if self.records is None:
            obs = self.monitor.observe_batch(features, predictions, scores=scores,
                                             columns=columns)
        else:
            obs = self._record_rows(features, predictions, scores, ids)
        self.rows += obs.rows
        return obs

    def _record_rows(self, features: Any, predictions: Any, scores: Any,
                     ids: Any) -> BatchObservation:
        try:
            rows = _records(features)
            n = len(rows)
            preds = [None] * n if predictions is None else _as_list(predictions)
            score_list = [None] * n if scores is None else _as_list(scores)
            id_list = [None] * n if ids is None else [None if i is None else str(i)
                                                      for i in _as_list(ids)]
            if not len(preds) == len(score_list) == len(id_list) == n:
                self.monitor._reject("batch_length_mismatch")
                return BatchObservation(0, (), "batch_length_mismatch")
        except Exception:  # noqa: BLE001 - like observe_batch: counted, never raised
            self.monitor._reject("bad_batch")
            return BatchObservation(0, (), "bad_batch")
        record, shipper = self.records.record, self.records.shipper
        for i, (row, y, s, rid) in enumerate(zip(rows, preds, score_list, id_list, strict=True)):
            if i % _SLICE == 0:
                while shipper.queue_depth() > self._queue_bound:
                    self.sleep(0.005)
            record(row, y, scores=s, request_id=rid)
        return BatchObservation(n)

    # ---- the end of the run ----------------------------------------------------------------

    def run_values(self) -> dict[str, float]:
        """The run series' values (by series name) as the run stands."""
        end = self.clock() if self.ended_at is None else self.ended_at
        values = {
            N.BATCH_RUN_SUCCESS.name: _RUN_ENDED.get(self.outcome or "", 0.0),
            N.BATCH_RUN_ROWS.name: float(self.rows),
            N.BATCH_RUN_DURATION.name: end - self.started_at,
            N.BATCH_RUN_START.name: self.started_at,
            N.BATCH_RUN_END.name: end,
        }
        if self.outcome == "success":
            values[N.BATCH_LAST_SUCCESS.name] = end
        return values

    def succeed(self) -> None:
        """End the run as a success and push its counts (done by `with` on a normal exit)."""
        self._end("success")

    def fail(self) -> None:
        """End the run as a failure and push its outcome (done by `with` on an exception)."""
        self._end("failure")

    def _end(self, outcome: str) -> None:
        if self.outcome is not None:
            return  # ended already: `with` after an explicit fail() pushes nothing more
        self.outcome, self.ended_at = outcome, self.clock()
        if self.records is not None:
            if not self.records.close(self.records_timeout_s):
                log.warning("mlmon batch %s: not every record reached Elasticsearch within "
                            "%.0f s (they stay in the spool for the next run)", self.job,
                            self.records_timeout_s)
        if self._gateway is None:
            return
        if outcome == "success":  # PUT: this run's counts replace the last run's
            self._push(self._registry(N.BATCH_SERIES, with_counts=True), replace=True)
        else:  # POST: the run series only, the last success's counts stay
            self._push(self._registry(N.BATCH_FAILURE_SERIES, with_counts=False), replace=False)

    def _registry(self, series: tuple[N.Series, ...], with_counts: bool) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_PushCollector(self, series, with_counts))
        return registry

    def _push(self, registry: CollectorRegistry, *, replace: bool) -> None:
        assert self._gateway is not None
        try:
            attempts = self._gateway.push(N.BATCH_PUSH_JOB, registry, self.grouping_key,
                                    replace=replace)
        except PushError as exc:
            self.failed_pushes += exc.attempts
            self.push_error = str(exc)
            log.warning("mlmon batch %s: %s", self.job, self.push_error)
            if self.raise_on_push_error:
                raise
            return
        self.failed_pushes += attempts - 1
        self.push_error = None

    def __enter__(self) -> BatchRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.succeed()
            return
        try:
            self.fail()
        except PushError:
            pass  # the job's own exception is the one to see; push_error says the rest


def _records(features: Any) -> list[Mapping[str, Any]]:
    """Rows as dicts from a DataFrame, a dict of columns or a list of dicts."""
    if hasattr(features, "to_dict") and hasattr(features, "columns"):
        return list(features.to_dict("records"))
    if isinstance(features, Mapping):
        names = list(features)
        columns = [_as_list(features[k]) for k in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    rows = list(features)
    if not all(isinstance(r, Mapping) for r in rows):
        raise TypeError("rows must be mappings")
    return rows


def _as_list(x: Any) -> list[Any]:
    return list(x.tolist()) if hasattr(x, "tolist") else list(x)
