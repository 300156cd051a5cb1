"""`ship()` enqueue cost of this checkout against an earlier revision, in one run.

Each implementation runs in its own process (both are the package `log_shipper`), against the
same throw-away Elasticsearch, alternating rounds per fsync policy; the median of the round
medians is reported. Absolute times are reported, not judged: the machine may be loaded.

Usage: bench/compare_shipper.py --before REV [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# One round in a child process: argv = tree, url, fsync, calls. Records come from this
# checkout's bench_shipper, so both sides ship the very same documents.
_ROUND = r'''
import json, sys, tempfile, time
sys.path[:0] = [sys.argv[1], sys.argv[5]]
from bench.bench_shipper import fresh_ids, make_records
from mlmon.log_shipper.shipper import Shipper
url, fsync, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
records = fresh_ids(make_records(n))
with tempfile.TemporaryDirectory() as spool:
    shipper = Shipper(es=url, index="mlmon-bench-compare", spool_dir=spool, queue_size=n + 1,
                      handle_signals=False, fsync=fsync)
    clock, times = time.perf_counter_ns, []
    for record in records:
        start = clock()
        shipper.ship(record)
        times.append(clock() - start)
    shipper.close(timeout=120)
times.sort()
print(json.dumps({"median_us": times[n // 2] / 1000, "p99_us": times[int(n * 0.99)] / 1000}))
'''


def extract(rev: str, into: Path) -> None:
    """The packages the shipper imports, as they were at `rev`."""
    archive = subprocess.run(["git", "archive", rev, "log_shipper", "exporter"], cwd=REPO,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from tests.integration.es_server import running_server

    with tempfile.TemporaryDirectory() as old, running_server() as server:
        extract(args.before, Path(old))
        trees = {"before": old, "after": str(REPO)}
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for fsync in ("interval", "always"):
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    run = subprocess.run([sys.executable, "-c", _ROUND, tree, server.url, fsync,
                                          str(args.calls), str(REPO)], cwd=old,
                                         check=True, capture_output=True, text=True)
                    results.setdefault((fsync, name), []).append(
                        json.loads(run.stdout.splitlines()[-1]))
    print(f"| fsync | {args.before} median (p99) | this checkout median (p99) |")
    print("| --- | --- | --- |")
    for fsync in ("interval", "always"):
        cells = []
        for name in trees:
            rounds = results[(fsync, name)]
            cells.append(f"{statistics.median(r['median_us'] for r in rounds):.3f} us "
                         f"({statistics.median(r['p99_us'] for r in rounds):.1f} us)")
        print(f"| {fsync} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
