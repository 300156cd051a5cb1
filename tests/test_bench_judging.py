"""bench/judging.py and bench/run_all.py: ratios judge, every benchmark runs, one summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.judging import Target, finish, table

REPO = Path(__file__).resolve().parents[1]


def test_a_target_is_judged_on_its_ratio_in_the_direction_it_names() -> None:
    assert Target("speed-up", 3.5, 3.5, at_least=True).passed
    assert not Target("speed-up", 3.49, 3.5, at_least=True).passed
    assert Target("cost", 1.5, 1.5, at_least=False).passed
    assert not Target("cost", 1.51, 1.5, at_least=False).passed
    assert Target("cost", 1.0, 1.5, at_least=False).wanted == "<= 1.5x"


def test_finish_writes_the_targets_and_returns_1_on_a_miss(tmp_path: Path) -> None:
    targets = [Target("a", 4.0, 3.5, True, "9.4 us vs naive 35 us"),
               Target("b", 2.0, 1.5, False)]
    assert finish("bench_x", tmp_path, "x.json", {"n": 1}, targets) == 1
    document = json.loads((tmp_path / "x.json").read_text())
    assert document["bench"] == "bench_x" and document["n"] == 1
    assert [(t["case"], t["passed"]) for t in document["targets"]] == [("a", True), ("b", False)]
    assert finish("bench_x", tmp_path, "x.json", {}, targets[:1]) == 0
    assert "| a | 4.00x | >= 3.5x | PASS | 9.4 us vs naive 35 us |" in table(targets)


# Three stand-in benchmarks: what run_all must handle is their outcomes, not their measuring.
BENCHES = {
    "bench_a_miss": "[Target('a slow case', 1.2, 3.5, True, '99 us')]",
    "bench_b_crash": None,
    "bench_c_pass": "[Target('a fast case', 30.0, 25.0, True)]",
    "bench_d_report": "[]",
}


def _write_benches(directory: Path) -> None:
    for name, targets in BENCHES.items():
        body = ("import sys\nsys.exit('boom')\n" if targets is None else
                f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                "from bench.judging import Target, finish\n"
                f"sys.exit(finish({name!r}, sys.argv[2], {name!r} + '.json', {{}}, {targets}))\n")
        (directory / f"{name}.py").write_text(body)


def test_run_all_runs_every_benchmark_and_summarises(tmp_path: Path) -> None:
    benches, out = tmp_path / "bench", tmp_path / "results"
    benches.mkdir()
    _write_benches(benches)
    # A result the crashing benchmark wrote in an earlier run must not stand for this run's.
    finish("bench_b_crash", out, "bench_b_crash.json", {}, [Target("old", 9.0, 1.0, True)])
    os.utime(out / "bench_b_crash.json", (time.time() - 3600, time.time() - 3600))
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--out", str(out),
                           "--bench-dir", str(benches)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    summary = done.stdout.split("== summary", 1)[1]
    assert "| bench_a_miss | a slow case | 1.20x | >= 3.5x | MISS | 99 us |" in summary
    assert "| bench_c_pass | a fast case | 30.00x | >= 25x | PASS |  |" in summary
    assert "bench_b_crash: FAILED (exit status 1, no result written)" in summary
    assert "bench_d_report: no target (numbers reported only)" in summary
    assert summary.rstrip().endswith("1 passed, 1 missed, 1 failed benchmark(s)")


def test_run_all_passes_when_every_target_passes(tmp_path: Path) -> None:
    benches = tmp_path / "bench"
    benches.mkdir()
    _write_benches(benches)
    for name in ("bench_a_miss", "bench_b_crash"):
        (benches / f"{name}.py").unlink()
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--out",
                           str(tmp_path / "results"), "--bench-dir", str(benches)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("1 passed, 0 missed, 0 failed benchmark(s)")
