"""`PredictionLogger.record_outcome` against a real Elasticsearch: joined off the request path,
counted into the service's own monitor, and counted by reason when Elasticsearch is down."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from prometheus_client import CollectorRegistry

from mlmon.exporter.monitor import ModelMonitor
from mlmon.exporter.profile import Profile
from mlmon.log_shipper import es_assets
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.join import Label, OutcomeJoiner
from mlmon.log_shipper.outcome_worker import OutcomeWorker
from tests.integration.es_server import (  # noqa: F401
    ElasticsearchServer,
    es_restartable,
    es_server,
    es_url,
)
from tests.profiles import sample_profile_dict

pytestmark = pytest.mark.integration


def _logger(es: str, tmp_path: Path, **outcome_options: float) -> PredictionLogger:
    data = sample_profile_dict(classification=True)
    data["model"]["name"] = f"ro{uuid.uuid4().hex[:8]}"
    profile = Profile.from_dict(data)
    es_assets.install(Elasticsearch(es), profile)
    monitor = ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None)
    return PredictionLogger.from_profile(
        profile, service_name="api", environment="test", es_url=es, spool_dir=tmp_path,
        monitor=monitor, max_age_s=0.2, handle_signals=False,
        outcome_options={"retry_s": 0.2, **outcome_options})


def _value(logger: PredictionLogger, name: str, **labels: str) -> float:
    assert logger.monitor is not None
    base = {"model": logger.monitor.model, "model_version": logger.monitor.model_version}
    return logger.monitor.registry.get_sample_value(name, {**base, **labels}) or 0.0


def test_labels_right_after_their_predictions_are_joined_and_counted(
        es_url: str, tmp_path: Path) -> None:  # noqa: F811
    logger = _logger(es_url, tmp_path, unknown_grace_s=3.0)
    truth = {}
    for n in range(60):
        predicted = "yes" if n % 3 else "no"
        request_id = logger.record({"age": 30.0}, predicted, request_id=f"r{n}",
                                   scores={predicted: 0.8})
        assert request_id == f"r{n}"
        truth[request_id] = (predicted, "yes" if n % 2 else "no")
    began = time.perf_counter()
    # At once: most records are still in the shipper's queue (unknown ids, tried again).
    for request_id, (_p, actual) in truth.items():
        assert logger.record_outcome(request_id, actual)
    assert logger.record_outcome("r0", "yes")             # a second label: duplicate
    for k in range(3):
        assert logger.record_outcome(f"never-{k}", "no")  # unknown once the grace is over
    assert time.perf_counter() - began < 2.0  # queued, not joined, in the caller's thread
    deadline = time.monotonic() + 60
    expected = len(truth) + 4
    while logger._outcomes is not None and logger._outcomes[1].joined < expected:
        assert time.monotonic() < deadline, logger._outcomes[1].joined
        time.sleep(0.2)
    for predicted in ("no", "yes"):
        for actual in ("no", "yes"):
            n = sum(1 for p, a in truth.values() if (p, a) == (predicted, actual))
            assert _value(logger, "mlmon_outcome_class_total", predicted_class=predicted,
                          actual_class=actual) == n
    assert _value(logger, "mlmon_outcome_rejected_total", reason="duplicate") == 1
    assert _value(logger, "mlmon_outcome_rejected_total", reason="unknown_id") == 3
    assert logger.close(timeout=30) and logger.errors == 0


def test_labels_while_elasticsearch_is_down_are_counted_es_unavailable(
        es_restartable: ElasticsearchServer, tmp_path: Path) -> None:  # noqa: F811
    logger = _logger(es_restartable.url, tmp_path, max_wait_s=1.0)
    es_restartable.stop()
    began = time.perf_counter()
    for n in range(5):
        assert logger.record_outcome(f"r{n}", "yes")
    assert time.perf_counter() - began < 1.0  # the caller never waits for Elasticsearch
    deadline = time.monotonic() + 60
    while _value(logger, "mlmon_outcome_rejected_total", reason="es_unavailable") < 5:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _value(logger, "mlmon_outcome_rejected_total", reason="es_unavailable") == 5
    logger.close(timeout=10)
    assert logger.errors == 0


def test_record_outcome_without_elasticsearch_is_counted_in_errors() -> None:
    profile = Profile.from_dict(sample_profile_dict(classification=True))
    logger = PredictionLogger.from_profile(
        profile, service_name="api", environment="test",
        monitor=ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None))
    assert logger.record_outcome("r1", "yes") is False
    assert logger.errors == 1


def test_a_forked_child_joins_with_a_worker_of_its_own(es_url: str,  # noqa: F811
                                                       tmp_path: Path) -> None:
    import os

    logger = _logger(es_url, tmp_path / "parent")
    for request_id in ("before-fork", "in-child"):
        logger.record({"age": 30.0}, "yes", request_id=request_id, scores={"yes": 0.9})
    assert logger.shipper is not None and logger.shipper.flush(timeout=30)
    assert logger.record_outcome("before-fork", "yes")  # the parent's worker runs now
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; record_outcome makes its own
        status = 1
        try:
            assert logger.record_outcome("in-child", "no")
            assert logger._outcomes is not None and logger._outcomes[0] == os.getpid()
            deadline = time.monotonic() + 30
            while _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                         actual_class="no") < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            status = 0 if _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                                 actual_class="no") == 1 else 3
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    deadline = time.monotonic() + 30
    while _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                 actual_class="yes") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    logger.close(timeout=30)


def _recorded(es: str, tmp_path: Path, ids: list[str]) -> PredictionLogger:
    """A logger whose records of `ids` (predicted "yes") are in Elasticsearch."""
    logger = _logger(es, tmp_path)
    for request_id in ids:
        logger.record({"age": 30.0}, "yes", request_id=request_id, scores={"yes": 0.9})
    assert logger.shipper is not None and logger.shipper.flush(timeout=30)
    return logger


def _worker(logger: PredictionLogger, joiner: OutcomeJoiner, **options: float) -> OutcomeWorker:
    assert logger.monitor is not None
    return OutcomeWorker(joiner, **{"linger_s": 0.05, "retry_s": 0.2, **options})  # type: ignore[arg-type]


def _wait_joined(worker: OutcomeWorker, n: int) -> None:
    deadline = time.monotonic() + 60
    while worker.joined < n:
        assert time.monotonic() < deadline, worker.joined
        time.sleep(0.05)


class _RaisingOnce(OutcomeJoiner):
    """The real joiner, whose first join raises (a bug the worker must not lose labels to)."""

    raised = False

    def join(self, labels: Sequence[Label], *, uncounted: Collection[str] = ()) -> list[str]:
        if not self.raised:
            self.raised = True
            raise RuntimeError("a bug in the join")
        return super().join(labels, uncounted=uncounted)


class _Stuck(OutcomeJoiner):
    """The real joiner, whose first join waits for `release` (Elasticsearch slow to answer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered, self.release = threading.Event(), threading.Event()

    def join(self, labels: Sequence[Label], *, uncounted: Collection[str] = ()) -> list[str]:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(60)
        return super().join(labels, uncounted=uncounted)


def _joiner(cls: type[OutcomeJoiner], logger: PredictionLogger, es: str) -> Any:
    assert logger.monitor is not None
    return cls(Elasticsearch(es), logger.monitor.profile,
               {logger.monitor.model_version: logger.monitor})


def test_a_join_that_raises_counts_its_batch_join_error(es_url: str,  # noqa: F811
                                                        tmp_path: Path) -> None:
    ids = [f"j{n}" for n in range(5)]
    logger = _recorded(es_url, tmp_path, ids)
    worker = _worker(logger, _joiner(_RaisingOnce, logger, es_url), batch=3)
    for request_id in ids[:3]:  # one full batch: the join raises on it
        assert worker.submit(Label(request_id, "yes", time.time()))
    _wait_joined(worker, 3)
    for request_id in ids[3:]:  # the worker lives on: the next labels are joined
        assert worker.submit(Label(request_id, "no", time.time()))
    _wait_joined(worker, 5)
    worker.close(timeout=30)
    assert _value(logger, "mlmon_outcome_rejected_total", reason="join_error") == 3
    assert _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                  actual_class="no") == 2
    assert _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                  actual_class="yes") == 0
    assert worker.joined == 5 and worker.pending() == 0
    logger.close(timeout=30)


def test_labels_left_when_close_times_out_are_counted_closed(es_url: str,  # noqa: F811
                                                             tmp_path: Path) -> None:
    ids = [f"c{n}" for n in range(5)]
    logger = _recorded(es_url, tmp_path, ids)
    joiner = _joiner(_Stuck, logger, es_url)
    worker = _worker(logger, joiner, batch=2)
    for request_id in ids:
        assert worker.submit(Label(request_id, "yes", time.time()))
    assert joiner.entered.wait(30)  # the thread holds the first 2, stuck in the join
    worker.close(timeout=0.5)
    assert _value(logger, "mlmon_outcome_rejected_total", reason="closed") == 3
    assert worker.pending() == 0
    assert not worker.submit(Label("c0", "yes", time.time()))  # after close: counted closed
    assert _value(logger, "mlmon_outcome_rejected_total", reason="closed") == 4
    joiner.release.set()  # the batch in the thread's hands is settled when its join returns
    worker._thread.join(30)
    assert not worker._thread.is_alive()
    assert _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                  actual_class="yes") == 2
    assert worker.joined == 5
    logger.close(timeout=30)


def test_the_unknown_id_grace_runs_from_submit_not_from_an_old_arrival(
        es_url: str, tmp_path: Path) -> None:  # noqa: F811
    logger = _logger(es_url, tmp_path)
    worker = _worker(logger, _joiner(OutcomeJoiner, logger, es_url), unknown_grace_s=60.0)
    # A label that arrived an hour ago, submitted before its record reaches Elasticsearch:
    # its grace starts now, so the record written next is still found.
    assert worker.submit(Label("late", "no", time.time() - 3600.0))
    time.sleep(0.5)  # tried at least once while the record is not there
    assert worker.joined == 0 and worker.pending() == 1
    logger.record({"age": 30.0}, "yes", request_id="late", scores={"yes": 0.9})
    assert logger.shipper is not None and logger.shipper.flush(timeout=30)
    _wait_joined(worker, 1)
    assert _value(logger, "mlmon_outcome_class_total", predicted_class="yes",
                  actual_class="no") == 1
    assert _value(logger, "mlmon_outcome_rejected_total", reason="unknown_id") == 0
    worker.close(timeout=30)
    logger.close(timeout=30)
