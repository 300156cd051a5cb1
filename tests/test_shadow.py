"""Shadow mode: the challenger runs off the request path, bounded, counted, never raising.

The challenger functions are module-level so that they pickle: by default they run in a child
process (tests/test_shadow_process.py has its failures). The tests that hold a challenger
with a `threading.Event` run it in the worker thread (`isolation="thread"`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter.monitor import ModelMonitor
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.record import RecordBuilder, challenger_record_id, stable_id
from tests.profiles import sample_profile_dict

FEATURES = {"age": 40.0, "income": 1500.0, "city": "paris", "review": "good service"}


class ListSink:
    """Collects the records a logger emits (what a JSON-lines sink would write)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def emit(self, record: Mapping[str, Any]) -> None:
        with self.lock:
            self.records.append(dict(record))

    def close(self) -> None:
        pass


def quarter(features: Mapping[str, Any]) -> float:
    return 0.25


def income_plus_offset(features: Mapping[str, Any]) -> float:
    return float(features["income"]) / 1000 + float(features["offset"])


# the challenger's answers by the request's "n"
ANSWERS = [("yes", {"yes": 0.9, "no": 0.1}), ("no", {"yes": 0.2, "no": 0.8}),
           ("maybe", {"maybe": 1.0}), ("yes", {"yes": 0.6, "no": 0.4})]


def nth_answer(features: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    return ANSWERS[int(features["n"])]


def broken(features: Mapping[str, Any]) -> float:
    raise RuntimeError("challenger bug")


def not_a_number(features: Mapping[str, Any]) -> float:
    return float("nan")


def _profiles(classification: bool = False) -> tuple[Profile, Profile]:
    champion = Profile.from_dict(sample_profile_dict(classification))
    return champion, dataclasses.replace(champion, model_version="4")


def _champion(profile: Profile, registry: CollectorRegistry,
              sink: ListSink | None = None) -> PredictionLogger:
    builder = RecordBuilder(model=profile.model_name, model_version=profile.model_version,
                            service_name="churn-api", environment="test", profile=profile)
    return PredictionLogger(builder, monitor=ModelMonitor(profile, registry), log_sink=sink)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"model": "churn", **labels})
    return 0.0 if value is None else value


def test_both_records_share_the_request_id_with_their_role() -> None:
    registry, sink = CollectorRegistry(), ListSink()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry, sink)
    logger.add_challenger(challenger_profile, quarter)
    assert logger.record(FEATURES, 0.2, request_id="req-1") == "req-1"
    assert logger.close()
    by_role = {r["model"]["role"]: r for r in sink.records}
    assert by_role["champion"]["event"]["id"] == "req-1"
    assert by_role["challenger"]["event"]["id"] == "req-1.challenger"
    assert {r["trace"]["id"] for r in sink.records} == {"req-1"}
    assert by_role["champion"]["model"]["version"] == "3"
    assert by_role["challenger"]["model"]["version"] == "4"
    assert by_role["challenger"]["prediction"]["value"] == 0.25
    # without a request id: the champion's generated id is the challenger's trace id too
    logger = _champion(champion_profile, CollectorRegistry(), sink := ListSink())
    logger.add_challenger(challenger_profile, quarter)
    event_id = logger.record(FEATURES, 0.2)
    logger.close()
    assert {r["trace"]["id"] for r in sink.records} == {event_id}
    assert sorted(r["event"]["id"] for r in sink.records) == [event_id,
                                                              f"{event_id}.challenger"]


def test_a_label_finds_the_challengers_record_under_challenger_record_id() -> None:
    """The id the outcome join looks up (`stable_id(challenger_record_id(request id))`) is the
    `event.id` the shadow path gave the challenger's record: for a short id, one that the role
    suffix pushes over Elasticsearch's 512 bytes, and one over 512 bytes already (hashed)."""
    request_ids = ["req-1", "é" * 250 + "xyz", "long-" + "x" * 600]
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, CollectorRegistry(), sink := ListSink())
    logger.add_challenger(challenger_profile, quarter)
    for request_id in request_ids:
        logger.record(FEATURES, 0.2, request_id=request_id)
    assert logger.close()
    written = sorted(r["event"]["id"] for r in sink.records if r["model"]["role"] == "challenger")
    looked_up = sorted(stable_id(challenger_record_id(i))[0] for i in request_ids)
    assert written == looked_up
    assert looked_up[0] == "req-1.challenger"
    assert sum(i.startswith("sha256:") for i in looked_up) == 2  # the long ones: hash ids


def test_regression_agreement_and_differences_are_counted_exactly() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()  # reference prediction std 1.0
    logger = _champion(champion_profile, registry)
    # challenger = champion + the request's offset: |d| <= 0.1 (the default tolerance) agrees
    offsets = [0.0, 0.0625, -0.09375, 0.25, -0.375, 0.75, 2.0]  # exact in binary
    logger.add_challenger(challenger_profile, income_plus_offset)
    for offset in offsets:
        logger.record({**FEATURES, "offset": offset}, 1.5)
    logger.close()
    at = {"model_version": "4", "champion_version": "3"}
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="agree") == 3
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="disagree") == 4
    assert _value(registry, "mlmon_challenger_tolerance", **at) == pytest.approx(0.1)
    assert _value(registry, "mlmon_challenger_difference_count", **at) == 7
    assert _value(registry, "mlmon_challenger_difference_sum", **at) == pytest.approx(
        sum(offsets))
    # edges +-(0.05, 0.1, 0.25, 0.5, 1) x std and 0: d <= 0.25 holds for five offsets
    assert _value(registry, "mlmon_challenger_difference_bucket", **at, le="0.25") == 5
    assert _value(registry, "mlmon_challenger_difference_bucket", **at, le="-0.25") == 1
    # the challenger is monitored under its own version: its observations and latency
    assert _value(registry, "mlmon_observations_total", model_version="4") == 7
    assert _value(registry, "mlmon_inference_latency_seconds_count", model_version="4") == 7
    assert _value(registry, "mlmon_requests_total", model_version="4", outcome="ok") == 7
    assert _value(registry, "mlmon_model_role_info", model_version="3", role="champion",
                  champion_version="") == 1
    assert _value(registry, "mlmon_model_role_info", model_version="4", role="challenger",
                  champion_version="3") == 1


def test_classification_counts_class_pairs() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles(classification=True)
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, nth_answer, with_scores=True, workers=1)
    for n, champion_says in enumerate(("yes", "yes", "maybe", "perhaps")):
        logger.record({**FEATURES, "n": n}, champion_says)
    logger.close()
    at = {"model_version": "4", "champion_version": "3"}
    pairs = {(a, b): _value(registry, "mlmon_challenger_class_pair_total", **at,
                            champion_class=a, challenger_class=b)
             for a in ("no", "yes", "__unseen__") for b in ("no", "yes", "__unseen__")}
    assert {k: v for k, v in pairs.items() if v} == {
        ("yes", "yes"): 1, ("yes", "no"): 1, ("__unseen__", "__unseen__"): 1,
        ("__unseen__", "yes"): 1}
    # maybe/maybe agrees; perhaps/yes does not
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="agree") == 2
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="disagree") == 2
    assert _value(registry, "mlmon_prediction_score_count", model_version="4") == 4  # scores


class Gate:
    """A challenger that blocks until released, and says when it has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, features: Mapping[str, Any]) -> float:
        self.started.set()
        if not self.release.wait(30):
            raise TimeoutError("never released")
        return 0.0


def test_a_slow_challenger_is_off_the_request_path_and_sheds_beyond_max_pending() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    gate = Gate()
    challenger = logger.add_challenger(challenger_profile, gate, max_pending=2,
                                       isolation="thread")
    # the challenger blocks, yet every record() returns: it never waits for the challenger
    assert logger.record(FEATURES, 0.0) is not None
    assert gate.started.wait(10)
    for _ in range(9):
        assert logger.record(FEATURES, 0.0) is not None
    assert challenger.pending == 2
    at = {"model_version": "4", "champion_version": "3"}
    assert _value(registry, "mlmon_challenger_skipped_total", **at, reason="queue_full") == 7
    gate.release.set()
    assert logger.close()
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="agree") == 3
    assert _value(registry, "mlmon_observations_total", model_version="3") == 10


def test_close_counts_what_the_challenger_left_pending() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    gate = Gate()
    challenger = logger.add_challenger(challenger_profile, gate, max_pending=10,
                                       isolation="thread")
    logger.record(FEATURES, 0.0)
    assert gate.started.wait(10)
    for _ in range(4):
        logger.record(FEATURES, 0.0)
    assert not challenger.close(timeout=0.2)  # the first is still running at the deadline
    at = {"model_version": "4", "champion_version": "3"}
    assert _value(registry, "mlmon_challenger_skipped_total", **at, reason="closed") == 4
    logger.record(FEATURES, 0.0)  # after close: counted, not queued
    assert _value(registry, "mlmon_challenger_skipped_total", **at, reason="closed") == 5
    gate.release.set()


def test_a_failing_challenger_is_counted_and_never_reaches_the_caller() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, broken)
    for _ in range(3):
        assert logger.record(FEATURES, 0.0) is not None
    logger.close()
    at = {"model_version": "4", "champion_version": "3"}
    assert _value(registry, "mlmon_challenger_skipped_total", **at, reason="predict_error") == 3
    assert _value(registry, "mlmon_requests_total", model_version="4", outcome="error") == 3
    assert logger.errors == 0


def test_an_uncomparable_prediction_is_counted() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, not_a_number)
    logger.record(FEATURES, 0.0)
    logger.record(FEATURES, None)
    logger.close()
    at = {"model_version": "4", "champion_version": "3"}
    assert _value(registry, "mlmon_challenger_skipped_total", **at,
                  reason="not_comparable") == 2
    assert _value(registry, "mlmon_challenger_difference_count", **at) == 0


@pytest.mark.parametrize("change, message", [
    ({"model_version": "3"}, "both version"),
    ({"model_name": "fraud"}, "same model"),
])
def test_a_profile_that_cannot_be_a_challenger_is_refused(change: dict[str, str],
                                                          message: str) -> None:
    champion_profile, _ = _profiles()
    logger = _champion(champion_profile, CollectorRegistry())
    with pytest.raises(ValueError, match=message):
        logger.add_challenger(dataclasses.replace(champion_profile, **change), lambda f: 0.0)
    with pytest.raises(ValueError, match="classifiers"):
        logger.add_challenger(_profiles(classification=True)[1], lambda f: "yes")


def _worker_logger(directory: str, registry: CollectorRegistry) -> PredictionLogger:
    champion_profile, challenger_profile = _profiles()
    builder = RecordBuilder(model="churn", model_version="3", service_name="churn-api",
                            environment="test", profile=champion_profile)
    monitor = ModelMonitor(champion_profile, registry, multiproc_directory=directory)
    logger = PredictionLogger(builder, monitor=monitor)
    logger.add_challenger(challenger_profile, income_plus_offset)
    return logger


def test_worker_processes_sum_their_comparisons(tmp_path) -> None:
    # gunicorn-style: the logger is made before the fork; each worker starts its own child
    # process for the challenger and counts into its own file of the multi-process
    # directory, and a scrape in any process sums them all
    import multiprocessing

    directory = str(tmp_path)
    registry = CollectorRegistry()
    logger = _worker_logger(directory, registry)

    def worker(offsets: list[float]) -> None:
        for offset in offsets:
            logger.record({**FEATURES, "offset": offset}, 1.5)
        logger.close()

    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=worker, args=(offsets,))
                for offsets in ([0.0, 0.0625, 2.0], [0.5, -0.03125])]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    worker([0.25])  # the parent serves requests too
    at = {"model_version": "4", "champion_version": "3"}
    # agree: 0, 0.0625, -0.03125 (|d| <= 0.1); disagree: 2, 0.5, 0.25
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="agree") == 3
    assert _value(registry, "mlmon_challenger_compared_total", **at, agreement="disagree") == 3
    assert _value(registry, "mlmon_challenger_difference_sum", **at) == 2.78125
    assert _value(registry, "mlmon_observations_total", model_version="4") == 6
    # the parent's own file, and the exited workers' compacted into one (as the monitors')
    files = sorted(p.name for p in tmp_path.glob("mlmon_challenger_*.db"))
    assert len(files) == 2 and files[1].endswith("_compacted.db")
    assert f"_{os.getpid()}_" in files[0]
    # a worker started later (another process, same directory) scrapes the same totals
    other = CollectorRegistry()
    _worker_logger(directory, other)
    assert _value(other, "mlmon_challenger_compared_total", **at, agreement="agree") == 3
