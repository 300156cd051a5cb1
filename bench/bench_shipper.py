"""Benchmark the log shipper: enqueue cost and sustained shipping into a real Elasticsearch.

Targets (issue 4, section 6):
- `ship()` median <= 5 us per record (the default `fsync="interval"` policy);
- shipping throughput >= 0.8x a plain `elasticsearch.helpers.bulk` of the same documents,
  both measured here, in the same run, against the same single-node cluster.

Reported beside them, without a target: `ship()` under `fsync="always"` (the record is
serialized and written to the spool in the caller's thread), and the
whole per-prediction call `PredictionLogger.record()` (monitor observe + record build + ship).

Usage: bench/bench_shipper.py --out DIR [--es-url URL] [--docs N] [--rounds R]
Without --es-url (or MLMON_ES_URL) it starts a throw-away Elasticsearch through the test
helper `tests.integration.es_server` when that is available.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elasticsearch import Elasticsearch, helpers  # noqa: E402

from exporter.profile import Profile  # noqa: E402
from log_shipper.facade import PredictionLogger  # noqa: E402
from log_shipper.record import RecordBuilder  # noqa: E402
from log_shipper.shipper import Shipper  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_ENQUEUE_US = 5.0
TARGET_RATIO = 0.8
CHUNK = 500


def make_records(n: int) -> list[dict[str, Any]]:
    """Realistic records: 4 features, a prediction, a latency, sometimes a flag."""
    builder = RecordBuilder(model="bench", model_version="1", service_name="bench",
                            environment="bench")
    cities = ["paris", "rome", "berlin", "madrid", "oslo"]
    out = []
    for i in range(n):
        flags = {"age": ["out_of_range"]} if i % 20 == 0 else {}
        out.append(builder.build(
            {"age": 20.0 + i % 60, "income": 1000.0 + (i * 37) % 5000,
             "city": cities[i % 5], "review": "the service was good" if i % 2 else "bad"},
            (i % 100) / 100, latency_s=0.001 * (i % 30), flags=flags))
    return out


def fresh_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same documents with new ids, so a round never meets the previous one's (409)."""
    return [{**r, "event": {**r["event"], "id": str(uuid.uuid4())}} for r in records]


def _summary(times: list[int]) -> dict[str, float]:
    times = sorted(times)
    return {"median_us": times[len(times) // 2] / 1000,
            "p99_us": times[int(len(times) * 0.99)] / 1000, "calls": len(times)}


def bench_enqueue(url: str, records: list[dict[str, Any]],
                  fsync: str = "interval") -> dict[str, float]:
    """Per-call `ship()` time, measured one call at a time, with the roles running."""
    with tempfile.TemporaryDirectory() as spool:
        shipper = Shipper(es=url, index="mlmon-bench-enqueue", spool_dir=spool,
                          queue_size=len(records) + 1, handle_signals=False, fsync=fsync)
        clock = time.perf_counter_ns
        times = []
        for record in records:
            start = clock()
            shipper.ship(record)
            times.append(clock() - start)
        shipper.close(timeout=120)
        Elasticsearch(url).options(ignore_status=404).indices.delete(index="mlmon-bench-enqueue")
    return _summary(times)


def bench_record(url: str, n: int) -> dict[str, float]:
    """Per-call `PredictionLogger.record()`: observe (Prometheus) + build + ship (memory mode)."""
    from prometheus_client import CollectorRegistry

    profile = Profile.load(REPO / "kibana" / "example_profile.json")
    cities = ["paris", "rome", "berlin", "madrid", "oslo"]
    with tempfile.TemporaryDirectory() as spool:
        logger = PredictionLogger.from_profile(
            profile, service_name="bench", environment="bench", es_url=url, spool_dir=spool,
            registry=CollectorRegistry(), queue_size=n + 1, handle_signals=False)
        clock = time.perf_counter_ns
        times = []
        for i in range(n):
            features = {"age": 20.0 + i % 60, "income": 1000.0 + (i * 37) % 5000,
                        "city": cities[i % 5], "review": "the service was good"}
            start = clock()
            logger.record(features, "yes", latency_s=0.01, scores={"no": 0.3, "yes": 0.7})
            times.append(clock() - start)
        logger.close(timeout=120)
        Elasticsearch(url).options(ignore_status=404).indices.delete(
            index="mlmon-predictions-churn")
    return _summary(times)


def bench_bulk(client: Elasticsearch, index: str, records: list[dict[str, Any]]) -> float:
    """Docs/s of `helpers.bulk` with the same actions the shipper sends (create, own _id)."""
    actions = ({"_op_type": "create", "_index": index, "_id": r["event"]["id"], "_source": r}
               for r in records)
    start = time.perf_counter()
    ok, errors = helpers.bulk(client, actions, chunk_size=CHUNK, max_chunk_bytes=5 << 20)
    elapsed = time.perf_counter() - start
    assert ok == len(records) and not errors, errors
    return len(records) / elapsed


def bench_shipper(url: str, index: str, records: list[dict[str, Any]]) -> float:
    """Docs/s from the first `ship()` until `flush()` confirms every document indexed."""
    with tempfile.TemporaryDirectory() as spool:
        shipper = Shipper(es=url, index=index, spool_dir=spool, max_docs=CHUNK,
                          queue_size=len(records) + 1, handle_signals=False)
        start = time.perf_counter()
        for record in records:
            shipper.ship(record)
        delivered = shipper.flush(timeout=600)
        elapsed = time.perf_counter() - start
        shipper.close(timeout=10)
    assert delivered, "the shipper did not deliver everything"
    assert shipper.stats.shipped + shipper.stats.replayed == len(records), shipper.stats
    return len(records) / elapsed


@contextlib.contextmanager
def elasticsearch_url(given: str | None) -> Iterator[str]:
    """The cluster to measure against: given, or a throw-away one from the test helper."""
    if given:
        yield given
        return
    try:
        from tests.integration.es_server import is_installed, running_server
    except ImportError as exc:
        raise SystemExit(f"bench_shipper: no --es-url and no Elasticsearch helper ({exc})") from exc
    if not is_installed():
        raise SystemExit("bench_shipper: Elasticsearch is not installed; run "
                         "'make install-elasticsearch' or pass --es-url")
    with running_server() as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for bench_shipper.json")
    parser.add_argument("--es-url", default=os.environ.get("MLMON_ES_URL"))
    parser.add_argument("--docs", type=int, default=20_000, help="documents per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per method")
    args = parser.parse_args(argv)

    records = make_records(args.docs)
    with elasticsearch_url(args.es_url) as url:
        client = Elasticsearch(url, request_timeout=120)
        enqueue = bench_enqueue(url, fresh_ids(records))
        spool_first = bench_enqueue(url, fresh_ids(records), fsync="always")
        record_call = bench_record(url, args.docs)
        # Warm-up (not measured): JIT, caches and the first index creation cost only once.
        bench_bulk(client, "mlmon-bench-warmup", fresh_ids(records))
        client.options(ignore_status=404).indices.delete(index="mlmon-bench-warmup")
        bulk_rates, shipper_rates = [], []
        for round_no in range(args.rounds):  # alternate, so drift in the machine hits both
            for method, rates in (("bulk", bulk_rates), ("shipper", shipper_rates)):
                index = f"mlmon-bench-{method}-{round_no}"
                client.options(ignore_status=404).indices.delete(index=index)
                if method == "bulk":
                    rates.append(bench_bulk(client, index, fresh_ids(records)))
                else:
                    rates.append(bench_shipper(url, index, fresh_ids(records)))
                client.options(ignore_status=404).indices.delete(index=index)
    bulk, shipped = statistics.median(bulk_rates), statistics.median(shipper_rates)
    result = {
        "docs_per_round": args.docs, "rounds": args.rounds, "chunk_docs": CHUNK,
        "enqueue_median_us": round(enqueue["median_us"], 3),
        "enqueue_p99_us": round(enqueue["p99_us"], 3),
        "spool_first_enqueue_median_us": round(spool_first["median_us"], 3),
        "spool_first_enqueue_p99_us": round(spool_first["p99_us"], 3),
        "record_median_us": round(record_call["median_us"], 3),
        "record_p99_us": round(record_call["p99_us"], 3),
        "helpers_bulk_docs_per_s": round(bulk), "shipper_docs_per_s": round(shipped),
        "bulk_rounds_docs_per_s": [round(r) for r in bulk_rates],
        "shipper_rounds_docs_per_s": [round(r) for r in shipper_rates],
        "ratio": round(shipped / bulk, 3),
        "enqueue_ok": enqueue["median_us"] <= TARGET_ENQUEUE_US,
        "throughput_ok": shipped >= TARGET_RATIO * bulk,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_shipper.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"| measure | value | target |\n| --- | --- | --- |\n"
          f"| ship() median | {result['enqueue_median_us']} us | <= {TARGET_ENQUEUE_US} us |\n"
          f"| ship() p99 | {result['enqueue_p99_us']} us | |\n"
          f"| ship() fsync=always median | {result['spool_first_enqueue_median_us']} us "
          f"(p99 {result['spool_first_enqueue_p99_us']}) | none |\n"
          f"| PredictionLogger.record() median | {result['record_median_us']} us "
          f"(p99 {result['record_p99_us']}) | none |\n"
          f"| helpers.bulk | {bulk:.0f} docs/s | baseline |\n"
          f"| Shipper | {shipped:.0f} docs/s | >= {TARGET_RATIO}x baseline |\n"
          f"| ratio | {result['ratio']} | >= {TARGET_RATIO} |")
    return 0 if result["enqueue_ok"] and result["throughput_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
