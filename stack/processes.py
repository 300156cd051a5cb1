"""Processes that `make stack` / `make es-start` started, proven ours before they are signalled.

A pid in a file proves nothing once its process has ended (a crash, a reboot): the kernel hands
the number to whatever starts next. So each pid is recorded with the boot it ran in
(/proc/sys/kernel/random/boot_id) and the kernel's start time of the process (field 22 of
/proc/<pid>/stat, clock ticks since boot). `stop` signals a pid only while both still match,
and then signals its whole process group: every process was started as a session leader, so
what it started (the JVM under Elasticsearch's launcher script, a server's workers) goes with it.
A pid that no longer matches is reported and left alone.

    python stack/processes.py record PIDFILE NAME PID   # right after starting PID
    python stack/processes.py alive PIDFILE             # exit 0 while that process runs
    python stack/processes.py stop PIDFILE [SECONDS]    # stop it if still ours (SIGKILL after
                                                        # SECONDS, default 15); rm PIDFILE

Linux only (/proc), like the rest of the local stack. Standard library only, so the Makefile can
run it with the system python before the project's virtualenv exists.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Started:
    """A process as it was when started: enough to recognise it, and only it, later."""

    name: str
    pid: int
    boot_id: str
    start_ticks: int
    argv: tuple[str, ...]


@dataclass(frozen=True)
class _Stat:
    state: str
    process_group: int
    start_ticks: int


def _stat(pid: int) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return _Stat(state=fields[0], process_group=int(fields[2]), start_ticks=int(fields[19]))


def _boot_id() -> str:
    return BOOT_ID.read_text().strip()


def identify(name: str, pid: int) -> Started:
    """Record `pid`, which must be running now (call right after starting it)."""
    stat = _stat(pid)
    if stat is None:
        raise ProcessLookupError(f"{name}: pid {pid} is not running")
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        raw = b""
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return Started(name=name, pid=pid, boot_id=_boot_id(), start_ticks=stat.start_ticks,
                   argv=argv)


def is_ours(started: Started) -> bool:
    """True while `started.pid` is still the process that was recorded (even as a zombie)."""
    stat = _stat(started.pid)
    return (stat is not None and stat.start_ticks == started.start_ticks
            and _boot_id() == started.boot_id)


def is_running(started: Started) -> bool:
    stat = _stat(started.pid)
    return is_ours(started) and stat is not None and stat.state != "Z"


def stop(started: Started, timeout_s: float = 15.0) -> str:
    """Stop `started` and its process group if it is still ours; returns what happened."""
    if not is_ours(started):
        return (f"{started.name}: not running (pid {started.pid} is gone or belongs to another "
                "process now; left alone)")
    stat = _stat(started.pid)
    # A session leader leads its group: signal the group. Anything else (never started so
    # here) is signalled alone rather than taking an unknown group with it.
    group = started.pid if stat is not None and stat.process_group == started.pid else None
    _signal(started.pid, group, signal.SIGTERM)
    if _wait_gone(started.pid, group, timeout_s):
        return f"{started.name}: stopped (pid {started.pid})"
    _signal(started.pid, group, signal.SIGKILL)
    _wait_gone(started.pid, group, 10.0)
    return f"{started.name}: killed after {timeout_s:g} s (pid {started.pid})"


def _signal(pid: int, group: int | None, signum: int) -> None:
    try:
        if group is None:
            os.kill(pid, signum)
        else:
            os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, group: int | None, timeout_s: float) -> bool:
    """Until no live process of the group (or the pid) is left. A zombie does not count: it
    has ended, and only its parent can reap it (done here when that parent is us)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: its parent (or init) reaps it
            pass
        if not _live_members(pid, group):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _live_members(pid: int, group: int | None) -> list[int]:
    if group is None:
        stat = _stat(pid)
        return [pid] if stat is not None and stat.state != "Z" else []
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat.process_group == group and stat.state != "Z":
                members.append(int(entry.name))
    return members


def save(path: Path, processes: list[Started]) -> None:
    path.write_text(json.dumps([asdict(p) for p in processes], indent=1) + "\n")


def load(path: Path) -> list[Started]:
    """The processes recorded in `path`; a file of another format is refused, never guessed."""
    try:
        data = json.loads(path.read_text())
        return [Started(**{**item, "argv": tuple(item["argv"])}) for item in data]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: not a process record of stack/processes.py ({exc}); "
                         "stop those processes yourself and remove the file") from exc


def main(argv: list[str]) -> int:
    usage = ("usage: processes.py record PIDFILE NAME PID | alive PIDFILE | "
             "stop PIDFILE [SECONDS]")
    forms = {("record", 4), ("alive", 2), ("stop", 2), ("stop", 3)}
    if len(argv) < 2 or (argv[0], len(argv)) not in forms:
        print(usage, file=sys.stderr)
        return 2
    action, path = argv[0], Path(argv[1])
    try:
        timeout_s = float(argv[2]) if action == "stop" and len(argv) == 3 else 15.0
        if action == "record":
            save(path, [identify(argv[2], int(argv[3]))])
            return 0
        if not path.exists():
            if action == "stop":
                print(f"nothing to stop: no {path}")
            return 0 if action == "stop" else 1
        processes = load(path)
    except (ValueError, ProcessLookupError) as exc:
        print(f"processes.py: error: {exc}", file=sys.stderr)
        return 2
    if action == "alive":
        return 0 if all(is_running(p) for p in processes) else 1
    for process in reversed(processes):
        print(stop(process, timeout_s))
    path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
