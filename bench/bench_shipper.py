"""Benchmark the log shipper: enqueue cost and sustained shipping into a real Elasticsearch.

Targets (issue 4, section 6):
- `ship()` median <= 5 us per record (the default `fsync="interval"` policy);
- shipping throughput >= 0.8x a plain `elasticsearch.helpers.bulk` of the same documents,
  both measured here, in the same run, against the same single-node cluster.

- `PredictionLogger.record()` median <= 1.5x python-json-logger's `logger.info(record)` to a
  file handler (the guide's way of logging inputs), same run; reported beside it: observe()
  alone and the older path (observe + build + ship in the caller's thread).

Reported beside them, without a target: `ship()` under `fsync="always"` (the record is
serialized and written to the spool in the caller's thread).

Usage: bench/bench_shipper.py --out DIR [--es-url URL] [--docs N] [--rounds R]
Without --es-url (or MLMON_ES_URL) it starts a throw-away Elasticsearch through the test
helper `tests.integration.es_server` when that is available.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elasticsearch import Elasticsearch, helpers  # noqa: E402

from bench.judging import Target, finish  # noqa: E402
from mlmon.exporter.profile import Profile  # noqa: E402
from mlmon.log_shipper.facade import PredictionLogger  # noqa: E402
from mlmon.log_shipper.record import RecordBuilder  # noqa: E402
from mlmon.log_shipper.shipper import Shipper  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_ENQUEUE_US = 5.0
TARGET_RATIO = 0.8
TARGET_RECORD_VS_GUIDE = 1.5  # record() against the guide's logger.info(), same run
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


def _features(i: int) -> dict[str, Any]:
    cities = ["paris", "rome", "berlin", "madrid", "oslo"]
    return {"age": 20.0 + i % 60, "income": 1000.0 + (i * 37) % 5000, "city": cities[i % 5],
            "review": "the service was good"}


def _per_call(n: int, call: Callable[[int], Any]) -> dict[str, float]:
    clock = time.perf_counter_ns
    times = []
    for i in range(n):
        start = clock()
        call(i)
        times.append(clock() - start)
    return _summary(times)


def _role_cpu_s(role: Any) -> float:
    """CPU seconds the shipper role's thread has used (its own clock: the others' work and
    the time it waits for the GIL are not counted)."""
    return time.clock_gettime(time.pthread_getcpuclockid(role._thread.ident))


def bench_record(url: str, n: int) -> dict[str, dict[str, float]]:
    """Per-call costs on the request thread, measured in turn in the same process:
    - `record`: `PredictionLogger.record()` (observe + capture + ship; built off the thread);
    - `build_on_thread`: observe + build + ship in the caller's thread (how record() used to work);
    - `observe`: `ModelMonitor.observe()` alone;
    - `threads`: the CPU time the spool writer (build, redact, encode, spool) and the sender
      (bulk requests) spent per record of the `record` calls, on their threads' own clocks;
    - `guide`: python-json-logger's `logger.info(record)` to a file handler (how the guide's
      course code logs a prediction's inputs), synchronous as it is written there."""
    from prometheus_client import CollectorRegistry
    from pythonjsonlogger.json import JsonFormatter

    profile = Profile.load(REPO / "kibana" / "example_profile.json")
    features = [_features(i) for i in range(n)]
    scores = {"no": 0.3, "yes": 0.7}
    with tempfile.TemporaryDirectory() as spool:
        logger = PredictionLogger.from_profile(
            profile, service_name="bench", environment="bench", es_url=url, spool_dir=spool,
            registry=CollectorRegistry(), queue_size=2 * n + 1, handle_signals=False)
        monitor, builder, shipper = logger.monitor, logger.builder, logger.shipper
        assert monitor is not None and shipper is not None

        def build_on_thread(i: int) -> None:
            seen = monitor.observe(features[i], "yes", latency_s=0.01, scores=scores)
            shipper.ship(builder.build(features[i], "yes", latency_s=0.01, scores=scores,
                                       flags=seen.flags, unknown_features=seen.unknown_features))

        guide = logging.Logger("bench-guide", logging.INFO)
        handler = logging.FileHandler(Path(spool) / "guide.log", encoding="utf-8")
        handler.setFormatter(JsonFormatter())
        guide.addHandler(handler)
        roles = (shipper.writer, shipper.sender)
        cpu_before = [_role_cpu_s(role) for role in roles]
        out = {
            "record": _per_call(n, lambda i: logger.record(features[i], "yes", latency_s=0.01,
                                                           scores=scores)),
        }
        shipper.flush(timeout=120)  # the roles' CPU for these n records, delivered
        out["threads"] = {f"{name}_cpu_us_per_record": 1e6 * (_role_cpu_s(role) - before) / n
                          for name, role, before in zip(("writer", "sender"), roles, cpu_before,
                                                        strict=True)}
        out |= {
            "build_on_thread": _per_call(n, build_on_thread),
            "observe": _per_call(n, lambda i: monitor.observe(features[i], "yes",
                                                              latency_s=0.01, scores=scores)),
            "guide": _per_call(n, lambda i: guide.info(
                {"features": features[i], "prediction": "yes", "scores": scores,
                 "latency_s": 0.01})),
        }
        handler.close()
        logger.close(timeout=120)
        Elasticsearch(url).options(ignore_status=404).indices.delete(
            index="mlmon-predictions-churn")
    return out


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
        "record_median_us": round(record_call["record"]["median_us"], 3),
        "record_p99_us": round(record_call["record"]["p99_us"], 3),
        "record_build_on_thread_median_us": round(record_call["build_on_thread"]["median_us"], 3),
        "observe_median_us": round(record_call["observe"]["median_us"], 3),
        **{key: round(value, 3) for key, value in record_call["threads"].items()},
        "guide_logger_info_median_us": round(record_call["guide"]["median_us"], 3),
        "record_vs_guide": round(record_call["record"]["median_us"]
                                 / record_call["guide"]["median_us"], 3),
        "helpers_bulk_docs_per_s": round(bulk), "shipper_docs_per_s": round(shipped),
        "bulk_rounds_docs_per_s": [round(r) for r in bulk_rates],
        "shipper_rounds_docs_per_s": [round(r) for r in shipper_rates],
        "ratio": round(shipped / bulk, 3),
        "enqueue_ok": enqueue["median_us"] <= TARGET_ENQUEUE_US,
        "throughput_ok": shipped >= TARGET_RATIO * bulk,
    }
    result["record_ok"] = result["record_vs_guide"] <= TARGET_RECORD_VS_GUIDE
    print(f"| measure | value | target |\n| --- | --- | --- |\n"
          f"| ship() median | {result['enqueue_median_us']} us | <= {TARGET_ENQUEUE_US} us |\n"
          f"| ship() p99 | {result['enqueue_p99_us']} us | |\n"
          f"| ship() fsync=always median | {result['spool_first_enqueue_median_us']} us "
          f"(p99 {result['spool_first_enqueue_p99_us']}) | none |\n"
          f"| PredictionLogger.record() median | {result['record_median_us']} us "
          f"(p99 {result['record_p99_us']}) | <= {TARGET_RECORD_VS_GUIDE}x guide |\n"
          f"| observe + build + ship on the thread (before) | "
          f"{result['record_build_on_thread_median_us']} us | |\n"
          f"| observe() alone | {result['observe_median_us']} us | |\n"
          f"| per record() in the spool writer's / sender's thread (CPU) | "
          f"{result['writer_cpu_us_per_record']} / {result['sender_cpu_us_per_record']} us "
          f"| |\n"
          f"| guide: python-json-logger info() to a file | "
          f"{result['guide_logger_info_median_us']} us | baseline |\n"
          f"| record() / guide | {result['record_vs_guide']} | "
          f"<= {TARGET_RECORD_VS_GUIDE} |\n"
          f"| helpers.bulk | {bulk:.0f} docs/s | baseline |\n"
          f"| Shipper | {shipped:.0f} docs/s | >= {TARGET_RATIO}x baseline |\n"
          f"| ratio | {result['ratio']} | >= {TARGET_RATIO} |")
    # Judged on same-run ratios only; the enqueue time is absolute: reported, not judged.
    throughput = Target("Shipper vs helpers.bulk throughput", shipped / bulk, TARGET_RATIO,
                        at_least=True, reported=f"{shipped:.0f} vs {bulk:.0f} docs/s; ship() "
                        f"median {result['enqueue_median_us']} us")
    record = Target("PredictionLogger.record() vs python-json-logger", result["record_vs_guide"],
                    TARGET_RECORD_VS_GUIDE, at_least=False,
                    reported=f"{result['record_median_us']} us vs "
                             f"{result['guide_logger_info_median_us']} us")
    return finish("bench_shipper", args.out, "bench_shipper.json", result, [throughput, record])


if __name__ == "__main__":
    sys.exit(main())
