"""stack/processes.py: `make stack-down` / `make es-stop` signal only processes provably theirs.

Real processes (`sleep`) started in their own session, as the stack starts its servers. A pid
that now belongs to another process is simulated by a record whose start time or boot differs
from the live process's, which is exactly what pid reuse looks like to the check.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import processes

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


@pytest.fixture
def group() -> Iterator[tuple[subprocess.Popen, int]]:
    """A session leader (sh) with a child (sleep) in its process group: (leader, child pid)."""
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    child = int(leader.stdout.readline())
    yield leader, child
    for pid in (child, leader.pid):  # whatever a failing test left running
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    leader.wait(timeout=10)


def test_stop_ends_the_recorded_process_and_its_process_group(group) -> None:
    leader, child = group
    record = processes.identify("demo", leader.pid)
    assert record.argv[:2] == ("sh", "-c") and processes.is_running(record)
    outcome = processes.stop(record, timeout_s=10)
    assert outcome == f"demo: stopped (pid {leader.pid})"
    assert leader.poll() is not None  # reaped by stop(): it was our child
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the leader's child outlived `stop`"


@pytest.mark.parametrize("change", [
    {"start_ticks": 1},  # the pid was handed to a process started at another time
    {"boot_id": "00000000-0000-0000-0000-000000000000"},  # recorded before a reboot
])
def test_a_pid_that_is_no_longer_the_recorded_process_is_left_alone(group, change) -> None:
    leader, child = group
    stale = dataclasses.replace(processes.identify("prometheus", leader.pid), **change)
    assert not processes.is_ours(stale)
    outcome = processes.stop(stale, timeout_s=1)
    assert "left alone" in outcome and str(leader.pid) in outcome
    assert leader.poll() is None and _alive(child)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stack" / "processes.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_makefile_commands_record_check_and_stop(group, tmp_path: Path) -> None:
    leader, child = group
    pid_file = tmp_path / "es.pid"
    assert _cli("record", str(pid_file), "elasticsearch", str(leader.pid)).returncode == 0
    assert _cli("alive", str(pid_file)).returncode == 0
    done = _cli("stop", str(pid_file), "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"elasticsearch: stopped (pid {leader.pid})"
    assert not pid_file.exists()
    assert leader.wait(timeout=10) is not None
    assert _cli("alive", str(pid_file)).returncode == 1
    assert _cli("stop", str(pid_file)).stdout.startswith("nothing to stop")


def test_a_bare_pid_file_is_refused_not_trusted(group, tmp_path: Path) -> None:
    leader, _child = group
    pid_file = tmp_path / "es.pid"
    pid_file.write_text(f"{leader.pid}\n")  # what es-start wrote before: no proof of identity
    done = _cli("stop", str(pid_file))
    assert done.returncode == 2
    assert "not a process record" in done.stderr and str(pid_file) in done.stderr
    assert leader.poll() is None and pid_file.exists()
