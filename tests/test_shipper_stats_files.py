"""Summed shipper series never go back: a same-pid take-over continues the dead owner's counts,
and a drained orphan's counts move to the root's retired file before its directory is removed.

The dead owners are real processes (a Shipper in a subprocess that exits); Elasticsearch is a
closed loopback port, so records stay spooled (the delivery path is in
tests/integration/test_shipper_es.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from mlmon.log_shipper.metrics import SpoolRootCollector
from mlmon.log_shipper.shipper import Shipper
from mlmon.log_shipper.spool_dirs import orphan_candidates
from mlmon.log_shipper.stats_files import (
    RETIRED_FILE,
    STATS_FILE,
    carried_counts,
    read_root_counts,
    retire,
    write_stats_file,
)
from tests.test_shipper import _record, _shipper, _spooled_ids, closed_url

__all__ = ["closed_url"]  # the fixture, used by name

REPO = Path(__file__).resolve().parents[1]

# A process that ships `count` records to `spool_dir` and exits; `bad`: records that are not
# JSON (dropped as unserializable), so its spool ends empty.
_OWNER = """
import sys
from mlmon.log_shipper.shipper import Shipper
url, spool_dir, count, bad = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "bad"
shipper = Shipper(es=url, index="mlmon-predictions-test", spool_dir=spool_dir, max_retries=0,
                  handle_signals=False, initial_backoff_s=0.05, max_backoff_s=0.1)
for i in range(count):
    shipper.ship({"event": {"id": f"{spool_dir}-{i}"}, "x": {1} if bad else i})
shipper.close(timeout=0.2)
"""


def _dead_owner(url: str, spool_dir: Path, count: int, *, bad: bool = False) -> None:
    subprocess.run([sys.executable, "-c", _OWNER, url, str(spool_dir), str(count),
                    "bad" if bad else "good"], cwd=REPO, check=True, timeout=60)


def _summed(root: Path, name: str, labels: dict[str, str] | None = None) -> float | None:
    registry = CollectorRegistry()
    registry.register(SpoolRootCollector(root))
    return registry.get_sample_value(name, labels)


def test_a_process_taking_over_a_dead_owners_directory_continues_its_counts(
        closed_url: str, tmp_path: Path) -> None:
    own = tmp_path / "pid-4242"  # a container restarted with the same pid, same spool volume
    _dead_owner(closed_url, own, 10)
    assert _summed(tmp_path, "mlmon_shipper_queued_total") == 10
    shipper = _shipper(closed_url, own)
    seen = [_summed(tmp_path, "mlmon_shipper_queued_total")]
    for i in range(2):
        shipper.ship(_record(i))
        seen.append(_summed(tmp_path, "mlmon_shipper_queued_total"))
    shipper.close(timeout=0.2)
    seen.append(_summed(tmp_path, "mlmon_shipper_queued_total"))
    assert min(v or 0 for v in seen) >= 10  # never back to zero on the way
    assert seen[-1] == 12
    assert _summed(tmp_path, "mlmon_shipper_spooled_total") == 12
    assert len(_spooled_ids(own)) == 12  # the dead owner's records are still owed


def test_drained_orphans_are_removed_and_their_counts_kept_in_the_retired_file(
        closed_url: str, tmp_path: Path) -> None:
    for n in range(3):  # recycled workers whose spools ended empty
        _dead_owner(closed_url, tmp_path / f"pid-{n + 1}", 5, bad=True)
    assert _summed(tmp_path, "mlmon_shipper_queued_total") == 15
    own = tmp_path / "pid-99"
    shipper = Shipper(es=closed_url, index="mlmon-predictions-test", spool_dir=own,
                      adopt_dirs=orphan_candidates(tmp_path, own), handle_signals=False)
    try:
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["pid-99"]
        assert (tmp_path / RETIRED_FILE).is_file()
        assert _summed(tmp_path, "mlmon_shipper_queued_total") == 15
        assert _summed(tmp_path, "mlmon_shipper_dropped_total",
                       {"reason": "unserializable"}) == 15
        shipper.ship(_record(1))
    finally:
        shipper.close(timeout=0.2)
    assert _summed(tmp_path, "mlmon_shipper_queued_total") == 16


def _stats(directory: Path, queued: int, instance: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_stats_file(directory, {"queued": queued, "dropped": {"closed": 1},
                                 "instance": instance})


def test_a_crash_between_retiring_and_removing_counts_the_orphan_once(tmp_path: Path) -> None:
    orphan = tmp_path / "pid-7"
    _stats(orphan, 10, "seven")
    left = (orphan / STATS_FILE).read_bytes()
    retire(orphan)
    (orphan / STATS_FILE).write_bytes(left)  # as if the process died before removing it
    assert read_root_counts(tmp_path)["queued"] == 10  # retired, and the file skipped
    instance, counts = carried_counts(orphan)  # a same-pid process must not continue them
    assert instance != "seven" and counts["queued"] == 0
    retire(orphan)  # the next adopter: nothing folded twice, the file removed
    assert read_root_counts(tmp_path)["queued"] == 10
    assert not (orphan / STATS_FILE).exists()
    _stats(tmp_path / "pid-8", 1, "eight")
    retire(tmp_path / "pid-8")  # absorbed ids of removed files are forgotten: bounded
    assert read_root_counts(tmp_path)["queued"] == 11
    assert '"seven"' not in (tmp_path / RETIRED_FILE).read_text()


def test_a_scrape_during_retirements_sees_each_count_exactly_once(tmp_path: Path) -> None:
    dirs = [tmp_path / f"pid-{n}" for n in range(40)]
    for n, directory in enumerate(dirs):
        _stats(directory, 1, f"i{n}")
    seen: list[int] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            seen.append(read_root_counts(tmp_path)["queued"])

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for directory in dirs:
            retire(directory)
            shutil.rmtree(directory)
    finally:
        done.set()
        scraper.join()
    assert seen and set(seen) == {40}
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
    assert read_root_counts(tmp_path)["dropped"] == {"closed": 40}
    assert os.listdir(tmp_path)  # the retired file and its lock remain
