"""`mlmon serve`: /metrics for a profile, optionally fed with synthetic reference traffic.

    mlmon serve --profile profile.json --port 8000 --synthetic-rps 20
"""

from __future__ import annotations

import argparse
import random
import time

from mlmon.errors import CliError, cannot_listen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="reference profile JSON")
    parser.add_argument("--port", type=int, default=8000, help="port for /metrics (8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--synthetic-rps", type=float, default=0.0, metavar="N",
                        help="feed N records per second drawn from the reference profile")
    parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                        help="stop after SECONDS (default: run until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="seed for synthetic traffic")


def run(args: argparse.Namespace) -> int:
    from mlmon.exporter.monitor import ModelMonitor
    from mlmon.exporter.server import start_http_server
    from mlmon.exporter.synthetic import RecordSampler

    if args.synthetic_rps < 0:
        raise CliError("--synthetic-rps must be >= 0")
    monitor = ModelMonitor.from_profile(args.profile)  # ProfileError: one line, exit 2
    try:
        server, _thread = start_http_server(args.port, args.host)
    except (OSError, OverflowError) as exc:
        raise cannot_listen(args.host, args.port, exc) from exc
    port = server.server_address[1]
    print(f"serving http://{args.host}:{port}/metrics for model {monitor.model!r} "
          f"version {monitor.model_version!r} ({monitor.series_count()} series)", flush=True)
    sampler = RecordSampler(monitor.profile, args.seed)
    jitter = random.Random(args.seed)
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    interval = 1.0 / args.synthetic_rps if args.synthetic_rps > 0 else None
    next_at = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if interval is None:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            features, prediction, scores = sampler.sample()
            # a plausible latency (~20 ms): the synthetic requests themselves take microseconds
            monitor.observe(features, prediction, scores=scores,
                            latency_s=jitter.lognormvariate(-4.0, 0.5))
            monitor.record_request()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        server.shutdown()
        server.server_close()
    return 0
