"""Spool directories across worker processes: one per process, orphans adopted.

Real processes (what gunicorn / uvicorn workers are), Elasticsearch unreachable (a closed
loopback port), so everything the facade ships stays in the spools, where it can be counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter.profile import Profile
from mlmon.log_shipper.delivery import decode_spooled
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.spool import Spool, SpoolLockedError
from tests.test_shipper import closed_url

__all__ = ["closed_url"]  # the fixture, used by name

REPO = Path(__file__).resolve().parents[1]
INDEX = "mlmon-predictions-churn"

# A worker: ships `count` records with ids `<tag>-<i>` through the facade (default spool dir),
# waits until all are spooled, says so, then waits on stdin (to be closed, or SIGKILLed).
_WORKER = """
import sys, time
from prometheus_client import CollectorRegistry
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.facade import PredictionLogger
from tests.profiles import sample_profile_dict
url, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
logger = PredictionLogger.from_profile(
    Profile.from_dict(sample_profile_dict()), service_name="s", environment="e", es_url=url,
    registry=CollectorRegistry(), handle_signals=False, fsync="always", max_age_s=0.01,
    max_retries=0, initial_backoff_s=0.05, max_backoff_s=0.1)
for i in range(count):
    logger.record({"age": 30.0, "city": "paris"}, 0.5, request_id=f"{tag}-{i}")
while logger.shipper.stats.spooled < count:
    time.sleep(0.01)
print("spooled", flush=True)
sys.stdin.read()
logger.close(timeout=0.2)
"""


def _worker(url: str, base: Path, tag: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "MLMON_SPOOL_DIR": str(base)}
    env.pop("MLMON_REDACT", None)
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, url, tag, str(count)], cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None and worker.stdout.readline() == "spooled\n"
    return worker


def _spooled(directory: Path) -> list[str]:
    spool = Spool(directory)
    try:
        return [decode_spooled(p).id for p in spool.peek(100_000, 1 << 30).records]
    finally:
        spool.close()


def test_two_workers_sharing_mlmon_spool_dir_keep_every_record(closed_url: str,
                                                               tmp_path: Path) -> None:
    first = _worker(closed_url, tmp_path, "a", 30)   # both alive at once, same environment
    second = _worker(closed_url, tmp_path, "b", 30)
    for worker in (first, second):
        worker.communicate("", timeout=60)
        assert worker.returncode == 0
    dirs = sorted(p for p in (tmp_path / INDEX).iterdir() if p.is_dir())
    assert [d.name for d in dirs] == sorted(f"pid-{w.pid}" for w in (first, second))
    ids = sorted(i for d in dirs for i in _spooled(d))
    assert ids == sorted([f"a-{i}" for i in range(30)] + [f"b-{i}" for i in range(30)])


def test_a_killed_workers_spool_is_adopted_by_the_next_one(
        closed_url: str, tmp_path: Path, sample_profile: Profile,
        monkeypatch: pytest.MonkeyPatch) -> None:
    victim = _worker(closed_url, tmp_path, "k", 25)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    orphan = tmp_path / INDEX / f"pid-{victim.pid}"
    left = Spool(orphan)
    orphan_bytes = left.pending_bytes
    left.close()
    assert orphan_bytes > 0

    monkeypatch.setenv("MLMON_SPOOL_DIR", str(tmp_path))
    monkeypatch.delenv("MLMON_REDACT", raising=False)
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="s", environment="e", es_url=closed_url,
        registry=CollectorRegistry(), handle_signals=False, max_retries=0)
    try:
        assert logger.shipper is not None
        # This process (a new pid) took the orphan over: it holds its lock and owes its bytes.
        with pytest.raises(SpoolLockedError):
            Spool(orphan)
        assert logger.shipper.spool_bytes() >= orphan_bytes
    finally:
        assert logger.close(timeout=0.2) is False  # Elasticsearch is down: nothing delivered
    assert sorted(_spooled(orphan)) == sorted(f"k-{i}" for i in range(25))  # still there


def test_an_explicit_spool_dir_in_use_falls_back_to_a_per_process_subdirectory(
        closed_url: str, tmp_path: Path, sample_profile: Profile) -> None:
    held = Spool(tmp_path / "spool")  # another worker's (here: this process's) spool
    logger = PredictionLogger.from_profile(
        sample_profile, service_name="s", environment="e", es_url=closed_url,
        spool_dir=tmp_path / "spool", registry=CollectorRegistry(), handle_signals=False)
    try:
        logger.record({"age": 30.0}, 0.5, request_id="x")
    finally:
        logger.close(timeout=0.2)
        held.close()
    assert _spooled(tmp_path / "spool" / f"pid-{os.getpid()}") == ["x"]


# Ships records one by one and writes each id to stdout once ship() returned True for it,
# then waits to be SIGKILLed. Batching is slow on purpose (60 s, 10 000 docs), so nothing is
# sent: every id must come from the spool ship() wrote to before returning True.
_PRODUCER = """
import os, sys
from mlmon.log_shipper.shipper import Shipper
url, spool = sys.argv[1], sys.argv[2]
shipper = Shipper(es=url, index="mlmon-predictions-test", spool_dir=spool, handle_signals=False,
                  max_docs=10_000, max_age_s=60, fsync="always")
for i in range(200):
    if shipper.ship({"event": {"id": f"d{i}"}, "features": {"n": i}}):
        os.write(1, f"d{i}\\n".encode())
os.write(1, b"done\\n")
sys.stdin.read()
"""


def test_fsync_always_loses_nothing_ship_returned_for_on_sigkill(closed_url: str,
                                                                 tmp_path: Path) -> None:
    producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, closed_url, str(tmp_path)],
                                cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    assert producer.stdout is not None
    returned = []
    while (line := producer.stdout.readline().strip()) not in ("done", ""):
        returned.append(line)
    producer.send_signal(signal.SIGKILL)  # no close(), no atexit: only what reached the kernel
    producer.communicate(timeout=30)
    assert len(returned) == 200
    assert _spooled(tmp_path) == returned  # every one of them, in order
