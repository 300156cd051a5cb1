"""`make bench`: run every benchmark, even after one misses or fails, then one summary table.

    .venv/bin/python bench/run_all.py [--out bench/results] [--bench-dir bench]

Each bench/bench_*.py runs in its own interpreter with `--out`, its output shown as it comes.
Afterwards every target of every benchmark (bench/judging.py: same-run ratios) is listed with
PASS or MISS, and a benchmark that ended without writing this run's result is listed as FAILED.
Exit status: 0 when every target passed and every benchmark finished, else 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.judging import Target, table  # noqa: E402


def run(script: Path, out: Path) -> tuple[int, list[Target] | None]:
    """Run one benchmark; its exit status and the targets it wrote in this run (None: none)."""
    started = time.time()
    print(f"== {script.name}", flush=True)
    status = subprocess.run([sys.executable, str(script), "--out", str(out)],
                            check=False).returncode
    for path in sorted(out.glob("*.json")):
        if path.stat().st_mtime < started:
            continue  # an earlier run's result
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("bench") == script.stem:
            fields = ("case", "ratio", "bound", "at_least", "reported")
            return status, [Target(**{k: t[k] for k in fields}) for t in document["targets"]]
    return status, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--bench-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scripts = sorted(args.bench_dir.glob("bench_*.py"))
    if not scripts:
        print(f"run_all: no bench_*.py in {args.bench_dir}", file=sys.stderr)
        return 1
    judged: list[tuple[str, Target]] = []
    failed: list[str] = []
    unjudged: list[str] = []
    for script in scripts:
        status, targets = run(script, args.out)
        if targets is None:
            failed.append(f"{script.stem}: FAILED (exit status {status}, no result written)")
        elif status != 0 and all(t.passed for t in targets):
            failed.append(f"{script.stem}: FAILED (exit status {status} after its result)")
        judged += [(script.stem, t) for t in targets or []]
        if targets == []:
            unjudged.append(script.stem)
    print("\n== summary: every target, judged on same-run ratios (absolute numbers reported)")
    if judged:
        print(table([t for _, t in judged], [bench for bench, _ in judged]))
    for name in unjudged:
        print(f"{name}: no target (numbers reported only)")
    for line in failed:
        print(line)
    missed = sum(not t.passed for _, t in judged)
    print(f"{len(judged) - missed} passed, {missed} missed, {len(failed)} failed benchmark(s)")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
