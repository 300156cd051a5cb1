"""Benchmark: `mlmon profile` on a generated 1M-row x 25-column CSV; peak memory and time.

Baseline, measured in the same run on the same file: `pandas.read_csv` of the whole file (what
profiling without streaming would at least cost). Then `mlmon profile` with the default memory
budget (values in memory when they fit) and with `--max-memory-mb` budgets small enough to force
the multi-pass path; every profile must be byte-identical. Each command runs in a fresh
subprocess so its peak RSS (ru_maxrss of the child) is its own.

    .venv/bin/python bench/bench_profiling.py [--rows 1000000] [--repeat 1] [--out bench/results]
        [--budgets 64,16] [--keep-csv PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.judging import finish  # noqa: E402

NUMERIC, CATEGORICAL = 20, 4  # + 1 prediction column = 25 columns


def generate(path: str, rows: int, seed: int = 0) -> None:
    """Written in blocks so generating the file does not itself need the whole table in memory."""
    rng = np.random.default_rng(seed)
    block = 200_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        frame = pd.DataFrame({f"num{i}": rng.normal(i, 1 + i, n).round(4) for i in range(NUMERIC)})
        for i in range(CATEGORICAL):
            frame[f"cat{i}"] = rng.choice([f"v{j}" for j in range(5 + 10 * i)], n)
        frame["prediction"] = rng.random(n).round(6)
        frame.to_csv(path, mode="a" if start else "w", header=not start, index=False)


_REPORT_PEAK = (
    "\nimport resource, sys\n"
    "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)


def run_child(code: str) -> dict[str, float]:
    """Run `code` in a fresh interpreter; its wall time and its own peak RSS (ru_maxrss) in MiB."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + _REPORT_PEAK], check=True,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    peak_kib = int(done.stderr.rsplit("PEAK_KIB", 1)[1].split()[0])
    return {"seconds": elapsed, "peak_rss_mib": peak_kib / 1024}


def profile_code(csv: str, out: str, budget: float | None) -> str:
    """Python that runs `mlmon profile` on the generated file, with a memory budget or not."""
    argv = ["profile", csv, "--model", "bench", "--model-version", "1",
            "--prediction-column", "prediction", "-o", out]
    if budget is not None:
        argv += ["--max-memory-mb", f"{budget:g}"]
    return f"from mlmon.cli import main\nassert main({argv!r}) == 0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (median reported)")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--budgets", type=_floats, default=[64.0, 16.0],
                        help="--max-memory-mb values to run besides the default")
    parser.add_argument("--keep-csv", help="generate the CSV here (once) and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = args.keep_csv or os.path.join(tmp, "train.csv")
        if not (args.keep_csv and os.path.exists(csv)):
            generate(csv, args.rows)
        size_mib = os.path.getsize(csv) / 2**20
        baseline = f"import pandas as pd; pd.read_csv({csv!r})"
        results: dict[str, list[dict[str, float]]] = {"read_csv (baseline)": []}
        for _ in range(args.repeat):
            results["read_csv (baseline)"].append(run_child(baseline))
        outputs = {}
        for budget in [None, *args.budgets]:
            name = "profile" if budget is None else f"profile --max-memory-mb {budget:g}"
            out = os.path.join(tmp, f"p{len(outputs)}.json")
            results[name] = [run_child(profile_code(csv, out, budget)) for _ in range(args.repeat)]
            with open(out, "rb") as fh:
                outputs[name] = fh.read()
        if len(set(outputs.values())) != 1:
            raise SystemExit(f"profiles differ between memory budgets: {sorted(outputs)}")
    table = {
        name: {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        }
        for name, runs in results.items()
    }
    print(f"{args.rows:,} rows x 25 columns, CSV {size_mib:.0f} MiB, median of {args.repeat}")
    print(f"{'what':<34}{'seconds':>10}{'peak RSS MiB':>15}")
    for name, row in table.items():
        print(f"{name:<34}{row['seconds']:>10.1f}{row['peak_rss_mib']:>15.0f}")
    print("every profile byte-identical: yes")
    # No ratio target: the numbers are reported (a differing profile has failed above).
    return finish("bench_profiling", args.out, "profiling.json",
                  {"rows": args.rows, "columns": 25, "repeat": args.repeat, "csv_mib": size_mib,
                   "results": table, "identical": True}, [])


def _floats(text: str) -> list[float]:
    return [float(item) for item in text.split(",") if item.strip()]


if __name__ == "__main__":
    sys.exit(main())
