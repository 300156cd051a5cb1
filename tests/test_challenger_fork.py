"""A forked worker that cannot open its own challenger comparison file (a full disk, no inodes
left, no file descriptors left): like the monitors' storage (test_multiprocess_fork), it never
writes into its parent's file, keeps its comparison counts in memory, counts each failed open
by reason in `mlmon_worker_file_errors_total`, and moves its counts into a file of its own once
the fault is gone.

The faults are real: a small tmpfs filled up (in a private mount namespace, `unshare -rm`) and
a lowered RLIMIT_NOFILE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlmon.exporter.layout import NO_FILE_DESCRIPTORS, NO_SPACE
from tests.profiles import sample_profile_dict

PARENT_PAIRS, CHILD_PAIRS, HEALED_PAIRS = 3, 40, 5

# The parent (a gunicorn --preload master) creates the champion's logger with a challenger and
# compares PARENT_PAIRS; then the fault starts and it forks. The child compares CHILD_PAIRS + 2
# pairs (and skips one request), answers a scrape (written to `scrapes`, outside the directory)
# and says so; the parent reads its own comparison file; then the
# fault ends and the child, after its backoff, compares HEALED_PAIRS more (or exits at once:
# `ending`). The clocks are a number the child moves. Prints one JSON line.
SCENARIO = """
import errno, glob, json, os, resource, sys, threading
import numpy as np
from prometheus_client import CollectorRegistry
import mlmon.names as N
from mlmon.exporter import ModelMonitor
from mlmon.exporter.layout import WORKER_FILE_ERRORS
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.record import RecordBuilder
profile_path, mp, fault = sys.argv[1:4]
parent_n, child_n, healed_n = (int(v) for v in sys.argv[4:7])
ending, scrapes_path = sys.argv[7:9]
champion = Profile.load(profile_path)
registry = CollectorRegistry()
monitor = ModelMonitor(champion, registry, multiproc_directory=mp)
builder = RecordBuilder(model="churn", model_version="3", service_name="churn-api",
                        environment="test", profile=champion)
logger = PredictionLogger(builder, monitor=monitor)
import dataclasses
challenger = logger.add_challenger(dataclasses.replace(champion, model_version="4"),
                                   lambda f: 0.0, isolation="thread")
comparison = challenger.comparison
now = [0.0]
counts = comparison.counts
for storage in (counts, monitor.storage, challenger.logger.monitor.storage):
    storage.clock = lambda: now[0]
    storage.retry_first_s, storage.retry_max_s = 1.0, 8.0
for _ in range(parent_n):
    comparison.compare(1.0, 1.0)
own_file = lambda pid: [p for p in glob.glob(os.path.join(mp, "mlmon_challenger_*.db"))
                        if os.path.basename(p).split("_")[3].removesuffix(".db") == str(pid)]
[own] = own_file(os.getpid())
to_parent, from_child = os.pipe()
to_child, from_parent = os.pipe()
fillers = []
get = lambda name, **labels: registry.get_sample_value(name, {"model": "churn", **labels})
at = {"model_version": "4", "champion_version": "3"}
scrape = lambda: {
    "agree": get(N.CHALLENGER_COMPARED.sample, agreement="agree", **at),
    "disagree": get(N.CHALLENGER_COMPARED.sample, agreement="disagree", **at),
    "errors": {r: get(N.WORKER_FILE_ERRORS.sample, model_version="3", reason=r)
               for r in WORKER_FILE_ERRORS}}


def fill():
    if fault == "no_space":
        fd = os.open(os.path.join(mp, "filler"), os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        fillers.append(os.path.join(mp, "filler"))
    elif fault == "no_inodes":
        try:
            while True:
                path = os.path.join(mp, f"filler{len(fillers)}")
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT))
                fillers.append(path)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


limits = resource.getrlimit(resource.RLIMIT_NOFILE)
if fault == "no_fds":
    # 3 (stdin, stdout, stderr): no open() can succeed, even once the fork hooks close the
    # descriptors they inherited (their numbers are all above the limit)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, limits[1]))
else:
    fill()
pid = os.fork()
if pid == 0:
    os.close(to_parent)
    os.close(from_parent)
    for _ in range(child_n):
        comparison.compare(1.0, 1.0)
    comparison.skip("queue_full")
    now[0] += 1.5  # past the first backoff (1 s): the next count retries, and fails
    comparison.compare(1.0, 5.0)
    now[0] += 1.5  # not past the second (2 s): no retry
    comparison.compare(1.0, 1.0)
    during = scrape()
    os.write(from_child, b"counted\\n")
    os.read(to_child, 1)  # the parent ended the fault
    if fault == "no_fds":
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    with open(scrapes_path, "w") as fh:
        json.dump(during, fh)
    if ending == "exit":
        sys.exit(0)  # a worker stopped before its backoff ran out
    now[0] += 1.0  # past the second backoff

    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)  # the champion's storage retries too

    def count():
        for _ in range(healed_n):
            comparison.compare(1.0, 1.0)

    threads = [threading.Thread(target=count) for _ in range(4 if ending == "threads" else 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os._exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, limits)
os.close(from_child)
os.close(to_child)
child_said = os.read(to_parent, 100)
parent_file = np.fromfile(own)[:2].tolist()
for path in fillers:
    os.unlink(path)
try:
    os.write(from_parent, b"x")
except BrokenPipeError:
    pass
_, status = os.waitpid(pid, 0)
child_files = own_file(pid)  # before a scrape compacts it
child = np.fromfile(child_files[0]) if len(child_files) == 1 else None
print(json.dumps({
    "child_said": child_said.decode(), "status": status, "parent_file": parent_file,
    "child_files": len(child_files),
    "child_file": None if child is None else child[:3].tolist(),
    "agree": get(N.CHALLENGER_COMPARED.sample, agreement="agree", **at),
    "disagree": get(N.CHALLENGER_COMPARED.sample, agreement="disagree", **at),
    "queue_full": get(N.CHALLENGER_SKIPPED.sample, reason="queue_full", **at),
    "errors": scrape()["errors"],
    "child_scrape": json.load(open(scrapes_path)) if os.path.exists(scrapes_path) else None,
}), flush=True)
"""


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(sample_profile_dict()))
    return path


def run(profile: Path, mp: Path, fault: str, tmpfs: str | None = None,
        ending: str = "observe", healed: int = HEALED_PAIRS) -> dict[str, Any]:
    args = [str(profile), str(mp), fault, str(PARENT_PAIRS), str(CHILD_PAIRS), str(healed),
            ending, str(mp.parent / "scrape.json")]
    command = [sys.executable, "-c", SCENARIO, *args]
    if tmpfs is not None:
        mp.mkdir()
        # a private mount namespace with a small tmpfs on the directory: a disk that fills up
        command = ["unshare", "-rm", "sh", "-c",
                   f'mount -t tmpfs -o {tmpfs} tmpfs "$1" && shift && exec "$@"', "sh",
                   str(mp), *command]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    report["stderr"] = out.stderr
    return report


@pytest.mark.parametrize(("fault", "tmpfs", "reason"), [
    ("no_space", "size=256k", NO_SPACE),
    ("no_inodes", "size=4m,nr_inodes=16", NO_SPACE),
    ("no_fds", None, NO_FILE_DESCRIPTORS),
])
def test_a_child_without_its_own_comparison_file_never_writes_its_parents(
        profile, tmp_path, fault, tmpfs, reason):
    report = run(profile, tmp_path / "mp", fault, tmpfs)
    assert report["child_said"] == "counted\n" and report["status"] == 0, report["stderr"]
    # the parent's file holds the parent's comparisons only (agree, disagree)
    assert report["parent_file"] == [PARENT_PAIRS, 0.0], report
    # once the fault is gone, the child's counts are in a file of its own, none lost
    child_agree = CHILD_PAIRS + 1 + HEALED_PAIRS
    assert report["child_file"] == [child_agree, 1.0, 1.0], report  # agree, disagree, queue_full
    assert report["agree"] == PARENT_PAIRS + child_agree and report["disagree"] == 1.0, report
    assert report["queue_full"] == 1.0, report
    # counted under the champion's series: right after the fork its monitor's file and the
    # comparison's failed to open; after the first backoff the comparison retried and failed,
    # and so did the monitor's, retried when the comparison took its lock to count that
    errors = {r: 4.0 if r == reason else 0.0 for r in report["errors"]}
    assert report["errors"] == errors, report
    # during the fault, the child's own scrape showed the parent's file plus the comparisons and
    # the failures it held in memory; with no descriptor at all (a limit of 3) it cannot read
    # the files (nor, in a server, accept a scrape's connection): its memory only
    files = 0 if fault == "no_fds" else PARENT_PAIRS
    assert report["child_scrape"] == {"agree": files + CHILD_PAIRS + 1, "disagree": 1.0,
                                      "errors": errors}, report


def test_threads_comparing_while_the_file_opens_lose_no_count(profile, tmp_path):
    report = run(profile, tmp_path / "mp", "no_fds", ending="threads", healed=2000)
    assert report["status"] == 0 and report["parent_file"] == [PARENT_PAIRS, 0.0], report
    assert report["child_file"][0] == CHILD_PAIRS + 1 + 4 * 2000, report


def test_a_child_that_exits_without_its_comparison_file_tries_once_more(profile, tmp_path):
    """The fault ends, and the child exits before its backoff runs out: at exit it retries, so
    what it compared is not lost."""
    report = run(profile, tmp_path / "mp", "no_fds", ending="exit")
    assert report["status"] == 0 and report["parent_file"] == [PARENT_PAIRS, 0.0], report
    assert report["child_file"] == [CHILD_PAIRS + 1, 1.0, 1.0], report
    assert report["agree"] == PARENT_PAIRS + CHILD_PAIRS + 1, report
    assert report["errors"][NO_FILE_DESCRIPTORS] == 4.0, report
