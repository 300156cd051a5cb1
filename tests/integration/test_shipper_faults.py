"""Faults the shipper must survive against the real Elasticsearch, none of them silent.

The server is always the real one (`es_url`); a fault the server cannot produce on demand is
added beside it: a TCP proxy that hangs, slows down or resets connections (`faulty_proxy.py`),
a spool on a full file system (a 256 KiB tmpfs mounted for the test: the machine runs tests as
root), a role failing with an injected exception, `gunicorn --preload` forking two workers.

Each test checks the same promise: every record `ship()` accepted is in Elasticsearch exactly
once, or counted in `stats.dropped` with its reason; none is silently lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from elasticsearch import Elasticsearch, helpers
from prometheus_client import CollectorRegistry

from mlmon.log_shipper.metrics import DROP_REASONS
from mlmon.log_shipper.sender import backoff_delay
from mlmon.log_shipper.shipper import Shipper
from tests.integration.es_server import es_server, es_url, free_port
from tests.integration.faulty_proxy import FaultyProxy

__all__ = ["es_server", "es_url"]  # fixtures used by name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(es_url: str) -> Iterator[FaultyProxy]:
    port = urlparse(es_url).port
    assert port is not None
    with FaultyProxy(port) as p:
        yield p


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: writes past it fail with ENOSPC, like a full disk."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                   check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _shipper(url: str, index: str, spool: Path, **options: Any) -> Shipper:
    defaults: dict[str, Any] = dict(max_docs=100, max_age_s=0.1, initial_backoff_s=0.2,
                                    max_backoff_s=2.0, request_timeout_s=3.0,
                                    handle_signals=False)
    defaults.update(options)
    return Shipper(es=url, index=index, spool_dir=spool, **defaults)


def _record(i: int, tag: str) -> dict[str, Any]:
    return {"@timestamp": "2026-11-29T08:00:00.000Z", "event": {"id": f"{tag}-{i}"},
            "features": {"n": float(i), "text": "x" * 200}}


def _indexed(es_url: str, index: str) -> list[str]:
    client = Elasticsearch(es_url)
    client.indices.refresh(index=index)
    return [h["_id"] for h in helpers.scan(client, index=index,
                                            query={"query": {"match_all": {}}})]


def assert_every_accepted_record_accounted(es_url: str, index: str, accepted: list[str],
                                           shipper: Shipper, calls: int) -> list[str]:
    """Of `calls` to ship(): each accepted record is in Elasticsearch exactly once or counted
    as dropped with a reason, and each refused one (ship() False) is counted too; returns the
    indexed ids."""
    ids = _indexed(es_url, index)
    assert len(ids) == len(set(ids)), "a record was indexed twice"
    assert set(ids) <= set(accepted), "a record ship() refused was indexed"
    missing = len(set(accepted) - set(ids))
    refused = calls - len(accepted)
    counted = sum(shipper.stats.dropped.values()) + shipper.stats.dead_lettered
    assert missing + refused == counted, (missing, refused, shipper.stats.dropped)
    assert set(shipper.stats.dropped) <= set(DROP_REASONS)
    return ids


def _ship_all(shipper: Shipper, tag: str, count: int, rate_per_s: float = 2000) -> list[str]:
    accepted = []
    period = 1.0 / rate_per_s
    for i in range(count):
        if shipper.ship(_record(i, tag)):
            accepted.append(f"{tag}-{i}")
        time.sleep(period)
    return accepted


def _wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


# ---- the proxy faults ----------------------------------------------------------------------

def test_a_hung_elasticsearch_does_not_block_spooling(es_url: str, proxy: FaultyProxy,
                                                      tmp_path: Path) -> None:
    index = "mlmon-faults-hang"
    # A queue far smaller than what is shipped during the hang: if spooling waited on the hung
    # request (up to request_timeout_s), the queue would overflow and drop as queue_full.
    shipper = _shipper(proxy.url, index, tmp_path, queue_size=300)
    proxy.mode = "hang"
    accepted = _ship_all(shipper, "hang", 3000, rate_per_s=1000)  # ~3 s, a timeout's worth
    assert len(accepted) == 3000 and shipper.stats.dropped["queue_full"] == 0
    assert _wait_for(lambda: shipper.stats.spooled == 3000, timeout=5.0)
    proxy.mode = "pass"
    assert shipper.close(timeout=60)
    assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 3000)
    assert sum(shipper.stats.dropped.values()) == 0
    assert shipper.writer.restarts == shipper.sender.restarts == 0


def test_resets_and_slowness_lose_nothing(es_url: str, proxy: FaultyProxy,
                                          tmp_path: Path) -> None:
    index = "mlmon-faults-reset"
    shipper = _shipper(proxy.url, index, tmp_path)
    accepted: list[str] = []
    for phase, mode in enumerate(("pass", "reset", "slow", "reset", "pass")):
        proxy.mode = mode
        accepted += _ship_all(shipper, f"p{phase}", 1000, rate_per_s=500)  # ~2 s each
    assert shipper.close(timeout=60)
    ids = assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 5000)
    assert len(ids) == len(accepted) == 5000
    assert shipper.stats.retried + shipper.stats.replayed > 0  # the faults did bite
    assert proxy.connections > 1  # the client reconnected after the resets


def test_delivery_resumes_within_two_seconds_of_elasticsearch_coming_back(
        es_url: str, proxy: FaultyProxy, tmp_path: Path) -> None:
    index = "mlmon-faults-resume"
    shipper = _shipper(proxy.url, index, tmp_path, initial_backoff_s=0.5, max_backoff_s=30.0,
                       max_retries=0)
    # The index exists before the outage, as in production: creating it can take seconds on
    # a loaded machine, which is not what this test measures.
    accepted = _ship_all(shipper, "up", 1)
    assert shipper.flush(timeout=60)
    proxy.mode = "reset"
    accepted += _ship_all(shipper, "down", 200, rate_per_s=100)
    # Long enough for the backoff to grow well past the resume target.
    delivery = shipper._delivery
    assert _wait_for(lambda: backoff_delay(delivery.failures, 0.5, 30.0) >= 8.0, timeout=30)
    time.sleep(1.0)
    backoff_s = backoff_delay(delivery.failures, 0.5, 30.0)
    before = shipper.stats.last_success
    indexed_before = shipper.stats.shipped + shipper.stats.replayed
    proxy.mode = "pass"
    back = time.monotonic()
    assert _wait_for(lambda: shipper.stats.last_success != before, timeout=30)  # a bulk accepted
    resumed_s = time.monotonic() - back
    print(f"delivery resumed {resumed_s:.2f} s after Elasticsearch came back "
          f"(the backoff was {backoff_s:.0f} s)")
    assert indexed_before == 1  # only the record sent before the outage
    assert resumed_s <= 2.5, resumed_s  # target ~2 s; a sleeping backoff would take >= 8 s
    assert shipper.close(timeout=60)
    assert len(assert_every_accepted_record_accounted(es_url, index, accepted, shipper,
                                                      201)) == 201


def test_a_response_that_is_not_json_never_ends_a_role(es_url: str, proxy: FaultyProxy,
                                                       tmp_path: Path) -> None:
    index = "mlmon-faults-garbage"
    shipper = _shipper(proxy.url, index, tmp_path)
    proxy.mode = "garbage"
    accepted = _ship_all(shipper, "g", 500, rate_per_s=250)  # ~2 s of HTML answers
    assert shipper.stats.shipped == 0 and shipper._delivery.failures > 0  # every answer was refused
    proxy.mode = "pass"
    assert shipper.close(timeout=60)
    ids = assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 500)
    assert len(ids) == 500
    assert shipper.writer.restarts == shipper.sender.restarts == 0


def test_an_unwritable_dead_letter_file_is_counted_and_the_rest_indexed(
        es_url: str, tmp_path: Path) -> None:
    index = "mlmon-faults-deadletter"
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # the dead-letter file's parent is a file: every open fails
    shipper = _shipper(es_url, index, tmp_path / "spool", dead_letter_path=blocker / "dead")
    accepted = _ship_all(shipper, "ok", 1)
    assert shipper.flush(timeout=60)  # features.n is mapped as a number now
    bad = {"event": {"id": "bad-0"}, "features": {"n": "not a number"}}
    accepted += ["bad-0"] if shipper.ship(bad) else []
    accepted += _ship_all(shipper, "ok2", 50)
    assert shipper.close(timeout=60)
    ids = assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 52)
    assert "bad-0" not in ids and len(ids) == 51
    assert shipper.stats.dropped["dead_letter_error"] == 1


# ---- a full disk ---------------------------------------------------------------------------

@pytest.mark.parametrize("fsync", ["interval", "always"])
def test_a_full_disk_drops_with_a_counted_reason_and_the_roles_survive(
        es_url: str, proxy: FaultyProxy, small_disk: Path, fsync: str) -> None:
    index = f"mlmon-faults-disk-{fsync}"
    shipper = _shipper(proxy.url, index, small_disk / "spool", fsync=fsync,
                       dead_letter_path=small_disk.parent / "dead.ndjson")
    proxy.mode = "reset"  # nothing leaves the spool: it fills the 256 KiB tmpfs
    accepted = _ship_all(shipper, "full", 1500, rate_per_s=3000)  # ~450 KiB of records
    assert _wait_for(lambda: not shipper.queue_depth() and not shipper._writer_busy, 10)
    full = shipper.stats.dropped["disk_full"]
    assert full > 0
    if fsync == "always":  # ship() told the truth: the caller saw False for each of those
        assert len(accepted) == 1500 - full
    else:  # accepted in memory, then counted when the disk refused them
        assert len(accepted) == 1500
    proxy.mode = "pass"  # the spool drains, the disk has room again, the writer goes on
    assert shipper.flush(timeout=60)
    accepted += _ship_all(shipper, "after", 200)
    assert shipper.close(timeout=60)
    ids = assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 1700)
    assert {f"after-{i}" for i in range(200)} <= set(ids)
    assert shipper.writer.restarts == shipper.sender.restarts == 0


# ---- a role fails --------------------------------------------------------------------------

def test_the_supervisor_restarts_a_failed_role_and_nothing_is_lost(es_url: str,
                                                                   tmp_path: Path) -> None:
    index = "mlmon-faults-restart"
    shipper = _shipper(es_url, index, tmp_path)
    failures = {"tick": 1, "peek": 1}
    spool = shipper._spool
    tick, peek = spool.tick, spool.peek

    def failing(name: str, real: Any) -> Any:
        def call(*args: Any) -> Any:
            if failures[name]:
                failures[name] -= 1
                raise RuntimeError(f"injected failure in {name}")
            return real(*args)
        return call

    spool.tick = failing("tick", tick)  # type: ignore[method-assign]  # the writer's turn
    spool.peek = failing("peek", peek)  # type: ignore[method-assign]  # the sender's turn
    accepted = _ship_all(shipper, "r", 1000)
    assert shipper.flush(timeout=60)
    assert failures == {"tick": 0, "peek": 0}
    assert shipper.writer.restarts == 1 and shipper.sender.restarts == 1
    registry = CollectorRegistry()
    registry.register(shipper.collector())
    for role in ("spool_writer", "sender"):
        assert registry.get_sample_value("mlmon_shipper_role_up", {"role": role}) == 1
        assert registry.get_sample_value("mlmon_shipper_role_restarts_total",
                                         {"role": role}) == 1
    assert shipper.close(timeout=60)
    ids = assert_every_accepted_record_accounted(es_url, index, accepted, shipper, 1000)
    assert len(ids) == 1000


# ---- fork: gunicorn --preload ----------------------------------------------------------------

def test_gunicorn_preload_workers_each_ship_through_their_own_spool(es_url: str,
                                                                    tmp_path: Path) -> None:
    index = "mlmon-faults-fork"
    root = tmp_path / "spool"
    port = free_port()
    env = {**os.environ, "MLMON_TEST_ES_URL": es_url, "MLMON_TEST_INDEX": index,
           "MLMON_TEST_SPOOL": str(root)}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--preload", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "30",
         "tests.integration.forked_app:app"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/ship/"
        assert _wait_for(lambda: _answers(base + "warmup"), timeout=30)

        def call(i: int) -> tuple[int, str, bool]:
            with urllib.request.urlopen(f"{base}fork-{i}", timeout=30) as response:
                pid, accepted = response.read().decode().split()
            return int(pid), f"fork-{i}", accepted == "1"

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(1000)))
    finally:
        server.send_signal(signal.SIGTERM)  # workers exit normally: their shippers close
        output, _ = server.communicate(timeout=90)
    assert server.returncode == 0, output
    pids = {pid for pid, _, _ in answers}
    assert server.pid not in pids and len(pids) == 2, pids  # served by the two children
    accepted = [rid for _, rid, ok in answers if ok]
    assert len(accepted) == 1000
    ids = _indexed(es_url, index)
    assert set(accepted) <= set(ids)
    assert len(ids) == len(set(ids)) == len(accepted) + 1  # and the warm-up request's record
    # Each child spooled in a directory of its own, never in the master's.
    names = {p.name for p in root.iterdir() if p.is_dir()}
    assert {f"pid-{pid}" for pid in pids} <= names, names


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False
