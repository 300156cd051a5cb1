"""How every benchmark judges itself: same-run ratios decide, absolute numbers are reported.

On a shared machine an absolute time moves with whoever else is running (observe() took 9.4 us
in one run where the naive baseline beside it was also ~25 % slower than the day before), so a
target is a ratio between ours and a baseline measured in the same run, alternated with it.
Absolute times and rates go into the table and the JSON for the reader, and never fail a run.

Each benchmark ends with `finish(...)`: it writes its JSON (with a `targets` list and its own
name, which bench/run_all.py reads to summarise every benchmark) and returns the exit status.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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


def finish(bench: str, out_dir: str | os.PathLike[str], filename: str, result: dict[str, Any],
           targets: list[Target]) -> int:
    """Write `result` with its targets to out_dir/filename, print the targets, and return the
    exit status: 1 when a target is missed, else 0."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {**result, "bench": bench, "targets": [t.to_dict() for t in targets]}
    path = out / filename
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if targets:
        print(table(targets))
    print(f"wrote {path}")
    return 0 if all(t.passed for t in targets) else 1
