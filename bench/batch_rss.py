"""Peak memory and duration of `mlmon batch` on a large scored Parquet file (a measurement).

    .venv/bin/python bench/batch_rss.py --rows 1000000

Writes the rows (6 columns: id, 2 numeric, 1 categorical, 1 text feature, a regression
prediction) with the tests' sample profile, starts a Pushgateway on a free loopback port, and
runs the real CLI in a wrapper process that reports its one child's peak RSS
(getrusage RUSAGE_CHILDREN). Not a `bench_*.py`: nothing is judged, the numbers are reported
(docs/batch-jobs.md quotes them); tests/integration/test_batch_memory.py asserts the bound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The CLI's peak RSS in KiB (Linux), printed by a wrapper whose only child is the CLI.
_WRAPPER = ("import resource, subprocess, sys; status = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(status)")


def write_scored(n: int, path: Path, row_group_size: int | None = None) -> int:
    """Write `n` scored rows; the size of their DataFrame in memory, in bytes."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "id": [f"row-{i:08d}" for i in range(n)],
        "age": rng.normal(40, 12, n).round(1),
        "income": rng.normal(2000, 600, n).round(0),
        "city": rng.choice(["paris", "rome", "berlin", "madrid", "lyon"], n),
        "review": rng.choice(["good service", "the bad app", "great", "slow service"], n),
        "pred": rng.normal(0, 1, n),
    })
    frame.to_parquet(path, row_group_size=row_group_size)
    return int(frame.memory_usage(deep=True).sum())


def write_profile(path: Path) -> None:
    from tests.profiles import sample_profile_dict

    path.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")


def peak_rss_bytes(data: Path, profile: Path, pushgateway: str,
                   extra: tuple[str, ...] = ()) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of one `mlmon batch` run on `data`."""
    cli = [sys.executable, "-m", "mlmon", "batch", str(data), "--profile", str(profile),
           "--prediction-column", "pred", "--pushgateway", pushgateway, "--job", data.stem,
           *extra]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *cli], capture_output=True,
                            text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"mlmon batch failed: {result.stderr.strip()}")
    return int(result.stdout.strip().splitlines()[-1]) * 1024, seconds


def main(argv: list[str] | None = None) -> int:
    from tests.integration.prom_servers import start_pushgateway

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="passed to mlmon batch (default: its own)")
    args = parser.parse_args(argv)
    extra = () if args.chunk_rows is None else ("--chunk-rows", str(args.chunk_rows))
    with tempfile.TemporaryDirectory(prefix="mlmon-batch-rss-") as tmp:
        work = Path(tmp)
        profile, data = work / "profile.json", work / "scored.parquet"
        small = work / "small.parquet"
        write_profile(profile)
        frame_bytes = write_scored(args.rows, data)
        write_scored(1000, small)
        pgw = start_pushgateway(work / "pushgateway")
        try:
            base, _ = peak_rss_bytes(small, profile, pgw.url, extra)
            peak, seconds = peak_rss_bytes(data, profile, pgw.url, extra)
        finally:
            pgw.stop()
        file_bytes = data.stat().st_size
    mib = 2 ** 20
    print(f"{args.rows:,} rows ({file_bytes / mib:.0f} MiB "
          f"file; {frame_bytes / mib:.0f} MiB as a DataFrame): peak RSS {peak / mib:.0f} MiB "
          f"in {seconds:.1f} s; 1,000 rows: {base / mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
