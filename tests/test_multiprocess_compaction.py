"""Multi-process directories with real worker processes: one counters' start whichever process
answers, dead workers' files compacted (SIGKILL, recycling, --preload forks), counters that
never go backwards while other processes scrape, crash-safe compaction, bounded caches."""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor, Profile
from mlmon.exporter.collector import MultiProcessCollector
from mlmon.exporter.layout import Layout
from mlmon.exporter.multiprocess import (
    _PARSED,
    COUNTERS_START_KEY,
    load_meta,
    mark_process_dead,
    meta_path,
    open_storage,
)
from mlmon.exporter.worker_files import (
    _replace_compacted,
    directory_lock,
    list_files,
    read_compacted,
    read_profile,
    zero_gauges,
)
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}
COUNTERS_START = "mlmon_counters_start_timestamp_seconds"
PROFILE_LOADED = "mlmon_profile_loaded_timestamp_seconds"

# A worker: waits for the wall-clock time argv[3] (so several start at once), observes argv[2]
# records, reports its own view, then exits ("exit"), waits for stdin to close ("wait"), or
# waits with a request left in flight ("stuck").
WORKER = """
import json, os, sys, time
from prometheus_client import CollectorRegistry
from mlmon.exporter import ModelMonitor
n, start, mode = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
while time.time() < start:
    time.sleep(0.005)
registry = CollectorRegistry()
monitor = ModelMonitor.from_profile(sys.argv[1], registry)
for i in range(n):
    monitor.observe({"age": float(i), "city": "paris"}, float(n))  # its window max: n
if mode == "stuck":
    monitor.track_request().__enter__()
get = lambda name: registry.get_sample_value(name, {"model": "churn", "model_version": "3"})
print(json.dumps({"pid": os.getpid(), "start": get("mlmon_counters_start_timestamp_seconds"),
                  "loaded": get("mlmon_profile_loaded_timestamp_seconds")}), flush=True)
if mode != "exit":
    sys.stdin.read()
"""

# gunicorn --preload: the parent creates the monitor and forks; the child observes and waits;
# the parent exits while the child lives on.
PRELOAD = """
import os, sys
from prometheus_client import CollectorRegistry
from mlmon.exporter import ModelMonitor
monitor = ModelMonitor.from_profile(sys.argv[1], CollectorRegistry())
for _ in range(3):
    monitor.observe({"age": 30.0}, 0.5)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    for _ in range(4):
        monitor.observe({"age": 30.0}, 0.5)
    os.write(w, b"x")
    sys.stdin.read()
    os._exit(0)
os.close(w)
os.read(r, 1)
print(pid, flush=True)
os._exit(0)
"""

# A scrape-only process that scrapes in a loop until argv[2] exists and reports every
# observations total it saw going down.
READER = """
import json, os, sys, time
from prometheus_client import CollectorRegistry
from mlmon.exporter.collector import MultiProcessCollector
from mlmon.exporter.layout import Layout
registry = CollectorRegistry()
MultiProcessCollector(registry, sys.argv[1])
labels = {"model": "churn", "model_version": "3"}
last, reads, drops = 0.0, 0, []
while not os.path.exists(sys.argv[2]):
    value = registry.get_sample_value("mlmon_observations_total", labels) or 0.0
    if value < last:
        drops.append((last, value))
    last, reads = max(last, value), reads + 1
    time.sleep(0.01)  # scrape often, but leave the workers some CPU
print(json.dumps({"reads": reads, "drops": drops, "last": last}), flush=True)
"""


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    mp = tmp_path / "mp"
    environ = {**os.environ, "MLMON_MULTIPROC_DIR": str(mp), "PYTHONPATH": os.getcwd()}
    return profile, mp, environ


def start_workers(profile: Path, environ: dict[str, str], counts: list[int], mode: str
                  ) -> list[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Start one worker per count at the same instant; returns each with its report."""
    at = time.time() + 1.0  # every interpreter is up by then (numpy import included)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(profile), str(n), repr(at),
                               mode], env=environ, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in counts]
    out = []
    for proc in procs:
        assert proc.stdout is not None
        out.append((proc, json.loads(proc.stdout.readline())))
    return out


def stop(procs: list[tuple[subprocess.Popen[str], dict[str, Any]]]) -> None:
    for proc, _ in procs:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)


def scrape(mp: Path) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(mp))
    return registry


def value(registry: CollectorRegistry, name: str = "mlmon_observations_total") -> float | None:
    return registry.get_sample_value(name, M)


def db_files(mp: Path) -> list[str]:
    return sorted(p.name for p in mp.glob("mlmon_*.db"))


def sha_of(profile: Path) -> str:
    """What names the profile's files: its sha and the slot order's version."""
    return Layout(Profile.load(profile)).file_key


def test_counters_start_is_one_value_for_every_worker_and_a_sidecar(env):
    profile, mp, environ = env
    before = time.time()
    procs = start_workers(profile, environ, [1, 2, 3, 4], "wait")  # racing to create the meta
    try:
        starts = {report["start"] for _, report in procs}
        loaded = {report["loaded"] for _, report in procs}
        assert len(starts) == 1 and len(loaded) == 4  # one start; each process its own load
        start = starts.pop()
        assert before < start < time.time()
        assert load_meta(meta_path(str(mp), sha_of(profile)))[COUNTERS_START_KEY] == start
        sidecar = scrape(mp)
        assert value(sidecar, COUNTERS_START) == start
        assert value(sidecar) == 10.0
        assert value(sidecar, "mlmon_prediction_window_max") == 4.0  # max over live workers
        # a worker started later (a recycled one) agrees too
        [(late, report)] = start_workers(profile, environ, [5], "exit")
        late.wait(timeout=60)
        assert report["start"] == start and report["loaded"] > max(loaded)
    finally:
        stop(procs)
    sidecar = scrape(mp)
    assert value(sidecar, COUNTERS_START) == start and value(sidecar) == 15.0
    assert value(sidecar, PROFILE_LOADED) is not None  # still exported, as process info
    # the dead workers' windows went with compaction: no window series at all
    assert value(sidecar, "mlmon_prediction_window_max") is None


def test_a_group_of_compatible_profiles_starts_at_its_earliest_start(env):
    """Files of an older profile with the same layout are summed into the newest: the sum
    started when the older one did, whichever of the two a worker has loaded."""
    profile, mp, _ = env
    directory = str(mp)
    old = ModelMonitor.from_profile(profile, CollectorRegistry(), multiproc_directory=directory)
    data = sample_profile_dict()
    data["rows"] = 1200  # retrained: another sha, same slots
    new = ModelMonitor(Profile.from_dict(data), CollectorRegistry(), multiproc_directory=directory)
    for monitor, start, opened in ((old, 1_000.0, 10.0), (new, 2_000.0, 20.0)):
        path = meta_path(directory, monitor.layout.file_key)
        meta = load_meta(path)
        meta[COUNTERS_START_KEY] = start
        Path(path).write_text(json.dumps(meta))
        os.utime(path, (opened, opened))  # new is the newest profile
    old.observe({"age": 1.0}, 0.5)
    new.observe({"age": 1.0}, 0.5)
    for registry in (old.registry, new.registry, scrape(mp)):
        assert registry.get_sample_value(COUNTERS_START, M) == 1_000.0
        assert registry.get_sample_value("mlmon_observations_total", M) == 2.0


def test_a_scrape_waits_for_a_compaction_in_progress(env):
    """Readers take the directory lock: while a compactor (here the test) holds it, another
    process's scrape does not return; it does as soon as the lock is released. (The worker
    stays alive, so the scrape has nothing to compact: it waits as a reader.)"""
    profile, mp, environ = env
    procs = start_workers(profile, environ, [3], "wait")
    script = ("import sys; from tests.test_multiprocess_compaction import scrape, value;"
              "from pathlib import Path; print('ready', flush=True);"
              "print(value(scrape(Path(sys.argv[1]))), flush=True)")
    with directory_lock(str(mp), exclusive=True):
        reader = subprocess.Popen([sys.executable, "-c", script, str(mp)], env=environ,
                                  stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
        try:
            reader.wait(timeout=3)  # ample time for one scrape, were it not blocked
        except subprocess.TimeoutExpired:
            pass
        blocked = reader.poll() is None
    out, _ = reader.communicate(timeout=60)
    stop(procs)
    assert blocked and float(out) == 3.0


def test_recycled_workers_keep_the_directory_bounded_while_other_processes_scrape(env):
    """Six generations of three workers (recycled, one SIGKILLed per generation) while two
    scrape-only processes read (and compact) concurrently: no total ever goes down, the
    directory never holds more than the live workers plus one compacted file, and the totals
    are exact."""
    profile, mp, environ = env
    stop_file = mp.parent / "stop"
    mp.mkdir()
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(mp), str(stop_file)],
                                env=environ, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    expected, most_files = 0, 0
    try:
        for generation in range(6):
            counts = [generation + 1, 7, 11]
            procs = start_workers(profile, environ, counts, "wait")
            expected += sum(counts)
            most_files = max(most_files, len(db_files(mp)))
            procs[0][0].send_signal(signal.SIGKILL)  # a crash: no hook, no clean exit
            stop(procs)
            assert value(scrape(mp)) == expected
            assert len(db_files(mp)) <= 1  # everyone is dead: only the compacted file
    finally:
        stop_file.touch()
        reports = [json.loads(r.communicate(timeout=60)[0]) for r in readers]
    assert most_files <= 1 + 3
    assert db_files(mp) == [f"mlmon_{sha_of(profile)}_compacted.db"]
    for report in reports:
        assert report["drops"] == [] and report["reads"] > 10
        assert report["last"] <= expected
    assert value(scrape(mp)) == expected


def test_a_sigkilled_worker_is_compacted_and_its_in_flight_gauge_cleared(env):
    profile, mp, environ = env
    [(proc, report)] = start_workers(profile, environ, [9], "stuck")
    try:
        live = scrape(mp)
        assert value(live, "mlmon_requests_in_flight") == 1.0 and value(live) == 9.0
        assert len(db_files(mp)) == 1  # alive: its lock holds, nothing to compact
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        dead = scrape(mp)
        assert value(dead, "mlmon_requests_in_flight") == 0.0 and value(dead) == 9.0
        assert db_files(mp) == [f"mlmon_{sha_of(profile)}_compacted.db"]
        assert mark_process_dead(report["pid"], str(mp)) == 0  # nothing left for the hook
    finally:
        stop([(proc, report)])


def test_mark_process_dead_compacts_the_dead_workers_files(env):
    profile, mp, environ = env
    procs = start_workers(profile, environ, [4, 6], "wait")  # both files exist, then both die
    stop(procs)
    assert len(db_files(mp)) == 2
    assert mark_process_dead(procs[0][1]["pid"], str(mp)) == 1  # both merged, one was its
    assert db_files(mp) == [f"mlmon_{sha_of(profile)}_compacted.db"]
    assert value(scrape(mp)) == 10.0


def test_preload_fork_child_does_not_keep_the_parents_file_alive(env):
    """The child closes its copy of the parent's lock: when the parent dies first, its file is
    compacted while the child (still holding a mapping of it) lives on."""
    profile, mp, environ = env
    proc = subprocess.Popen([sys.executable, "-c", PRELOAD, str(profile)], env=environ,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.wait(timeout=60)
    try:
        assert value(scrape(mp)) == 7.0
        names = db_files(mp)
        assert f"mlmon_{sha_of(profile)}_compacted.db" in names  # the parent's file, merged
        assert [n for n in names if "compacted" not in n][0].split("_")[2] == str(child)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the child reads the same pipe
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    assert value(scrape(mp)) == 7.0 and len(db_files(mp)) == 1


def test_a_new_process_with_a_dead_workers_pid_counts_that_file_once(env, tmp_path):
    profile, mp, environ = env
    stop(start_workers(profile, environ, [5], "exit"))
    [dead] = db_files(mp)
    sha, _, token = dead[len("mlmon_"):-len(".db")].split("_")
    reused = f"mlmon_{sha}_{os.getpid()}_{token}.db"  # as if that worker had had our pid
    os.rename(mp / dead, mp / reused)
    monitor = ModelMonitor.from_profile(profile, CollectorRegistry(), multiproc_directory=str(mp))
    monitor.observe({"age": 1.0}, 0.5)
    monitor.observe({"age": 2.0}, 0.5)
    assert reused not in db_files(mp)  # compacted before our file was created, not continued
    assert monitor.registry.get_sample_value("mlmon_observations_total", M) == 7.0
    assert value(scrape(mp)) == 7.0


def test_a_compactor_killed_before_unlinking_does_not_double_count(env):
    """The internal steps of a compaction, stopped after the compacted file replaced the old
    one (and a temporary file left by an earlier crash): readers skip the absorbed files, the
    next compaction removes them, and the totals never change."""
    profile, mp, environ = env
    # both alive until both have their files (a worker starting after the other's exit would
    # compact it), then two dead files
    stop(start_workers(profile, environ, [5, 8], "wait"))
    sha = sha_of(profile)
    layout = layout_of(profile)
    names = list_files(str(mp), sha).workers
    assert len(names) == 2 and names == sorted(names)
    total = np.sum([np.fromfile(mp / n, count=layout.size) for n in names], axis=0)
    zero_gauges(total, layout)
    stale_tmp = mp / f".mlmon_{sha}_compacted.4242.tmp"
    stale_tmp.write_bytes(b"\0" * 16)
    half_created = mp / f"mlmon_{sha}_4242_0badc0ffee.db"  # its creator died before sizing it
    half_created.write_bytes(b"")
    with directory_lock(str(mp), exclusive=True):
        _replace_compacted(str(mp), sha, total, names)  # ... and the compactor dies here
    assert list_files(str(mp), sha).workers == sorted([*names, half_created.name])
    with directory_lock(str(mp), exclusive=False):
        arrays = read_profile(str(mp), sha, layout.size)
    assert len(arrays) == 1 and arrays[0][layout.observations] == 13.0
    assert value(scrape(mp)) == 13.0  # this scrape finishes the unlinks
    assert db_files(mp) == [f"mlmon_{sha}_compacted.db"] and not stale_tmp.exists()
    assert not half_created.exists()
    assert read_compacted(str(mp), sha, layout.size)[1] == []  # the absorbed list is emptied
    assert value(scrape(mp)) == 13.0


def test_a_dead_workers_file_that_cannot_be_read_is_kept_and_counted_once(env, monkeypatch):
    """A read error while compacting (EIO, injected into the compactor's read of one dead
    worker's file) is not a file its creator never sized: the file stays, every scrape
    meanwhile counts it once, and the first compaction that can read it absorbs it."""
    profile, mp, environ = env
    stop(start_workers(profile, environ, [4, 6], "wait"))  # two dead files
    sha = sha_of(profile)
    layout = layout_of(profile)
    unreadable, _ = list_files(str(mp), sha).workers
    its_count = np.fromfile(mp / unreadable, count=layout.size)[layout.observations]
    assert its_count in (4.0, 6.0)
    inode = (mp / unreadable).stat().st_ino
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        if os.fstat(fd).st_ino == inode:
            raise OSError(errno.EIO, "injected")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    for _ in range(2):  # each scrape tries to compact it again
        assert value(scrape(mp)) == 10.0
        assert db_files(mp) == sorted([f"mlmon_{sha}_compacted.db", unreadable])
    compacted, _ = read_compacted(str(mp), sha, layout.size)
    assert compacted is not None and compacted[layout.observations] == 10.0 - its_count
    monkeypatch.undo()  # the disk recovers
    assert value(scrape(mp)) == 10.0
    assert db_files(mp) == [f"mlmon_{sha}_compacted.db"]
    assert value(scrape(mp)) == 10.0


def test_a_dead_workers_file_of_a_size_it_cannot_have_is_kept(env):
    """Only an empty file was never sized; a file cut short by something else is not deleted
    (its counts may be recoverable by hand), and not counted (readers skip it too)."""
    profile, mp, environ = env
    stop(start_workers(profile, environ, [4, 6], "wait"))
    sha = sha_of(profile)
    layout = layout_of(profile)
    cut, _ = list_files(str(mp), sha).workers
    its_count = np.fromfile(mp / cut, count=layout.size)[layout.observations]
    os.truncate(mp / cut, 8)
    assert value(scrape(mp)) == 10.0 - its_count
    assert db_files(mp) == sorted([f"mlmon_{sha}_compacted.db", cut])


def layout_of(profile: Path) -> Layout:
    return Layout(Profile.load(profile))


def test_metadata_and_files_of_older_versions(env):
    """Metadata without a counters' start exports 0 (not a made-up recent time); files named
    without a lock token (older versions) are summed and never compacted."""
    profile, mp, environ = env
    stop(start_workers(profile, environ, [6], "exit"))
    sha = sha_of(profile)
    path = meta_path(str(mp), sha)
    meta = load_meta(path)
    del meta[COUNTERS_START_KEY]
    Path(path).write_text(json.dumps(meta))
    [dead] = db_files(mp)
    legacy = f"mlmon_{sha}_4242.db"
    shutil.copy(mp / dead, mp / legacy)
    registry = scrape(mp)
    assert value(registry, COUNTERS_START) == 0.0
    assert value(registry) == 12.0
    assert legacy in db_files(mp) and dead not in db_files(mp)


def test_a_sidecar_on_a_read_only_mount_scrapes_exact_totals(env):
    profile, mp, environ = env
    procs = start_workers(profile, environ, [3, 4], "wait")
    procs[1][0].stdin.close()  # type: ignore[union-attr]
    procs[1][0].wait(timeout=60)  # one dead file, which the sidecar cannot compact
    script = ("import sys; from tests.test_multiprocess_compaction import scrape, value;"
              "from pathlib import Path; r = scrape(Path(sys.argv[1]));"
              "print(value(r), value(r, 'mlmon_counters_start_timestamp_seconds'),"
              " value(r, 'mlmon_requests_in_flight'))")
    try:
        # a private mount namespace in which the directory is read-only
        out = subprocess.run(
            ["unshare", "-rm", "sh", "-c",
             'mount --bind -o ro "$1" "$1" && exec "$2" -c "$3" "$1"', "sh",
             str(mp), sys.executable, script],
            env=environ, capture_output=True, text=True, timeout=60, check=True)
        total, start, in_flight = (float(v) for v in out.stdout.split())
        assert total == 7.0 and in_flight == 0.0
        assert start == procs[0][1]["start"]
        assert len(db_files(mp)) == 2  # not compacted by the read-only process
    finally:
        stop(procs)


def test_caches_hold_what_is_alive(env):
    profile, mp, _ = env
    directory = str(mp)
    monitors = [ModelMonitor.from_profile(profile, CollectorRegistry(),
                                          multiproc_directory=directory) for _ in range(20)]
    storage = monitors[0].storage
    assert all(m.storage is storage for m in monitors)
    del monitors
    gc.collect()
    keep = ModelMonitor.from_profile(profile, CollectorRegistry(), multiproc_directory=directory)
    assert len(storage._on_reopen) == 1  # the 20 dropped monitors' callbacks are pruned
    other = sample_profile_dict()
    other["model"]["name"] = "fraud"
    ModelMonitor(Profile.from_dict(other), CollectorRegistry(), multiproc_directory=directory)
    collector = MultiProcessCollector(None, directory)
    list(collector.collect())
    assert len(collector._renderers) == 2 and len(_PARSED[directory]) == 2
    os.unlink(meta_path(directory, Layout(Profile.from_dict(other)).file_key))  # gone
    list(collector.collect())
    assert len(collector._renderers) == 1 and len(_PARSED[directory]) == 1
    assert open_storage(keep.layout, directory) is storage
