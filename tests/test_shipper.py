"""The shipper without a reachable Elasticsearch: nothing is lost, nothing blocks, drops counted.

Elasticsearch itself is exercised in tests/integration/test_shipper*.py; here the cluster URL
points at a closed loopback port (a real "connection refused"), which is the outage case.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from mlmon.log_shipper.delivery import decode_spooled, encode_spooled
from mlmon.log_shipper.metrics import ShipperCollector, SpoolRootCollector
from mlmon.log_shipper.redact import Redactor
from mlmon.log_shipper.sender import Document, backoff_delay
from mlmon.log_shipper.shipper import Shipper, encode_json
from mlmon.log_shipper.spool import Spool


@pytest.fixture
def closed_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


def _record(i: int, **features: object) -> dict[str, object]:
    return {"@timestamp": "2026-11-22T10:00:00.000Z", "event": {"id": f"r{i}"},
            "features": {"n": i, **features}}


def _shipper(url: str, spool_dir: Path, **options: object) -> Shipper:
    defaults: dict[str, object] = dict(max_docs=10, max_age_s=0.05, initial_backoff_s=0.05,
                                       max_backoff_s=0.2, max_retries=0, handle_signals=False,
                                       sleep=lambda s: None)
    defaults.update(options)
    return Shipper(es=url, index="mlmon-predictions-test", spool_dir=spool_dir,
                   **defaults)  # type: ignore[arg-type]


def _spooled_ids(spool_dir: Path) -> list[str]:
    spool = Spool(spool_dir)
    batch = spool.peek(10_000, 1 << 30)
    return [decode_spooled(p).id for p in batch.records]


def test_an_outage_spools_every_record_in_order(closed_url: str, tmp_path: Path) -> None:
    durable: list[str] = []
    shipper = _shipper(closed_url, tmp_path, fsync="always", on_durable=durable.extend)
    assert all(shipper.ship(_record(i)) for i in range(95))
    assert shipper.close(timeout=0.5) is False  # nothing could be delivered
    assert _spooled_ids(tmp_path) == [f"r{i}" for i in range(95)]
    assert durable == [f"r{i}" for i in range(95)]
    assert shipper.stats.spooled == 95 and shipper.stats.queued == 95
    assert shipper.stats.shipped == 0 and sum(shipper.stats.dropped.values()) == 0


def test_redaction_happens_before_the_spool(closed_url: str, tmp_path: Path) -> None:
    redactor = Redactor({"features.email": "hash", "features.name": "drop"}, salt="x" * 16)
    shipper = _shipper(closed_url, tmp_path, redactor=redactor)
    shipper.ship(_record(1, email="ann@example.org", name="Ann Smith"))
    shipper.close(timeout=0.2)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("*.seg"))
    assert b"r1" in raw
    assert b"ann@example.org" not in raw and b"Ann Smith" not in raw


def test_queue_overflow_and_ship_after_close_are_counted(closed_url: str,
                                                         tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path, queue_size=1, max_age_s=60, max_docs=1000)
    accepted = sum(shipper.ship(_record(i)) for i in range(2000))
    assert accepted < 2000
    assert shipper.stats.dropped["queue_full"] == 2000 - accepted
    shipper.close(timeout=0.2)
    assert shipper.ship(_record(0)) is False
    assert shipper.stats.dropped["closed"] == 1


def test_a_full_spool_drops_and_counts(closed_url: str, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    shipper = _shipper(closed_url, tmp_path, spool_max_bytes=2000)
    for i in range(100):
        shipper.ship(_record(i))
    shipper.close(timeout=0.2)
    kept = len(_spooled_ids(tmp_path))
    assert 0 < kept < 100
    assert shipper.stats.dropped["spool_full"] == 100 - kept
    assert "dropped" in caplog.text


def test_unserializable_records_are_dropped_not_fatal(closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    shipper.ship({"event": {"id": "bad"}, "x": object()})
    shipper.ship({"features": {"n": 1}})  # no id: one is assigned before spooling
    shipper.close(timeout=0.2)
    assert shipper.stats.dropped["unserializable"] == 1
    (only,) = _spooled_ids(tmp_path)
    assert len(only) == 36


def test_health_series(closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    for i in range(5):
        shipper.ship(_record(i))
    shipper.close(timeout=0.2)
    registry = CollectorRegistry()
    registry.register(ShipperCollector(shipper.stats, shipper.queue_depth, shipper.spool_bytes))
    assert registry.get_sample_value("mlmon_shipper_queued_total") == 5
    assert registry.get_sample_value("mlmon_shipper_spooled_total") == 5
    assert registry.get_sample_value("mlmon_shipper_shipped_total") == 0
    assert registry.get_sample_value("mlmon_shipper_duplicate_ids_total") == 0
    assert registry.get_sample_value("mlmon_shipper_dropped_total", {"reason": "spool_full"}) == 0
    assert registry.get_sample_value("mlmon_shipper_queue_depth") == 0
    assert registry.get_sample_value("mlmon_shipper_spool_bytes") == shipper.spool_bytes() > 0
    assert registry.get_sample_value("mlmon_shipper_last_success_timestamp_seconds") is None


def test_sigterm_closes_and_chains_to_the_previous_handler(closed_url: str,
                                                           tmp_path: Path) -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        shipper = _shipper(closed_url, tmp_path, handle_signals=True, shutdown_timeout_s=0.2)
        shipper.ship(_record(1))
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
        assert seen == [signal.SIGTERM]
        assert shipper.ship(_record(2)) is False  # closed
        assert _spooled_ids(tmp_path) == ["r1"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_spool_payload_round_trip() -> None:
    doc = Document("id:with:colons", b'{"a":1}')
    assert decode_spooled(encode_spooled(doc)) == doc
    assert json.loads(decode_spooled(encode_spooled(doc)).source) == {"a": 1}


def test_fsync_always_from_many_threads_keeps_every_record(closed_url: str,
                                                           tmp_path: Path) -> None:
    # Callers append to the spool concurrently while the writer syncs and the sender peeks: no
    # record lost, torn or duplicated, and each thread's records stay in its own order.
    durable: list[str] = []
    shipper = _shipper(closed_url, tmp_path, fsync="always", on_durable=durable.extend)

    def produce(t: int) -> None:
        for i in range(300):
            assert shipper.ship({"event": {"id": f"t{t}-{i}"}, "features": {"n": i}})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shipper.close(timeout=0.5) is False
    ids = _spooled_ids(tmp_path)
    assert sorted(ids) == sorted(f"t{t}-{i}" for t in range(4) for i in range(300))
    for t in range(4):
        mine = [i for i in ids if i.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(300)]
    assert sorted(set(durable)) == sorted(ids)
    assert shipper.stats.queued == shipper.stats.spooled == 1200


def test_an_unknown_fsync_policy_is_refused(closed_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of always, interval, never"):
        _shipper(closed_url, tmp_path, fsync="sometimes")


def test_backoff_delay_doubles_from_initial_and_is_capped() -> None:
    assert [backoff_delay(a, 0.5, 30.0) for a in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(1, 0.2, 0.1) == 0.1  # the cap wins even on the first attempt


def test_prepare_builds_the_record_off_the_callers_thread_and_its_errors_are_counted(
        closed_url: str, tmp_path: Path) -> None:
    callers: list[str] = []

    def prepare(item: tuple[int, str]) -> dict[str, object]:
        callers.append(threading.current_thread().name)
        n, city = item
        if n == 3:
            raise ValueError("cannot build record 3")
        return _record(n, city=city)

    shipper = _shipper(closed_url, tmp_path, prepare=prepare)
    assert all(shipper.ship((i, "paris")) for i in range(5))
    shipper.close(timeout=0.2)
    assert _spooled_ids(tmp_path) == ["r0", "r1", "r2", "r4"]
    assert shipper.stats.dropped["prepare_error"] == 1
    assert threading.current_thread().name not in callers


def test_a_forked_child_ships_through_its_own_spool_with_its_own_threads(
        closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path / "root", max_age_s=60)
    assert shipper.ship(_record(0))  # the parent's: its copy in the child must not be spooled
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, leave with a code, never return into pytest
        code = 1
        try:
            ok = shipper.ship(_record(1)) and shipper.ship(_record(2))
            shipper.close(timeout=0.2)
            code = 0 if ok and shipper.stats.queued == shipper.stats.spooled == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # the child's roles ran and counted from 0
    shipper.close(timeout=0.2)
    assert _spooled_ids(tmp_path / "root") == ["r0"]
    assert _spooled_ids(tmp_path / "root" / f"pid-{pid}") == ["r1", "r2"]
    summed = CollectorRegistry()
    summed.register(SpoolRootCollector(tmp_path / "root"))  # both processes, no pid label
    assert summed.get_sample_value("mlmon_shipper_spooled_total") == 3
    assert summed.get_sample_value("mlmon_shipper_queued_total") == 3


def test_the_supervisor_restarts_a_role_whose_turn_raised(closed_url: str,
                                                          tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    tick = shipper._spool.tick
    calls = {"n": 0}

    def fails_once() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected")
        tick()

    shipper._spool.tick = fails_once  # type: ignore[method-assign]
    assert all(shipper.ship(_record(i)) for i in range(20))
    shipper.close(timeout=0.5)
    assert shipper.writer.restarts == 1 and shipper.sender.restarts == 0
    assert _spooled_ids(tmp_path) == [f"r{i}" for i in range(20)]  # nothing lost on the way


def test_close_during_a_long_backoff_returns_by_its_deadline(closed_url: str,
                                                             tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path, initial_backoff_s=60.0, max_backoff_s=60.0)
    shipper.ship(_record(1))
    assert _wait(lambda: shipper._delivery.failures > 0)  # backing off: 60 s
    start = time.monotonic()
    assert shipper.close(timeout=0.5) is False
    assert time.monotonic() - start < 5.0  # not the 60 s backoff
    assert _spooled_ids(tmp_path) == ["r1"]  # released: the next process can open it


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


class _CloseBeforeAppend(deque):  # type: ignore[type-arg]
    """A queue whose append first lets close() run to its end: the race the check cannot see."""

    def __init__(self, shipper: Shipper) -> None:
        super().__init__()
        self.shipper = shipper

    def append(self, item: object) -> None:
        self.shipper.close(timeout=0.2)
        super().append(item)


def test_a_ship_racing_close_past_the_writers_last_turn_is_counted(closed_url: str,
                                                                   tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    shipper._queue = _CloseBeforeAppend(shipper)
    assert shipper.ship(_record(1)) is True  # it passed the check before close()
    assert shipper.writer.is_running() is False
    assert shipper.stats.dropped["closed"] == 1 and shipper.stats.queued == 1
    assert not shipper._queue


def test_a_record_queued_after_the_writers_last_turn_is_spooled_on_its_exit(
        closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    finished = shipper.writer._finished

    def then_a_late_record() -> bool:
        done = finished()
        if done and not shipper.stats.queued:
            shipper._queue.append(_record(7))  # a ship() that passed the check just before
        return done

    shipper.writer._finished = then_a_late_record
    shipper.close(timeout=0.2)
    assert shipper.stats.queued == 1 and shipper.stats.spooled == 1
    assert sum(shipper.stats.dropped.values()) == 0
    assert _spooled_ids(tmp_path) == ["r7"]


def test_an_unexpected_error_in_ship_is_counted(closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)

    class Broken(deque):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            raise MemoryError("injected")

    shipper._queue = Broken()
    try:
        assert shipper.ship(_record(1)) is False
        assert shipper.stats.dropped["ship_error"] == 1
    finally:
        shipper.close(timeout=0.2)


def test_an_unexpected_spool_error_under_fsync_always_is_counted_once(
        closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path, fsync="always")

    def broken(payloads: object) -> int:
        raise RuntimeError("injected")

    shipper._spool.append = broken  # type: ignore[method-assign]
    try:
        assert shipper.ship(_record(1)) is False
        assert shipper.stats.dropped["spool_error"] == 1
        assert shipper.stats.dropped["disk_error"] == 0
        assert shipper.stats.queued == 1
    finally:
        shipper.close(timeout=0.2)


def test_the_encoder_writes_what_json_dumps_writes_and_refuses_nan_and_inf() -> None:
    docs = [{"b": [1.5, 1e-07, -0.0, 1e300, 3], "a": {"é": "x\n\u2028\"", "z": None, "t": True}},
            {"features": {"n": 0.1 + 0.2, "c": "ü"}, "event": {"id": "1"}}, [], "s", 7]
    for doc in docs:
        assert encode_json(doc) == json.dumps(doc, separators=(",", ":"), sort_keys=True,
                                              ensure_ascii=False, allow_nan=False).encode()
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            encode_json({"features": {"n": bad}})
    with pytest.raises(TypeError):
        encode_json({"x": object()})


def test_nan_inf_and_cycles_are_counted_unserializable_and_the_callers_dict_kept(
        closed_url: str, tmp_path: Path) -> None:
    shipper = _shipper(closed_url, tmp_path)
    cycle: dict[str, object] = {"event": {"id": "cycle"}}
    cycle["self"] = cycle
    for bad in ({"event": {"id": "nan"}, "x": math.nan}, {"event": {"id": "inf"}, "x": [math.inf]},
                cycle):
        shipper.ship(bad)
    no_id: dict[str, object] = {"features": {"n": 1.0}}
    shipper.ship(no_id)
    shipper.close(timeout=0.2)
    assert shipper.stats.dropped["unserializable"] == 3
    assert no_id == {"features": {"n": 1.0}}  # its id was given to the spooled copy only
    (only,) = _spooled_ids(tmp_path)
    assert len(only) == 36
