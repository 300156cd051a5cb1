"""What a challenger in shadow mode adds to the response latency: the demo service, same run.

Two demo services (`mlmon demo`, uvicorn, one process each, records not shipped) run side by
side: `alone` (`--no-challenger`) and `shadow` (the demo challenger, a second scikit-learn
pipeline, run by `PredictionLogger.add_challenger` on every request). One client sends POST
/predict sequentially over a kept-alive connection, paced at `--rate` requests/s (a service
that keeps up, as in production: the challenger finishes each request before the next one),
measuring each response's latency at the client. Many short rounds (20 requests, 2 s) alternate
the two services (the order rotated each round), so a change in the machine's load hits both
alike.

Judged on same-run ratios of the pooled latencies, shadow over alone: p50 <= 1.25x and
p99 <= 1.5x. The challenger's model runs in a child process of the service at a lower priority
(the defaults `isolation="process"`, `nice=10`: log_shipper/shadow_process.py); what it can
still cost the request is the serving process's share of the work (the queue put; in the worker
thread, pickling the features and recording the challenger's prediction, which take the GIL
briefly) and, on a machine without a spare core, the child's CPU time. Absolute latencies are
reported, not judged, and so is the serving process's own CPU time per request
(`process_cpu_seconds_total` of each service, its child processes not included).

Usage: bench/bench_challenger.py --out DIR [--rounds R] [--requests N] [--rate R]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.judging import Target, finish  # noqa: E402

MODES = ("alone", "shadow")
P50_BOUND, P99_BOUND = 1.25, 1.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    args = [sys.executable, "-m", "mlmon", "demo", "--port", str(port)]
    if mode == "alone":
        args.append("--no-challenger")
    env = {k: v for k, v in os.environ.items() if k not in ("MLMON_ES_URL", "MLMON_SPOOL_DIR")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"demo service ({mode}) did not start")
        time.sleep(0.2)


def _bodies() -> list[bytes]:
    from mlmon.demo.model import train

    return [json.dumps({"features": r}).encode() for r in train().records()]


def _round(port: int, bodies: list[bytes], n: int, rate: float, start: int) -> list[float]:
    """`n` paced requests; their latencies in seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies = []
    period = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(n):
        now = time.perf_counter()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += period
        body = bodies[(start + i) % len(bodies)]
        t0 = time.perf_counter()
        connection.request("POST", "/predict", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    connection.close()
    return latencies


def _sums(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Each named sample's value from the service's /metrics, summed over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    sums = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return sums


# The serving process's own CPU time (its threads, not its child processes), from
# prometheus_client's process collector: what a challenger costs the process the requests
# run in, the load-independent side of the latency ratios.
CPU = "process_cpu_seconds_total"
COMPARED, SKIPPED = "mlmon_challenger_compared_total", "mlmon_challenger_skipped_total"


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    # many short rounds: the machine's load moves on the scale of seconds, so both services
    # must be measured within seconds of each other to see the same load
    parser.add_argument("--rounds", type=int, default=45)
    parser.add_argument("--requests", type=int, default=20, help="requests per round and mode")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s")
    args = parser.parse_args(argv)
    bodies = _bodies()
    servers = {mode: _start(mode) for mode in MODES}
    try:
        latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
        for warm in MODES:  # the first requests pay for imports and caches
            _round(servers[warm][1], bodies, 50, args.rate, 0)
        time.sleep(2.0)  # the challenger's start (a child process loading its model) is done
        cpu_start = {mode: _sums(servers[mode][1], (CPU,))[CPU] for mode in MODES}
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                latencies[mode] += _round(servers[mode][1], bodies, args.requests, args.rate,
                                          r * args.requests)
                time.sleep(0.2)  # the shadow service's last challenger work, off the clock
        cpu = {mode: _sums(servers[mode][1], (CPU,))[CPU] - cpu_start[mode] for mode in MODES}
        counts = _sums(servers["shadow"][1], (COMPARED, SKIPPED))
        shadow_work = {"compared": counts[COMPARED], "shed": counts[SKIPPED]}
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(30)
    stats: dict[str, dict[str, Any]] = {
        mode: {"requests": len(values), "p50_ms": 1e3 * _quantile(values, 0.5),
               "p99_ms": 1e3 * _quantile(values, 0.99), "mean_ms": 1e3 * statistics.mean(values),
               "cpu_ms_per_request": 1e3 * cpu[mode] / len(values)}
        for mode, values in latencies.items()}
    alone, shadow = stats["alone"], stats["shadow"]
    targets = [
        Target("response p50, shadow / alone", shadow["p50_ms"] / alone["p50_ms"], P50_BOUND,
               at_least=False,
               reported=f"{shadow['p50_ms']:.2f} ms vs {alone['p50_ms']:.2f} ms"),
        Target("response p99, shadow / alone", shadow["p99_ms"] / alone["p99_ms"], P99_BOUND,
               at_least=False,
               reported=f"{shadow['p99_ms']:.2f} ms vs {alone['p99_ms']:.2f} ms"),
    ]
    for mode, s in stats.items():
        print(f"{mode:7s} p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
              f"mean {s['mean_ms']:.2f} ms  ({s['requests']} requests; serving process "
              f"{s['cpu_ms_per_request']:.2f} ms CPU per request)")
    print(f"challenger: {shadow_work['compared']:.0f} requests compared, "
          f"{shadow_work['shed']:.0f} shed or failed")
    return finish("bench_challenger", args.out, "challenger.json",
                  {"rate_per_s": args.rate, "rounds": args.rounds, "modes": stats,
                   "challenger": shadow_work}, targets)


if __name__ == "__main__":
    sys.exit(main())
