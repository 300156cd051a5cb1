"""A real Prometheus scraping a worker that cannot open its file sees the fault while it lasts:
the worker's records and its failures, and the committed MlmonWorkerFileErrors alert firing.

The fault is real: the multi-process directory is a small tmpfs, filled up (in a private mount
namespace, `unshare -rm`, as tests/test_multiprocess_fork.py), before a `--preload`-style parent
forks the worker. The worker serves /metrics on loopback (the network is not unshared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mlmon.names as N
from mlmon.exporter.layout import NO_SPACE
from tests.integration.prom_servers import free_port, prometheus_factory, wait_http
from tests.profiles import sample_profile_dict

__all__ = ["prometheus_factory"]  # a fixture, found by name

PARENT_RECORDS, CHILD_RECORDS = 3, 40

# The parent creates the monitor, counts PARENT_RECORDS, fills the directory's filesystem and
# forks; the worker counts CHILD_RECORDS and serves its registry until it is killed.
SCENARIO = """
import errno, os, sys, time
from prometheus_client import CollectorRegistry, start_http_server
from mlmon.exporter import ModelMonitor
profile, mp, port, parent_n, child_n = sys.argv[1:6]
registry = CollectorRegistry()
monitor = ModelMonitor.from_profile(profile, registry, multiproc_directory=mp)
for _ in range(int(parent_n)):
    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
fd = os.open(os.path.join(mp, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError as exc:
    assert exc.errno == errno.ENOSPC
os.close(fd)
if os.fork() == 0:
    for _ in range(int(child_n)):
        monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
    start_http_server(int(port), addr="127.0.0.1", registry=registry)
    while True:
        time.sleep(1)
os.wait()
"""


@pytest.mark.integration
def test_prometheus_sees_a_worker_without_its_file_and_alerts(prometheus_factory, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    mp = tmp_path / "mp"
    mp.mkdir()
    port = free_port()
    command = ["unshare", "-rm", "sh", "-c",
               'mount -t tmpfs -o size=256k tmpfs "$1" && shift && exec "$@"', "sh", str(mp),
               sys.executable, "-c", SCENARIO, str(profile), str(mp), str(port),
               str(PARENT_RECORDS), str(CHILD_RECORDS)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    # its own process group: the worker is killed with the parent
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", process=server)
        prom = prometheus_factory(targets={"mlmon": [f"127.0.0.1:{port}"]})
        model = '{model="churn", model_version="3"}'
        # the worker's records, though no file holds them (the parent's file holds its own)
        prom.wait_for(f"{N.OBSERVATIONS.sample}{model} == {PARENT_RECORDS + CHILD_RECORDS}",
                      timeout=60)
        # its retries, each failing on the full disk, make the counter rise: the alert fires
        firing = prom.wait_for('ALERTS{alertname="MlmonWorkerFileErrors", '
                               'alertstate="firing"}', timeout=90)
        assert [r["metric"]["reason"] for r in firing] == [NO_SPACE], firing
        assert {r["metric"]["model"] for r in firing} == {"churn"}, firing
    finally:
        os.killpg(server.pid, 9)
        server.wait()
