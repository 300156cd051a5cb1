"""Summed shipper series never go back: a same-pid take-over continues the dead owner's counts.

The dead owners are real processes (a Shipper in a subprocess that exits); Elasticsearch is a
closed loopback port, so records stay spooled.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from mlmon.log_shipper.metrics import SpoolRootCollector
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
