"""Outcome counters in a multi-process directory: real worker processes count labels, any
process's /metrics shows their sum (equal to scikit-learn's and numpy's on the union), and the
counts survive a worker's death (SIGKILL) and the compaction of its file."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import confusion_matrix

import mlmon.names as N
from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.collector import MultiProcessCollector
from mlmon.exporter.layout import Layout
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}
CLASSES = ["no", "yes", "__unseen__"]

# A worker: counts n labels drawn from `seed` (half one by one, half as a batch), reports its
# pid, then exits ("exit") or waits for stdin to close ("wait").
WORKER = """
import json, os, sys
from prometheus_client import CollectorRegistry
from mlmon.exporter import ModelMonitor
from tests.test_multiprocess_outcomes import labels
path, kind, seed, n, mode = sys.argv[1:6]
n = int(n)
monitor = ModelMonitor.from_profile(path, CollectorRegistry())
predicted, actual = labels(kind, int(seed), n)
half = n // 2
for p, a in zip(predicted[:half], actual[:half]):
    monitor.observe_outcome(p, a, predicted_at=0.0, arrived_at=100.0)
monitor.observe_outcomes(predicted[half:], actual[half:], predicted_at=[0.0] * (n - half),
                         arrived_at=100.0)
monitor.reject_outcome("unknown_id", 2)
print(json.dumps({"pid": os.getpid()}), flush=True)
if mode == "wait":
    sys.stdin.read()
"""


def labels(kind: str, seed: int, n: int) -> tuple[list, list]:
    """The labels a worker counts (the test draws them again to know the expected sums)."""
    rng = np.random.default_rng(seed)
    if kind == "classification":
        pool = np.array(["no", "yes", "maybe"], dtype=object)
        return (pool[rng.integers(0, 3, n)].tolist(), pool[rng.integers(0, 3, n)].tolist())
    predicted = rng.normal(0.0, 1.0, n)
    return predicted.tolist(), (predicted + rng.normal(0.1, 0.5, n)).tolist()


@pytest.fixture(params=["classification", "regression"])
def env(request, tmp_path: Path):
    kind = request.param
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict(kind == "classification")))
    mp = tmp_path / "mp"
    environ = {**os.environ, "MLMON_MULTIPROC_DIR": str(mp), "PYTHONPATH": os.getcwd()}
    return kind, profile, mp, environ


def start(kind: str, profile: Path, environ: dict, seed: int, n: int, mode: str
          ) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(profile), kind, str(seed), str(n),
                             mode], env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and json.loads(proc.stdout.readline())["pid"] == proc.pid
    return proc


def scrape(mp: Path) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(mp))
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, {**M, **labels})
    assert got is not None, (name, labels)
    return got


def check_totals(registry: CollectorRegistry, kind: str, runs: list[tuple[int, int]]) -> None:
    predicted, actual = [], []
    for seed, n in runs:
        p, a = labels(kind, seed, n)
        predicted += p
        actual += a
    total = sum(n for _, n in runs)
    assert value(registry, N.OUTCOME_REJECTED.sample, reason="unknown_id") == 2 * len(runs)
    assert value(registry, N.OUTCOME_LABEL_DELAY.count) == total
    assert value(registry, N.OUTCOME_LABEL_DELAY.sum) == 100.0 * total
    if kind == "classification":
        mapped = [[x if x in CLASSES else "__unseen__" for x in col] for col in (actual, predicted)]
        expected = confusion_matrix(mapped[0], mapped[1], labels=CLASSES).T
        got = [[value(registry, N.OUTCOME_CLASS.sample, predicted_class=p, actual_class=a)
                for a in CLASSES] for p in CLASSES]
        np.testing.assert_array_equal(got, expected)
        return
    errors = np.array(predicted) - np.array(actual)
    assert value(registry, N.OUTCOME_ERROR.count) == total
    assert math.isclose(value(registry, N.OUTCOME_ERROR.sum), errors.sum(), rel_tol=1e-9)
    assert math.isclose(value(registry, N.OUTCOME_ABSOLUTE_ERROR.sample), np.abs(errors).sum(),
                        rel_tol=1e-9)
    assert math.isclose(value(registry, N.OUTCOME_SQUARED_ERROR.sample),
                        np.square(errors).sum(), rel_tol=1e-9)


def test_outcome_counts_of_workers_are_summed_and_survive_their_death(env) -> None:
    kind, profile, mp, environ = env
    runs = [(1, 300), (2, 500)]
    finished = start(kind, profile, environ, *runs[0], "exit")
    finished.wait(timeout=60)
    live = start(kind, profile, environ, *runs[1], "wait")
    try:
        check_totals(scrape(mp), kind, runs)  # a dead worker's file and a live one's
        live.send_signal(signal.SIGKILL)
        live.wait(timeout=60)
        check_totals(scrape(mp), kind, runs)  # compacted: the same totals
        key = Layout(Profile.load(profile)).file_key
        assert [p.name for p in mp.glob("mlmon_*_*.db")] == [f"mlmon_{key}_compacted.db"]
        # a new worker's own /metrics shows the totals, and adds to them
        registry = CollectorRegistry()
        monitor = ModelMonitor.from_profile(profile, registry, multiproc_directory=str(mp))
        check_totals(registry, kind, runs)
        monitor.reject_outcome("duplicate")
        assert value(scrape(mp), N.OUTCOME_REJECTED.sample, reason="duplicate") == 1.0
    finally:
        for proc in (finished, live):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)


def test_files_an_older_mlmon_left_for_the_same_profile_are_never_misread(tmp_path) -> None:
    """A kept directory across an upgrade that changed the slot order: the older version named
    its files by the bare profile sha; they are neither read nor compacted into the new ones."""
    profile = Profile.from_dict(sample_profile_dict(classification=True))
    mp = tmp_path / "mp"
    mp.mkdir()
    sha = profile.sha
    (mp / f"mlmon_{sha}.json").write_text(json.dumps(
        {"profile": profile.to_dict(), "options": Layout(profile).options(),
         "counters_start": 1.0}))
    garbage = np.full(Layout(profile).size + 50, 7.0)  # any old-layout file: wrong slots
    garbage.tofile(mp / f"mlmon_{sha}_compacted.db")
    garbage.tofile(mp / f"mlmon_{sha}_{os.getpid() + 1}_abc123.db")
    registry = CollectorRegistry()
    monitor = ModelMonitor(profile, registry, multiproc_directory=str(mp))
    monitor.observe_outcome("yes", "no")
    for reader in (registry, scrape(mp)):
        assert value(reader, N.OUTCOME_CLASS.sample, predicted_class="yes",
                     actual_class="no") == 1.0
        assert value(reader, N.OBSERVATIONS.sample) == 0.0
        assert value(reader, N.COUNTERS_START.name) > 1.0  # its own start, not the old one's
    old = sorted(p.name for p in mp.glob(f"mlmon_{sha}_*.db"))
    assert old == sorted([f"mlmon_{sha}_compacted.db", f"mlmon_{sha}_{os.getpid() + 1}_abc123.db"])
