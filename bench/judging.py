"""How every benchmark judges itself: same-run ratios decide, absolute numbers are reported.

On a shared machine an absolute time moves with whoever else is running (observe() took 9.4 us
in one run where the naive baseline beside it was also ~25 % slower than the day before), so a
target is a ratio between ours and a baseline measured in the same run, alternated with it.
Absolute times and rates go into the table and the JSON for the reader, and never fail a run.

Each benchmark ends with `finish(...)`: it writes its JSON (with a `targets` list and its own
name, which bench/run_all.py reads to summarise every benchmark) and returns the exit status.
Every JSON also carries `machine` (where and how it was measured: the command, cores, CPU
model, load average, versions, date, git revision), which bench/tables.py prints under each
table in the docs, so a number is never shown without its conditions.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Taken when a benchmark imports this module, i.e. as it starts: with the load at the end, it
# shows what else the machine was doing during the run.
_STARTED = time.time()
_LOAD_AT_START = os.getloadavg()
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """A same-run ratio and its bound, e.g. observe() 3.73x faster than naive, >= 3.5x.

    `at_least` says which way the bound goes: True for a speed-up (more is better), False for
    a cost ratio such as our render time over the baseline's (less is better).
    """

    case: str
    ratio: float
    bound: float
    at_least: bool
    reported: str = ""  # absolute numbers, for the reader only

    @property
    def passed(self) -> bool:
        return self.ratio >= self.bound if self.at_least else self.ratio <= self.bound

    @property
    def wanted(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}x"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": self.wanted, "passed": self.passed}


def table(targets: list[Target], benches: list[str] | None = None) -> str:
    """A Markdown table of the targets, one row each; `benches` names each row's benchmark."""
    head = ["benchmark"] if benches else []
    rows = [f"| {' | '.join([*head, 'case', 'same-run ratio', 'target', 'result', 'reported'])} |",
            f"|{' --- |' * (len(head) + 5)}"]
    for i, t in enumerate(targets):
        cells = [benches[i]] if benches else []
        cells += [t.case, f"{t.ratio:.2f}x", t.wanted, "PASS" if t.passed else "MISS",
                  t.reported]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> str:
    """HEAD's short hash, `+dirty` when tracked files differ from it (the numbers then belong to
    no commit), `unknown` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return "not installed"


def machine_facts() -> dict[str, Any]:
    """Where and how this run was measured; call it as the benchmark ends."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_arg = str(script.relative_to(REPO))
    except ValueError:
        script_arg = sys.argv[0]
    return {
        "command": shlex.join([".venv/bin/python", script_arg, *sys.argv[1:]]),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_start": [round(x, 2) for x in _LOAD_AT_START],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.time() - _STARTED, 1),
        "git_revision": _git_revision(),
    }


def finish(bench: str, out_dir: str | os.PathLike[str], filename: str, result: dict[str, Any],
           targets: list[Target]) -> int:
    """Write `result` with its targets to out_dir/filename, print the targets, and return the
    exit status: 1 when a target is missed, else 0."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {**result, "bench": bench, "machine": machine_facts(),
                "targets": [t.to_dict() for t in targets]}
    path = out / filename
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if targets:
        print(table(targets))
    print(f"wrote {path}")
    return 0 if all(t.passed for t in targets) else 1
