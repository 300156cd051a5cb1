"""Rule evaluation cost: the real Prometheus evaluating the repo's rules over real exporters.

Scenario: 25 features (20 numeric with 10 bins, 5 categorical with top-20), regression
predictions, 2 model versions x 4 replicas (8 /metrics endpoints served from one process),
steady traffic. Baseline in the same run: 1 version x 1 replica of the same profile. Reports
`prometheus_rule_group_last_duration_seconds` per rule group (median over the run) and the
number of input and recorded series.

With `--before RULES...` (e.g. the rule files of an older commit) the 2 x 4 scenario is run
alternately with those files and with the committed ones, `--rounds` times each, and the
ratio of the median total evaluation times (committed / before) is reported: a change of the
rules judged against the rules it replaces, on the same machine in the same run.

    .venv/bin/python bench/bench_rules.py [--seconds 40] [--out bench/results]
    git show HEAD~1:prometheus/recording_rules.yml > /tmp/before.yml
    .venv/bin/python bench/bench_rules.py --before /tmp/before.yml alerting/alert_rules.yml
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.judging import finish  # noqa: E402
from mlmon.alerting.config import load as load_config  # noqa: E402
from mlmon.exporter import ModelMonitor  # noqa: E402
from mlmon.exporter.server import start_http_server  # noqa: E402
from mlmon.profiling import profile_data  # noqa: E402
from tests.integration.prom_servers import RULE_FILES, free_port, start_prometheus  # noqa: E402

FEATURES_NUMERIC, FEATURES_CATEGORICAL = 20, 5


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cols = {f"x{i}": rng.normal(i, 1 + i % 3, n) for i in range(FEATURES_NUMERIC)}
    cats = [f"c{j}" for j in range(30)]
    cols |= {f"k{i}": rng.choice(cats, n) for i in range(FEATURES_CATEGORICAL)}
    cols["y"] = rng.normal(0, 1, n)
    return pd.DataFrame(cols)


def _replicas(versions: int, replicas: int, rng: np.random.Generator) -> tuple[list[str], list]:
    data = _frame(rng, 3000)
    addresses, monitors = [], []
    for v in range(versions):
        profile = profile_data(data, model_name="bench", model_version=str(v + 1),
                               prediction_column="y", bins=10, top_k=20)
        for _ in range(replicas):
            registry = CollectorRegistry()
            monitor = ModelMonitor(profile, registry, multiproc_directory=None)
            port = free_port()
            start_http_server(port, registry=registry)
            addresses.append(f"127.0.0.1:{port}")
            monitors.append(monitor)
    return addresses, monitors


def _traffic(monitors: list, stop: threading.Event, rng: np.random.Generator) -> None:
    rows = _frame(rng, 200).to_dict("records")
    while not stop.is_set():
        for monitor in monitors:
            for row in rows[:20]:
                monitor.observe({k: v for k, v in row.items() if k != "y"}, row["y"],
                                latency_s=0.01)
        stop.wait(0.5)


def _durations(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()  # noqa: S310
    out = {}
    for line in text.splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            labels, value = line.rsplit(" ", 1)
            group = labels.split('rule_group="', 1)[1].split('"', 1)[0].split(";", 1)[-1]
            out[group] = float(value)
    return out


def measure(versions: int, replicas: int, seconds: float,
            rule_files: tuple[Path, ...] = RULE_FILES) -> dict[str, object]:
    rng = np.random.default_rng(1)
    addresses, monitors = _replicas(versions, replicas, rng)
    stop = threading.Event()
    feeder = threading.Thread(target=_traffic, args=(monitors, stop, rng), daemon=True)
    feeder.start()
    with tempfile.TemporaryDirectory() as tmp:
        # the job the rules' selector names, so the exporter series are what the rules select
        config = load_config()
        prom = start_prometheus(Path(tmp), {(config.exporter_jobs or ("mlmon",))[0]: addresses},
                                interval="5s", for_override=None, rule_files=rule_files)
        try:
            prom.wait_for(f"count(up{{{config.exporter_selector}}} == 1)", timeout=30)
            samples: dict[str, list[float]] = {}
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(5)
                for group, value in _durations(prom.url).items():
                    samples.setdefault(group, []).append(value)
            inputs = prom.query('count({__name__=~"mlmon_.+"})')
            recorded = prom.query('count({__name__=~".+:.+"})')
        finally:
            prom.stop()
            stop.set()
    groups = {g: statistics.median(v[1:] or v) for g, v in sorted(samples.items())}
    return {"versions": versions, "replicas": replicas,
            "input_series": int(float(inputs[0]["value"][1])) if inputs else 0,
            "recorded_series": int(float(recorded[0]["value"][1])) if recorded else 0,
            "groups_s": groups, "total_s": sum(groups.values())}


def compare(before: tuple[Path, ...], seconds: float, rounds: int, out: str | None) -> int:
    """Alternate runs of the 2 x 4 scenario with `before` and with the committed rule files."""
    totals: dict[str, list[float]] = {"before": [], "committed": []}
    for _ in range(rounds):
        for name, files in (("before", before), ("committed", RULE_FILES)):
            totals[name].append(float(measure(2, 4, seconds, files)["total_s"]))  # type: ignore[arg-type]
            print(f"{name:10} total {totals[name][-1] * 1e3:8.1f} ms", flush=True)
    ratio = statistics.median(totals["committed"]) / statistics.median(totals["before"])
    print(f"committed / before (median total evaluation time): {ratio:.3f}")
    if out:  # reported, not judged: whether a cost is worth it is a design decision
        return finish("bench_rules", out, "bench_rules_compare.json",
                      {"totals_s": totals, "ratio": ratio}, [])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", default=None, help="directory for bench_rules.json")
    parser.add_argument("--before", nargs="+", type=Path, default=None,
                        help="rule files to compare the committed ones with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.before:
        return compare(tuple(args.before), args.seconds, args.rounds, args.out)
    baseline = measure(1, 1, args.seconds)
    full = measure(2, 4, args.seconds)
    print(f"rule evaluation, {FEATURES_NUMERIC + FEATURES_CATEGORICAL} features "
          f"(median of prometheus_rule_group_last_duration_seconds, eval every 5s)")
    print(f"{'group':28} {'1 version x 1 replica':>22} {'2 versions x 4 replicas':>24}")
    for group in full["groups_s"]:
        print(f"{group:28} {baseline['groups_s'].get(group, 0) * 1e3:19.2f} ms "
              f"{full['groups_s'][group] * 1e3:21.2f} ms")
    print(f"{'total':28} {baseline['total_s'] * 1e3:19.2f} ms {full['total_s'] * 1e3:21.2f} ms")
    print(f"{'mlmon_* input series':28} {baseline['input_series']:22} {full['input_series']:24}")
    print(f"{'recorded series':28} {baseline['recorded_series']:22} {full['recorded_series']:24}")
    if args.out:  # no ratio target: the costs are reported
        return finish("bench_rules", args.out, "bench_rules.json",
                      {"baseline": baseline, "full": full}, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
