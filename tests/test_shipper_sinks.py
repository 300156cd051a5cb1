"""The JSON-lines sink (file, TCP) and the one-call facade over exporter + shipper."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter.profile import Profile
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.logging_sink import JsonLinesSink
from mlmon.log_shipper.record import RecordBuilder
from mlmon.log_shipper.redact import Redactor

RECORD = {"@timestamp": "2026-11-22T10:00:00.000Z", "event": {"id": "e1"},
          "features": {"city": "paris", "email": "ann@example.org"}}


def test_file_sink_writes_the_record_as_one_sorted_json_line(tmp_path: Path) -> None:
    path = tmp_path / "records.log"
    sink = JsonLinesSink.file(str(path), logger_name="mlmon.test.file")
    sink.emit(RECORD)
    sink.emit({**RECORD, "event": {"id": "e2"}})
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [RECORD, {**RECORD, "event": {"id": "e2"}}]
    assert lines[0] == json.dumps(RECORD, sort_keys=True, separators=(",", ":"))


def test_tcp_sink_speaks_json_lines_and_redacts(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    reader = threading.Thread(target=accept)
    reader.start()
    redactor = Redactor({"features.email": "mask"})
    sink = JsonLinesSink.tcp("127.0.0.1", server.getsockname()[1], redactor=redactor,
                             logger_name="mlmon.test.tcp")
    sink.emit(RECORD)
    sink.close()
    reader.join(5)
    server.close()
    (line,) = b"".join(received).splitlines()
    assert json.loads(line)["features"] == {"city": "paris", "email": "***"}
    assert RECORD["features"]["email"] == "ann@example.org"  # the caller's dict is untouched


def test_facade_feeds_the_exporter_and_the_log_with_its_flags(
        sample_profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "records.log"
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="churn-api", environment="test", registry=registry,
        log_sink=JsonLinesSink.file(str(path), logger_name="mlmon.test.facade"))
    event_id = logger.record({"age": 200.0, "city": "oslo", "colour": "red"}, 0.5,
                             latency_s=0.01, request_id="req-1")
    assert event_id == "req-1"
    assert logger.close() is True
    (doc,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert doc["event"]["id"] == "req-1" and doc["event"]["duration"] == 10_000_000
    assert doc["flags"]["age"] == ["out_of_range"]
    assert "unseen" in doc["flags"]["city"]
    assert "missing" in doc["flags"]["income"]
    assert doc["unknown_features"] == ["colour"]
    assert registry.get_sample_value("mlmon_observations_total",
                                     {"model": "churn", "model_version": "3"}) == 1


def test_facade_never_raises(sample_profile: Profile) -> None:
    logger = PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                           registry=CollectorRegistry())
    assert logger.record(None, 1.0) is None  # type: ignore[arg-type]
    assert logger.errors == 1


def _model_sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"model": "churn", "model_version": "3", **labels})


def _logged(sample_profile: Profile, tmp_path: Path) -> tuple[PredictionLogger, CollectorRegistry,
                                                               Path]:
    path = tmp_path / "records.log"
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="churn-api", environment="test", registry=registry,
        log_sink=JsonLinesSink.file(str(path), logger_name=f"mlmon.test.{tmp_path.name}"))
    return logger, registry, path


def test_track_request_counts_latency_once_and_the_record_keeps_it(
        sample_profile: Profile, tmp_path: Path) -> None:
    logger, registry, path = _logged(sample_profile, tmp_path)
    latency = "mlmon_inference_latency_seconds_count"
    for i in range(2):
        with logger.track_request():
            assert _model_sample(registry, "mlmon_requests_in_flight") == 1
            logger.record({"age": 30.0, "city": "paris"}, 0.5, request_id=f"a-{i}")
            logger.record({"age": 31.0, "city": "rome"}, 0.4, latency_s=0.25, request_id=f"b-{i}")
        assert _model_sample(registry, "mlmon_requests_in_flight") == 0
        assert _model_sample(registry, latency) == i + 1  # +1 per request, not per record
    assert _model_sample(registry, "mlmon_requests_total", outcome="ok") == 2
    assert _model_sample(registry, "mlmon_observations_total") == 4
    assert logger.close() is True
    docs = {d["event"]["id"]: d for d in map(json.loads, path.read_text().splitlines())}
    # Without latency_s the record carries the time since the request started; with it, that.
    assert docs["a-0"]["event"]["duration"] > 0
    assert docs["b-0"]["event"]["duration"] == 250_000_000
    # Outside a request record() counts the latency itself, as before.
    logger.record({"age": 30.0}, 0.5, latency_s=0.01)
    assert _model_sample(registry, latency) == 3


def test_track_request_counts_an_error_when_the_block_raises(
        sample_profile: Profile, tmp_path: Path) -> None:
    logger, registry, _path = _logged(sample_profile, tmp_path)
    try:
        with logger.track_request():
            raise RuntimeError("model failed")
    except RuntimeError:
        pass
    with logger.track_request() as request:
        request.error()
    assert _model_sample(registry, "mlmon_requests_total", outcome="error") == 2
    assert _model_sample(registry, "mlmon_requests_in_flight") == 0
    assert _model_sample(registry, "mlmon_inference_latency_seconds_count") == 2
    logger.close()


def test_a_request_of_another_monitor_does_not_hide_this_loggers_latency(
        sample_profile: Profile, tmp_path: Path) -> None:
    logger, registry, _path = _logged(sample_profile, tmp_path)
    other = PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                          registry=CollectorRegistry())
    with other.track_request():
        logger.record({"age": 30.0}, 0.5, latency_s=0.01)
    assert _model_sample(registry, "mlmon_inference_latency_seconds_count") == 1
    logger.close()


def test_two_sinks_never_see_each_others_records(tmp_path: Path) -> None:
    # Each sink has its own logger and queue: a record for the sink with a redactor must not
    # reach another sink (raw, since that one redacts nothing), and vice versa.
    private = JsonLinesSink.file(str(tmp_path / "pii.log"),
                                 redactor=Redactor({"features.email": "mask"}))
    other = JsonLinesSink.file(str(tmp_path / "other.log"))
    private.emit(RECORD)
    other.emit({**RECORD, "event": {"id": "e2"}, "features": {}})
    private.close()
    other.close()
    pii = [json.loads(line) for line in (tmp_path / "pii.log").read_text().splitlines()]
    rest = [json.loads(line) for line in (tmp_path / "other.log").read_text().splitlines()]
    assert [r["event"]["id"] for r in pii] == ["e1"]
    assert pii[0]["features"]["email"] == "***"
    assert [r["event"]["id"] for r in rest] == ["e2"]
    assert "ann@example.org" not in (tmp_path / "other.log").read_text()


def test_facade_refuses_a_redaction_rule_for_a_feature_the_profile_lacks(
        sample_profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A typo in a rule must stop the service at start-up, not silently ship the raw value.
    with pytest.raises(ValueError, match="no feature 'ctiy'"):
        PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                      registry=CollectorRegistry(),
                                      redactor=Redactor({"features.ctiy": "mask"}))
    monkeypatch.setenv("MLMON_REDACT", "features.reviwe=drop")
    with pytest.raises(ValueError, match="no feature 'reviwe'"):
        PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                      registry=CollectorRegistry())


def test_facade_redaction_reaches_the_log_sink_too(
        sample_profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLMON_REDACT names what must never leave the process: by Elasticsearch or by a log line.
    monkeypatch.setenv("MLMON_REDACT", "features.city=drop,features.review=mask")
    path = tmp_path / "records.jsonl"
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="s", environment="e", registry=CollectorRegistry(),
        log_sink=JsonLinesSink.file(str(path)))
    logger.record({"age": 40.0, "city": "paris", "review": "ann@example.org wrote"}, 0.5)
    assert logger.close() is True
    (doc,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert "city" not in doc["features"] and doc["features"]["review"] == "***"
    assert "ann@example.org" not in path.read_text() and "paris" not in path.read_text()


def test_a_sink_with_its_own_redactor_keeps_it(
        sample_profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMON_REDACT", "features.review=mask")
    path = tmp_path / "records.jsonl"
    own = Redactor({"features.review": "drop"})
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="s", environment="e", registry=CollectorRegistry(),
        log_sink=JsonLinesSink.file(str(path), redactor=own))
    logger.record({"review": "secret words"}, 0.5)
    assert logger.close() is True
    (doc,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert "review" not in doc["features"]


def test_a_refused_start_registers_nothing_so_a_corrected_retry_works(
        sample_profile: Profile) -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="no feature 'ctiy'"):
        PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                      registry=registry,
                                      redactor=Redactor({"features.ctiy": "mask"}))
    logger = PredictionLogger.from_profile(sample_profile, service_name="s", environment="e",
                                           registry=registry,
                                           redactor=Redactor({"features.city": "mask"}))
    logger.record({"city": "paris"}, 0.5)
    assert registry.get_sample_value("mlmon_observations_total",
                                     {"model": "churn", "model_version": "3"}) == 1
    logger.close()


class _Unbuildable(dict):  # type: ignore[type-arg]  # a record whose build fails when read
    def keys(self):  # type: ignore[override]
        raise RuntimeError("cannot build")

    def __iter__(self):  # type: ignore[override]
        raise RuntimeError("cannot build")


def test_the_sink_counts_what_it_could_not_build_or_write(tmp_path: Path) -> None:
    path = tmp_path / "records.log"
    sink = JsonLinesSink.file(str(path))
    sink.emit(RECORD)
    sink.emit(_Unbuildable())
    sink.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [RECORD]
    assert sink.drops == {"build_error": 1, "queue_full": 0, "write_error": 0}
    closed = io.StringIO()
    closed.close()  # every write raises: the handler reports it through handleError
    broken = JsonLinesSink(logging.StreamHandler(closed))
    broken.emit(RECORD)
    broken.close()
    assert broken.drops == {"build_error": 0, "queue_full": 0, "write_error": 1}
    assert broken.dropped == 1


def test_tcp_sink_counts_lines_it_cannot_send() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: Logstash is down
    sink = JsonLinesSink.tcp("127.0.0.1", port)
    for _ in range(5):
        sink.emit(RECORD)
    sink.close()
    assert sink.drops == {"build_error": 0, "queue_full": 0, "write_error": 5}


def test_a_full_sink_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    gate = threading.Event()

    class SlowHandler(logging.Handler):  # holds the listener until the queue has filled up
        def emit(self, record: logging.LogRecord) -> None:
            gate.wait(10)

    sink = JsonLinesSink(SlowHandler(), queue_size=3)
    for _ in range(10):
        sink.emit(RECORD)
    gate.set()
    sink.close()
    # One record may already be in the handler when the others arrive, three fit the queue;
    # close() with a full queue waits for room instead of failing.
    assert 6 <= sink.drops["queue_full"] <= 7


def test_record_hands_an_unbuilt_record_to_the_sinks_and_returns_its_id(
        sample_profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "records.log"
    sink = JsonLinesSink.file(str(path))
    logger = PredictionLogger.from_profile(sample_profile, service_name="api", environment="t",
                                           log_sink=sink, registry=CollectorRegistry())
    event_id = logger.record({"age": 30, "city": "paris"}, 0.4, request_id="r" * 700)
    logger.close()
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["event"]["id"] == event_id
    assert event_id is not None and event_id.startswith("sha256:")
    assert json.loads(line)["event"]["original_id"] == "r" * 700


def test_logger_and_sink_errors_are_exported(sample_profile: Profile, tmp_path: Path) -> None:
    from mlmon.log_shipper.logger_metrics import PredictionLoggerCollector

    registry = CollectorRegistry()
    sink = JsonLinesSink.file(str(tmp_path / "records.log"))
    logger = PredictionLogger.from_profile(sample_profile, service_name="api", environment="t",
                                           log_sink=sink, registry=registry)
    registry.register(PredictionLoggerCollector(logger))

    assert logger.record({"age": 30}, 0.4) is not None
    assert logger.record(None, 0.4) is None  # type: ignore[arg-type]  # fails inside: counted
    sink.emit(_Unbuildable())
    logger.close()
    assert registry.get_sample_value("mlmon_prediction_logger_errors_total") == 1
    for reason, count in (("build_error", 1), ("queue_full", 0), ("write_error", 0)):
        assert registry.get_sample_value("mlmon_log_sink_dropped_total",
                                         {"reason": reason}) == count


def test_a_record_that_fails_to_build_is_dropped_as_prepare_error(
        sample_profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The facade's shipper builds each queued record in its spool writer (prepare=materialize):
    # a build that raises there is counted by reason, the other records still reach the spool.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    logger = PredictionLogger.from_profile(sample_profile, service_name="api", environment="t",
                                           es_url=closed_url, spool_dir=tmp_path / "spool",
                                           registry=CollectorRegistry())
    real_build = RecordBuilder.build

    def build(self: RecordBuilder, features: Any, *args: Any, **kwargs: Any) -> Any:
        if features.get("age") == 13:
            raise RuntimeError("cannot build")
        return real_build(self, features, *args, **kwargs)

    monkeypatch.setattr(RecordBuilder, "build", build)
    for age in (30, 13, 31):
        assert logger.record({"age": age, "city": "paris"}, 0.4) is not None
    assert logger.shipper is not None
    logger.close(timeout=2)
    assert logger.shipper.stats.dropped["prepare_error"] == 1
    assert logger.shipper.stats.spooled == 2
