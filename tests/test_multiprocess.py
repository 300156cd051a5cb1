"""Multi-worker mode: real processes write their own files; /metrics shows the sums."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.layout import Layout
from mlmon.exporter.multiprocess import mark_process_dead
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}

# A worker: observes `n` records (age = its index, so bucket totals are known), leaves one
# request in flight when asked (as a worker killed mid-request would), then exits.
WORKER = """
import json, os, sys
from prometheus_client import CollectorRegistry
from mlmon.exporter import ModelMonitor
n, stuck = int(sys.argv[2]), sys.argv[3] == "stuck"
monitor = ModelMonitor.from_profile(sys.argv[1], CollectorRegistry())
for i in range(n):
    monitor.observe({"age": float(i), "city": "paris"}, float(i % 3) - 1.0)
monitor.track_request().__enter__() if stuck else None
print(json.dumps({"pid": os.getpid()}))
"""

SERVER = """
import sys, time
from mlmon.exporter.server import multiprocess_registry, start_http_server
server, thread = start_http_server(int(sys.argv[1]), registry=multiprocess_registry())
print("ready", flush=True)
time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    mp = tmp_path / "mp"
    environ = {**os.environ, "MLMON_MULTIPROC_DIR": str(mp), "PYTHONPATH": os.getcwd()}
    return profile, mp, environ


def run_worker(profile, environ, n: int, stuck: bool = False) -> int:
    out = subprocess.run([sys.executable, "-c", WORKER, str(profile), str(n),
                          "stuck" if stuck else "-"], env=environ, check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)["pid"]


def expected_age_buckets(counts: list[int]) -> dict[str, float]:
    ages = [float(i) for n in counts for i in range(n)]
    return {le: float(sum(a <= edge for a in ages))
            for le, edge in (("25.0", 25.0), ("35.0", 35.0), ("50.0", 50.0),
                             ("+Inf", float("inf")))}


def test_two_workers_summed_by_a_third_process_serving_metrics(env):
    profile, mp, environ = env
    counts = [40, 70]
    pids = [run_worker(profile, environ, n, stuck=(i == 0)) for i, n in enumerate(counts)]
    # the second worker compacted the first one's file on start: the compacted file + its own
    assert len(set(pids)) == 2 and len(list(mp.glob("mlmon_*_*.db"))) == 2
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=environ,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        server.terminate()
        server.wait(timeout=10)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text.decode()) for s in f.samples}

    def get(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({**M, **labels}.items())))]

    assert get("mlmon_observations_total") == sum(counts)
    assert get("mlmon_feature_category_total", feature="city", category="paris") == sum(counts)
    for le, value in expected_age_buckets(counts).items():
        assert get("mlmon_feature_value_bucket", feature="age", le=le) == value
    # the worker that died mid-request: its gauge went with compaction, its counters stayed
    assert get("mlmon_requests_in_flight") == 0.0
    assert get("mlmon_model_info", profile_sha=Profile.load(profile).sha) == 1.0
    assert ("process_cpu_seconds_total", ()) in samples
    # nothing left to do for the old hook: both workers' files are already merged
    assert mark_process_dead(pids[0], str(mp)) == 0
    assert [p.name for p in mp.glob("mlmon_*_*.db")] == [
        f"mlmon_{Layout(Profile.load(profile)).file_key}_compacted.db"]
    registry = CollectorRegistry()
    ModelMonitor.from_profile(profile, registry, multiproc_directory=str(mp))
    assert registry.get_sample_value("mlmon_requests_in_flight", M) == 0.0
    assert registry.get_sample_value("mlmon_observations_total", M) == sum(counts)


def test_worker_monitor_shows_totals_of_all_workers_and_survives_fork(env):
    profile, mp, environ = env
    run_worker(profile, environ, 25)
    registry = CollectorRegistry()
    monitor = ModelMonitor.from_profile(profile, registry, multiproc_directory=str(mp),
                                        clock=time.time)
    monitor.observe({"age": 30.0}, 0.5)
    pid = os.fork()
    if pid == 0:  # child: writes to its own file, not the parent's
        monitor.observe({"age": 30.0}, 9.0)
        os._exit(0)
    os.waitpid(pid, 0)
    # the child's own file is there until a scrape compacts it (the first worker's already is)
    assert len(list(mp.glob("mlmon_*_*.db"))) == 3
    # window max combines workers with max: the child's 9.0 wins, read before compaction ...
    totals = monitor.storage.totals()
    assert len(list(mp.glob("mlmon_*_*.db"))) == 2  # ... which merged the child's file
    assert registry.get_sample_value("mlmon_observations_total", M) == 27.0
    import numpy as np

    assert np.sum(totals.arrays, axis=0)[monitor.layout.observations] == 27.0
    own = list(mp.glob(f"mlmon_{monitor.layout.file_key}_{os.getpid()}_*.db"))
    assert len(own) == 1 and np.fromfile(own[0])[monitor.layout.observations] == 1.0
