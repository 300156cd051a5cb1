"""Two workers observe at the same time while a third process serves /metrics and is scraped
over and over: no counter ever goes backwards, and the last scrape holds the exact sums."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from tests.profiles import sample_profile_dict
from tests.test_multiprocess import SERVER, free_port

M = {"model": "churn", "model_version": "3"}
CITIES = ("paris", "rome", "oslo")

# Observes the first half of its records, says "half" and waits for a line on stdin (so the
# test can scrape a known intermediate state), then observes the rest and says "done".
WORKER = """
import sys
from prometheus_client import CollectorRegistry
from mlmon.exporter import ModelMonitor
n, offset = int(sys.argv[2]), int(sys.argv[3])
monitor = ModelMonitor.from_profile(sys.argv[1], CollectorRegistry())
cities = ("paris", "rome", "oslo")
def run(lo, hi):
    for i in range(lo + offset, hi + offset):
        monitor.observe({"age": float(i % 100), "city": cities[i % 3]}, float(i % 3) - 1.0)
run(0, n // 2)
print("half", flush=True)
sys.stdin.readline()
run(n // 2, n)
print("done", flush=True)
"""


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples
            if s.name.startswith("mlmon_")}


def expected(ranges: list[range]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Observations, city counts and age buckets for the records with these indices."""
    indices = [i for r in ranges for i in r]
    cities = Counter(CITIES[i % 3] for i in indices)
    rows = [("mlmon_observations_total", {}, len(indices))]
    rows += [("mlmon_feature_category_total", {"feature": "city", "category": c}, cities[c])
             for c in ("paris", "rome")]
    rows += [("mlmon_feature_value_bucket", {"feature": "age", "le": le},
              sum(float(i % 100) <= edge for i in indices))
             for le, edge in (("25.0", 25.0), ("50.0", 50.0), ("+Inf", float("inf")))]
    return {(name, tuple(sorted({**M, **labels}.items()))): float(v) for name, labels, v in rows}


def is_counter(name: str) -> bool:
    return name.endswith(("_total", "_bucket", "_count"))


def test_concurrent_workers_and_repeated_scrapes(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    environ = {**os.environ, "MLMON_MULTIPROC_DIR": str(tmp_path / "mp"),
               "PYTHONPATH": os.getcwd()}
    sizes, offsets = (6000, 9000), (0, 50)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=environ,
                              stdout=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(profile), str(n), str(o)],
                                env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for n, o in zip(sizes, offsets, strict=True)]
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "half"
        halves = [range(o, o + n // 2) for n, o in zip(sizes, offsets, strict=True)]
        history = [scrape(port)]
        for key, value in expected(halves).items():
            assert history[0][key] == value, key
        for w in workers:  # both resume at once; scrape while they run
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        while any(w.poll() is None for w in workers):
            history.append(scrape(port))
        assert all(w.wait(timeout=60) == 0 for w in workers)
        history.append(scrape(port))
    finally:
        for p in (*workers, server):
            p.kill()
            p.wait(timeout=10)
    for before, after in zip(history, history[1:], strict=False):
        backwards = [k for k, v in before.items() if is_counter(k[0]) and after[k] < v]
        assert not backwards, backwards
    full = [range(o, o + n) for n, o in zip(sizes, offsets, strict=True)]
    for key, value in expected(full).items():
        assert history[-1][key] == value, key
    assert history[-1][("mlmon_feature_value_count", tuple(sorted(
        {**M, "feature": "age"}.items())))] == sum(sizes)
