"""Training runs reported to the Pushgateway: when a model was trained, on what, whether it worked.

A training or retraining pipeline ends before Prometheus would scrape it, so it pushes one
report at the end of each run, success or failure, into one Pushgateway group per (job, model):

    with TrainingRun("retrain", "churn", pushgateway="http://127.0.0.1:9091") as run:
        model = fit(frame)
        run.succeeded(version="4", rows=len(frame), metrics={"accuracy": 0.91},
                      profile="profile.json")
    # an exception inside the block reports a failed run (then propagates)

or, from a scheduler, one line: `mlmon training-run --job retrain --profile p.json
--pushgateway URL` (mlmon/exporter/cli_training.py).

Each push replaces, within the group, only the families it carries (the Pushgateway's POST): every
run replaces the run's own series (when it ended, success 0/1, duration, rows), a successful run
also the newest model's (its trained time with version and profile sha, its evaluation metrics,
the time of the last success). So a failed run leaves the record of the newest trained model and
of the last success as they were: the alerts compare the live model with it (a trained model never
deployed) and the last success with the job's schedule (a late retraining).

A push is retried while the Pushgateway does not answer or answers 5xx, not when it refuses the
report (4xx): mlmon.exporter.pushgateway, whose PushError is the cause of the
TrainingReportError raised when the report could not be pushed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from prometheus_client import CollectorRegistry, Gauge

import mlmon.names as N
from mlmon.exporter.layout import trained_timestamp
from mlmon.exporter.profile import Profile
from mlmon.exporter.pushgateway import TIMEOUT_S, PushError, Pushgateway

PUSH_TIMEOUT_S = TIMEOUT_S
_log = logging.getLogger("mlmon.training")


class TrainingReportError(Exception):
    """The run could not be reported: a bad value, or the Pushgateway did not take the push."""


@dataclass(frozen=True)
class TrainedModel:
    """What a successful run produced: the model's version, when it was trained, its profile."""

    version: str
    trained_at: float
    profile_sha: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: Profile | str | os.PathLike[str],
                     metrics: Mapping[str, float] | None = None,
                     version: str | None = None, trained_at: float | None = None) -> TrainedModel:
        """The version, trained time and sha of a profile; the profile's baseline metrics unless
        `metrics` are given. The trained time is the one the exporter will export for the model
        once deployed, which is what makes the two comparable; a profile without `trained_at`
        reports now (and its live model exports no trained time to compare with)."""
        if not isinstance(profile, Profile):
            profile = Profile.load(profile)
        when = trained_at if trained_at is not None else trained_timestamp(profile)
        if when is None:
            when = time.time()
        return cls(version=version or profile.model_version, trained_at=when,
                   profile_sha=profile.sha,
                   metrics=dict(profile.baseline_metrics if metrics is None else metrics))


@dataclass(frozen=True)
class TrainingReport:
    """One run as pushed: `model` is None for a failed run."""

    job: str
    model_name: str
    ended_at: float
    duration_s: float
    rows: int | None = None
    model: TrainedModel | None = None

    @property
    def succeeded(self) -> bool:
        return self.model is not None

    def registry(self) -> CollectorRegistry:
        """The series of this report (without job and model: the grouping key adds them)."""
        _check(self)
        registry = CollectorRegistry(auto_describe=True)

        def gauge(series: N.Series) -> Gauge:
            return Gauge(series.name, series.help, list(series.labels), registry=registry)

        gauge(N.TRAINING_RUN_TIMESTAMP).set(self.ended_at)
        gauge(N.TRAINING_RUN_SUCCESS).set(1.0 if self.succeeded else 0.0)
        gauge(N.TRAINING_RUN_DURATION).set(self.duration_s)
        gauge(N.TRAINING_RUN_ROWS).set(math.nan if self.rows is None else float(self.rows))
        if self.model is not None:
            gauge(N.TRAINING_LAST_SUCCESS).set(self.ended_at)
            gauge(N.TRAINING_MODEL_TRAINED).labels(
                self.model.version, self.model.profile_sha).set(self.model.trained_at)
            metric = gauge(N.TRAINING_MODEL_METRIC)
            for name, value in sorted(self.model.metrics.items()):
                metric.labels(name).set(value)
        return registry

    def push(self, pushgateway: str | Pushgateway, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        """POST this report into the group (job, model) of `pushgateway` (a URL, or a client
        whose timeout and retries are used instead); TrainingReportError when it cannot."""
        registry = self.registry()
        try:
            gateway = (pushgateway if isinstance(pushgateway, Pushgateway)
                       else Pushgateway(pushgateway, timeout_s=timeout_s))
        except ValueError as exc:  # not a URL
            raise TrainingReportError(str(exc)) from exc
        try:
            gateway.push(self.job, registry, {"model": self.model_name}, replace=False)
        except PushError as exc:
            raise TrainingReportError(str(exc)) from exc


def _check(report: TrainingReport) -> None:
    for what, text in (("job", report.job), ("model", report.model_name)):
        if not text:
            raise TrainingReportError(f"the {what} name is empty")
    if not (math.isfinite(report.duration_s) and report.duration_s >= 0):
        raise TrainingReportError(f"duration {report.duration_s!r} s is not a time >= 0")
    if report.rows is not None and report.rows < 0:
        raise TrainingReportError(f"rows {report.rows} is negative")
    if report.model is not None:
        if not report.model.version:
            raise TrainingReportError("the model version is empty")
        bad = {k: v for k, v in report.model.metrics.items() if not math.isfinite(v)}
        if bad:
            raise TrainingReportError(f"metric(s) not a finite number: {bad}")


class TrainingRun:
    """Times a training run and reports it when it ends; a failure if the block raises.

    >>> with TrainingRun("retrain", "churn", pushgateway="http://127.0.0.1:9091") as run:
    ...     run.succeeded(version="4", rows=120_000, metrics={"accuracy": 0.91})

    Leaving the block without `succeeded(...)` (or after `failed(...)`) reports a failed run.
    A `pushgateway` that is not a URL raises TrainingReportError here, before the training.
    A report the Pushgateway does not take raises TrainingReportError, unless the block raised:
    then the block's own exception propagates (it is why the run failed) and the report's error
    is logged (logger `mlmon.training`), not lost.
    """

    def __init__(self, job: str, model: str, pushgateway: str,
                 timeout_s: float = PUSH_TIMEOUT_S) -> None:
        self.job, self.model_name, self.pushgateway = job, model, pushgateway
        self.timeout_s = timeout_s
        try:
            self._gateway = Pushgateway(pushgateway, timeout_s=timeout_s)
        except ValueError as exc:
            raise TrainingReportError(str(exc)) from exc
        self._started = time.monotonic()
        self._rows: int | None = None
        self._model: TrainedModel | None = None

    def succeeded(self, version: str | None = None, rows: int | None = None,
                  metrics: Mapping[str, float] | None = None,
                  profile: Profile | str | os.PathLike[str] | None = None,
                  trained_at: float | None = None) -> None:
        """The run produced a model: its version, trained time and sha from `profile` when
        given (`version`, `trained_at` override), else `version` and `trained_at` (default now)."""
        if profile is not None:
            self._model = TrainedModel.from_profile(profile, metrics, version, trained_at)
        elif version is None:
            raise TrainingReportError("a successful run needs the model version or its profile")
        else:
            self._model = TrainedModel(version, time.time() if trained_at is None else trained_at,
                                       metrics=dict(metrics or {}))
        self._rows = rows

    def failed(self, rows: int | None = None) -> None:
        """The run produced no model (reported when the block ends)."""
        self._model, self._rows = None, rows

    def __enter__(self) -> TrainingRun:
        self._started = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        model = self._model if kind is None else None
        report = TrainingReport(self.job, self.model_name, ended_at=time.time(),
                                duration_s=time.monotonic() - self._started, rows=self._rows,
                                model=model)
        try:
            report.push(self._gateway)
        except TrainingReportError as error:
            if kind is None:
                raise
            _log.error("the failed run was not reported: %s", error)
