"""A forked worker that cannot open its own worker file (a full disk, no inodes left, no file
descriptors left): it never writes into its parent's file, keeps its counts in memory, counts
each failed open by reason, shows both in the scrapes it answers meanwhile, and moves them into
a file of its own once the fault is gone, counting nothing twice.

The faults are real: a small tmpfs filled up (in a private mount namespace, `unshare -rm`, as
test_multiprocess_compaction's read-only mount) and a lowered RLIMIT_NOFILE.
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

PARENT_RECORDS, CHILD_RECORDS, HEALED_RECORDS = 3, 40, 5

# The parent (a gunicorn --preload master) creates the monitor and counts PARENT_RECORDS; then
# the fault starts and it forks. The child counts CHILD_RECORDS + 2 records, a request and a
# label, answers a scrape and says so; the parent reads its own file; then the fault ends and
# the child, after its backoff, counts HEALED_RECORDS more (or exits at once, or first answers
# a scrape, which opens the file: `ending`) and answers a scrape. The storage's clock is a
# number the child moves, so which observation retries is known. The child writes its scrapes
# to `scrapes` (outside the directory); the parent prints one JSON line.
SCENARIO = """
import errno, glob, json, os, resource, sys, threading
import numpy as np
from prometheus_client import CollectorRegistry
import mlmon.names as N
from mlmon.exporter import ModelMonitor
from mlmon.exporter.layout import WORKER_FILE_ERRORS
profile, mp, fault = sys.argv[1:4]
parent_n, child_n, healed_n = (int(v) for v in sys.argv[4:7])
ending, scrapes_path = sys.argv[7:9]
registry = CollectorRegistry()
monitor = ModelMonitor.from_profile(profile, registry, multiproc_directory=mp)
now = [0.0]
monitor.storage.clock = lambda: now[0]
monitor.storage.retry_first_s, monitor.storage.retry_max_s = 1.0, 8.0
for _ in range(parent_n):
    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
own_file = lambda: glob.glob(os.path.join(mp, f"mlmon_*_{os.getpid()}_*.db"))
[own] = own_file()
slot = monitor.layout.observations
to_parent, from_child = os.pipe()
to_child, from_parent = os.pipe()
fillers = []
get = lambda name, **labels: registry.get_sample_value(
    name, {"model": "churn", "model_version": "3", **labels})
scrape = lambda: {
    "total": get(N.OBSERVATIONS.sample),
    "errors": {r: get(N.WORKER_FILE_ERRORS.sample, reason=r) for r in WORKER_FILE_ERRORS}}
scrapes = {}


def save_scrapes():
    with open(scrapes_path, "w") as fh:
        json.dump(scrapes, fh)


def fill():
    # what the real fault looks like: the directory's filesystem out of space or inodes
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
    lowest = os.dup(0)
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, limits[1]))  # no open() can succeed
else:
    fill()
pid = os.fork()
if pid == 0:
    os.close(to_parent)
    os.close(from_parent)
    for _ in range(child_n):
        monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
    monitor.record_request(0.01)
    monitor.observe_outcome(0.75, 0.5, predicted_at=0.0, arrived_at=10.0)
    now[0] += 1.5  # past the first backoff (1 s): the next observation retries, and fails
    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
    now[0] += 1.5  # not past the second (2 s): no retry
    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
    scrapes["during"] = scrape()  # the fault lasts: still no file
    os.write(from_child, b"counted\\n")
    os.read(to_child, 1)  # the parent ended the fault
    if fault == "no_fds":
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    if ending == "exit":
        save_scrapes()
        sys.exit(0)  # a worker stopped (recycled, scaled down) before its backoff ran out
    now[0] += 1.0  # past the second backoff
    if ending == "scrape":
        # the first to take the lock after the backoff is a scrape: it moves the counts into
        # the file that now opens, then reads the files
        scrapes["catch_up"] = scrape()
        scrapes["catch_up"]["own_files"] = len(own_file())

    def count():
        for _ in range(healed_n):
            monitor.observe({"age": 30.0, "city": "paris"}, 0.5)

    # "threads": threads of a worker observe while one of them moves the counts to the file
    counters = [threading.Thread(target=count) for _ in range(4 if ending == "threads" else 1)]
    seen = []

    def scrape_meanwhile():
        while any(thread.is_alive() for thread in counters) or not seen:
            seen.append(get(N.OBSERVATIONS.sample))

    threads = counters + [threading.Thread(target=scrape_meanwhile)] * (ending == "threads")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scrapes["after"] = scrape()
    scrapes["meanwhile"] = seen
    save_scrapes()
    os._exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, limits)
os.close(from_child)  # so that a dead child reads as end of file
os.close(to_child)
child_said = os.read(to_parent, 100)
parent_file = float(np.fromfile(own)[slot])
for path in fillers:
    os.unlink(path)
try:
    os.write(from_parent, b"x")
except BrokenPipeError:
    pass  # the child is dead: its status says how
_, status = os.waitpid(pid, 0)
child_files = glob.glob(os.path.join(mp, f"mlmon_*_{pid}_*.db"))  # before a scrape compacts it
own_counts = np.fromfile(child_files[0]) if len(child_files) == 1 else None
print(json.dumps({
    "child_said": child_said.decode(), "status": status, "parent_file": parent_file,
    "child_files": len(child_files),
    "child_file": None if own_counts is None else {
        "observations": float(own_counts[slot]),
        "requests": float(own_counts[monitor.layout.requests["ok"]]),
        "label_error": float(own_counts[monitor.layout.outcomes.absolute]),
    },
    "total": get(N.OBSERVATIONS.sample),
    "errors": scrape()["errors"],
    "child_scrapes": json.load(open(scrapes_path)) if os.path.exists(scrapes_path) else None,
}), flush=True)
"""


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(sample_profile_dict()))
    return path


def run(profile: Path, mp: Path, fault: str, tmpfs: str | None = None,
        ending: str = "observe", healed: int = HEALED_RECORDS) -> dict[str, Any]:
    args = [str(profile), str(mp), fault, str(PARENT_RECORDS), str(CHILD_RECORDS), str(healed),
            ending, str(mp.parent / "scrapes.json")]
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
def test_a_child_without_its_own_file_never_writes_its_parents(profile, tmp_path, fault, tmpfs,
                                                               reason):
    report = run(profile, tmp_path / "mp", fault, tmpfs)
    # the child lived through the fault (a full disk used to kill it with SIGBUS) ...
    assert report["child_said"] == "counted\n" and report["status"] == 0, report
    # ... and the parent's file holds the parent's counts only
    assert report["parent_file"] == PARENT_RECORDS, report
    # once the fault is gone, the child's counts are in a file of its own, none lost
    child_records = CHILD_RECORDS + 2 + HEALED_RECORDS
    assert report["child_file"] == {"observations": child_records, "requests": 1.0,
                                    "label_error": 0.25}, report
    assert report["total"] == PARENT_RECORDS + child_records
    # two failed opens: right after the fork, and the retry after the first backoff
    errors = {r: 2.0 if r == reason else 0.0 for r in report["errors"]}
    assert report["errors"] == errors, report
    # while the fault lasted, the child's own scrape showed the files (the parent's) plus what
    # it counted in memory, its failures included (at the open-files limit too: the descriptor
    # of the parent's lock it closed reads the files one at a time, but cannot create its own)
    scrapes = report["child_scrapes"]
    assert scrapes["during"] == {"total": PARENT_RECORDS + CHILD_RECORDS + 2, "errors": errors}
    # after the catch-up, from the file: nothing counted twice
    assert scrapes["after"] == {"total": PARENT_RECORDS + child_records, "errors": errors}


def test_a_scrape_that_opens_the_file_counts_everything_once(profile, tmp_path):
    """The first to take the lock once the backoff passed is a scrape: it moves the counts
    into the new file and sums the files, under the same lock."""
    report = run(profile, tmp_path / "mp", "no_space", "size=256k", ending="scrape")
    errors = {r: 2.0 if r == NO_SPACE else 0.0 for r in report["errors"]}
    scrapes = report["child_scrapes"]
    assert scrapes["catch_up"] == {"total": PARENT_RECORDS + CHILD_RECORDS + 2, "errors": errors,
                                   "own_files": 1}, report
    child_records = CHILD_RECORDS + 2 + HEALED_RECORDS
    assert scrapes["after"] == {"total": PARENT_RECORDS + child_records, "errors": errors}
    assert report["child_file"]["observations"] == child_records, report


def test_threads_observing_while_the_file_opens_lose_no_count(profile, tmp_path):
    report = run(profile, tmp_path / "mp", "no_fds", ending="threads", healed=2000)
    assert report["status"] == 0 and report["parent_file"] == PARENT_RECORDS, report
    assert report["child_file"]["observations"] == CHILD_RECORDS + 2 + 4 * 2000, report
    # a scraping thread meanwhile, across the catch-up: never a count twice (a total above the
    # final one, or one that goes down) nor a count missing (a total that goes down)
    final = PARENT_RECORDS + CHILD_RECORDS + 2 + 4 * 2000
    seen = report["child_scrapes"]["meanwhile"]
    assert seen and seen == sorted(seen) and seen[-1] <= final, seen
    assert report["child_scrapes"]["after"]["total"] == final, report


def test_a_child_that_exits_without_its_file_tries_once_more(profile, tmp_path):
    """The fault ends, and the child exits before its backoff runs out: at exit it retries, so
    what it counted is not lost."""
    report = run(profile, tmp_path / "mp", "no_fds", ending="exit")
    assert report["status"] == 0 and report["parent_file"] == PARENT_RECORDS, report
    assert report["child_file"] == {"observations": CHILD_RECORDS + 2, "requests": 1.0,
                                    "label_error": 0.25}, report
    assert report["total"] == PARENT_RECORDS + CHILD_RECORDS + 2
    assert report["errors"][NO_FILE_DESCRIPTORS] == 2.0
