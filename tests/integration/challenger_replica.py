"""A replica of the demo service with its challenger in shadow mode, for the Prometheus proof.

`python -m tests.integration.challenger_replica --rows ROWS.json --port N` records every row
(features) through `PredictionLogger.record()` with the demo champion's prediction (the
challenger runs in shadow, off the request path), lets the challenger finish, then scores both
models on the row's label (`ModelMonitor.observe_outcome`, as the outcome join does once labels
arrive) and serves /metrics until terminated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from prometheus_client import CollectorRegistry


def main(argv: list[str] | None = None) -> int:
    from mlmon.demo.model import build_profile, train, train_challenger
    from mlmon.exporter.server import start_http_server
    from mlmon.log_shipper.facade import PredictionLogger

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", required=True, help="JSON: [{features, actual}, ...]")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with open(args.rows, encoding="utf-8") as fh:
        rows = json.load(fh)
    champion, challenger = train(), train_challenger()
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(build_profile(champion), service_name="diabetes-api",
                                           environment="test", registry=registry)
    shadow = logger.add_challenger(build_profile(challenger), challenger.predict_one,
                                   max_pending=len(rows))
    assert logger.monitor is not None and shadow.logger.monitor is not None
    for row in rows:
        logger.record(row["features"], champion.predict_one(row["features"]))
    if not shadow.close(timeout=120):
        raise SystemExit("the challenger did not finish in time")
    for row in rows:  # the same labels score both models
        features, actual = row["features"], row["actual"]
        logger.monitor.observe_outcome(champion.predict_one(features), actual)
        shadow.logger.monitor.observe_outcome(challenger.predict_one(features), actual)
    start_http_server(args.port, registry=registry)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
