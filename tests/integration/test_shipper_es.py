"""The shipper against a real Elasticsearch: round trip, poison, redaction, outage, crash.

No fake Elasticsearch: the server is the real 8.14 from the Elasticsearch test helper.
Crash test: with `fsync="always"`, every record whose `ship()` returned True before the SIGKILL
must end up indexed, exactly once: `ship()` wrote it to the spool itself, so nothing was only
in memory.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers
from prometheus_client import CollectorRegistry

from mlmon.exporter.profile import Profile
from mlmon.log_shipper import es_assets
from mlmon.log_shipper.deadletter import read_dead_letters
from mlmon.log_shipper.metrics import SpoolRootCollector
from mlmon.log_shipper.record import RecordBuilder, index_name
from mlmon.log_shipper.redact import Redactor
from mlmon.log_shipper.sender import BulkSender, Document
from mlmon.log_shipper.shipper import Shipper
from mlmon.log_shipper.spool_dirs import orphan_candidates
from tests.integration.es_server import ElasticsearchServer, es_restartable, es_server, es_url
from tests.profiles import sample_profile_dict

# Fixtures used by name below; imported so pytest finds them in this module.
__all__ = ["es_restartable", "es_server", "es_url"]

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SALT = "integration-test-salt-0123456789"


# ---- the server and the index -------------------------------------------------------------
# The real node comes from the ES-assets helper: `es_url` (a session-wide node, each test with
# its own data stream) and `es_restartable` (a node of the test's own, stopped and started).

def _profile(model: str) -> Profile:
    data = sample_profile_dict()
    data["model"]["name"] = f"shipper-{model}"  # own data stream on the shared node
    return Profile.from_dict(data)


def _prepare_index(client: Elasticsearch, profile: Profile) -> str:
    """The model's data stream, with the index template `mlmon es-setup` installs."""
    return es_assets.install(client, profile).data_stream


def _all_docs(client: Elasticsearch, index: str) -> list[dict[str, Any]]:
    client.indices.refresh(index=index)
    return list(helpers.scan(client, index=index, query={"query": {"match_all": {}}}))


def _builder(profile: Profile) -> RecordBuilder:
    return RecordBuilder(model=profile.model_name, model_version=profile.model_version,
                         service_name="test-api", environment="test", profile=profile)


def _shipper(url: str, index: str, spool: Path, **options: Any) -> Shipper:
    defaults: dict[str, Any] = dict(max_docs=100, max_age_s=0.2, initial_backoff_s=0.2,
                                    max_backoff_s=2.0, handle_signals=False)
    defaults.update(options)
    return Shipper(es=url, index=index, spool_dir=spool, **defaults)


CITIES = ["paris", "rome", "berlin", "oslo"]


def _features(i: int) -> dict[str, Any]:
    return {"age": 20.0 + i % 50, "income": 1000.0 * (i % 7), "city": CITIES[i % 4],
            "review": f"the service was good {i}"}


# ---- round trip -----------------------------------------------------------------------------

def test_round_trip_search_and_aggregations(es_url: str, tmp_path: Path) -> None:
    client = Elasticsearch(es_url)
    profile = _profile("roundtrip")
    index = _prepare_index(client, profile)
    builder = _builder(profile)
    sent = [builder.build(_features(i), i / 100, latency_s=0.001 * i,
                          flags={"age": ["out_of_range"]} if i % 10 == 0 else {})
            for i in range(300)]
    shipper = _shipper(es_url, index, tmp_path)
    for record in sent:
        assert shipper.ship(record)
    assert shipper.close(timeout=60)

    docs = _all_docs(client, index)
    by_id = {d["_id"]: d["_source"] for d in docs}
    assert len(docs) == len(by_id) == 300
    assert by_id == {r["event"]["id"]: json.loads(json.dumps(r)) for r in sent}
    aggs = client.search(index=index, size=0, aggs={
        "city": {"terms": {"field": "features.city"}},
        "age": {"stats": {"field": "features.age"}},
        "flagged": {"filter": {"term": {"flagged": "age"}}},
    })["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["city"]["buckets"]} == {c: 75 for c in CITIES}
    ages = [r["features"]["age"] for r in sent]
    assert aggs["age"]["count"] == 300 and aggs["age"]["sum"] == pytest.approx(sum(ages))
    assert aggs["flagged"]["doc_count"] == 30
    hits = client.search(index=index, query={"match": {"features.review": "good 17"}},
                         size=1)["hits"]["hits"]
    assert hits[0]["_source"]["features"]["review"] == "the service was good 17"
    assert shipper.stats.shipped == 300 and shipper.stats.spooled == 300  # all through the WAL


# ---- poison ---------------------------------------------------------------------------------

def test_malformed_documents_are_dead_lettered_and_batch_mates_indexed(
        es_url: str, tmp_path: Path) -> None:
    client = Elasticsearch(es_url)
    profile = _profile("poison")
    index = _prepare_index(client, profile)
    builder = _builder(profile)
    good = [builder.build(_features(i), 0.5) for i in range(20)]
    poison = []
    for i in (3, 11):  # a string in a numeric field: bypasses the builder's typing on purpose
        bad = builder.build(_features(i), 0.5)
        bad["features"] = {**bad["features"], "age": f"forty-{i}"}
        poison.append(bad)
    dead_path = tmp_path / "dead.ndjson"
    shipper = _shipper(es_url, index, tmp_path / "spool", max_docs=1000,
                       dead_letter_path=dead_path)
    for record in good[:10] + poison[:1] + good[10:] + poison[1:]:
        shipper.ship(record)
    assert shipper.close(timeout=60)

    assert {d["_id"] for d in _all_docs(client, index)} == {r["event"]["id"] for r in good}
    dead = read_dead_letters(dead_path)
    assert sorted(d["id"] for d in dead) == sorted(r["event"]["id"] for r in poison)
    for entry in dead:
        assert entry["status"] == 400 and entry["index"] == index
        assert "features.age" in entry["reason"]["reason"]
        assert entry["document"]["features"]["age"].startswith("forty-")
    assert shipper.stats.dead_lettered == 2 and shipper.stats.shipped == 20


# ---- redaction ------------------------------------------------------------------------------

def test_redacted_values_appear_nowhere_in_elasticsearch(es_url: str, tmp_path: Path) -> None:
    client = Elasticsearch(es_url)
    profile = _profile("redact")
    index = _prepare_index(client, profile)
    secret_city, secret_review = "zanzibar-secret-city", "my card is 4111-1111-1111-1111"
    redactor = Redactor({"features.city": "hash", "features.review": "drop",
                         "features.income": "mask"}, salt=SALT)
    shipper = _shipper(es_url, index, tmp_path, redactor=redactor)
    record = _builder(profile).build({**_features(1), "city": secret_city,
                                      "review": secret_review}, 0.5)
    shipper.ship(record)
    assert shipper.close(timeout=60)

    client.indices.refresh(index=index)
    everything = json.dumps(_all_docs(client, index))
    assert record["event"]["id"] in everything and '"income": null' in everything
    assert secret_city not in everything and "4111" not in everything
    for needle in (secret_city, "4111-1111-1111-1111", "card"):
        found = client.search(index=index, query={"query_string": {"query": f'"{needle}"',
                                                                  "fields": ["*"],
                                                                  "lenient": True}})
        assert found["hits"]["total"]["value"] == 0
    hashed = redactor.hash_value(secret_city)
    assert client.count(index=index, query={"term": {"features.city": hashed}})["count"] == 1


# ---- outage ---------------------------------------------------------------------------------

OUTAGE_S = 32.0
RATE_PER_S = 100


def test_outage_loses_nothing_and_enqueue_stays_flat(es_restartable: ElasticsearchServer,
                                                     tmp_path: Path) -> None:
    server = es_restartable  # a node of this test's own: stopping it disturbs no other test
    client = Elasticsearch(server.url)
    profile = _profile("outage")
    index = _prepare_index(client, profile)
    builder = _builder(profile)
    shipper = _shipper(server.url, index, tmp_path, fsync="interval")
    phase = ["before"]
    latencies: dict[str, list[int]] = {"before": [], "outage": [], "after": []}
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:  # a steady rate, whatever Elasticsearch does
        period, next_at, i = 1.0 / RATE_PER_S, time.monotonic(), 0
        while not stop.is_set():
            record = builder.build(_features(i), 0.5)
            start = time.perf_counter_ns()
            shipper.ship(record)
            latencies[phase[0]].append(time.perf_counter_ns() - start)
            sent.append(record["event"]["id"])
            i += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(5)
        phase[0] = "outage"
        server.stop()
        time.sleep(OUTAGE_S)
        spooled_during_outage = shipper.stats.spooled
        server.start()
        phase[0] = "after"
        time.sleep(5)
    finally:
        stop.set()
        producer.join()
    assert shipper.close(timeout=120)

    docs = _all_docs(client, index)
    ids = [d["_id"] for d in docs]
    assert len(ids) == len(set(ids)) == len(sent)  # exactly once
    assert set(ids) == set(sent)
    assert spooled_during_outage >= RATE_PER_S * OUTAGE_S * 0.9
    assert shipper.stats.replayed >= spooled_during_outage
    assert sum(shipper.stats.dropped.values()) == 0
    before, outage = latencies["before"], latencies["outage"]
    p99 = {k: statistics.quantiles(v, n=100)[98] for k, v in latencies.items()}
    # Flat: the outage changes nothing on the caller's side (generous factor: shared CPU).
    assert p99["outage"] <= 10 * p99["before"], p99
    assert statistics.median(outage) <= 3 * statistics.median(before), p99


# ---- crash ----------------------------------------------------------------------------------

def produce(url: str, model: str, spool: str, accepted: str, first: int, count: int) -> None:
    """The producing process: ship records at a steady rate, write the id of every record whose
    `ship()` returned True (after it returned: an id in the file was returned for), print stats."""
    profile = _profile(model)
    builder = _builder(profile)
    fd = os.open(accepted, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    shipper = _shipper(url, index_name(profile.model_name), Path(spool), fsync="always",
                       max_docs=50, max_age_s=0.05)
    assert shipper.fsync == "always"
    for i in range(first, first + count):
        if shipper.ship(builder.build(_features(i), 0.5, request_id=f"crash-{i}")):
            os.write(fd, f"crash-{i}\n".encode())
        time.sleep(0.002)
    delivered = shipper.close(timeout=60)
    print(json.dumps({"delivered": delivered, "replayed": shipper.stats.replayed,
                      "shipped": shipper.stats.shipped}), flush=True)


def _start_producer(url: str, model: str, spool: Path, accepted: Path, first: int,
                    count: int) -> subprocess.Popen[str]:
    code = ("from tests.integration.test_shipper_es import produce; "
            f"produce({url!r}, {model!r}, {str(spool)!r}, {str(accepted)!r}, {first}, {count})")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, text=True,
                            stdout=subprocess.PIPE)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("first_run", ["elasticsearch_down", "elasticsearch_up"])
def test_sigkill_then_restart_replays_every_accepted_record(
        es_url: str, tmp_path: Path, unused_url: str, first_run: str) -> None:
    client = Elasticsearch(es_url)
    model = f"crash-{first_run}"
    index = _prepare_index(client, _profile(model))
    spool, accepted = tmp_path / "spool", tmp_path / "accepted"
    url = unused_url if first_run == "elasticsearch_down" else es_url
    victim = _start_producer(url, model, spool, accepted, 0, 100_000)
    deadline = time.monotonic() + 60
    while len(_lines(accepted)) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # mid-stream: records are queued, in flight, spooled
    victim.wait()
    before_restart = set(_lines(accepted))
    assert len(before_restart) >= 300

    second = _start_producer(es_url, model, spool, accepted, 1_000_000, 10)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0
    stats = json.loads(out.splitlines()[-1])
    assert stats["delivered"] is True

    ids = [d["_id"] for d in _all_docs(client, index)]
    assert len(ids) == len(set(ids))
    assert before_restart <= set(ids)  # nothing ship() returned True for was lost
    assert {f"crash-{i}" for i in range(1_000_000, 1_000_010)} <= set(ids)
    if first_run == "elasticsearch_down":
        assert stats["replayed"] >= len(before_restart)  # it came from the spool


@pytest.fixture
def unused_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# ---- drained orphans: directories removed, counts kept ------------------------------------

def produce_then_exit(url: str, model: str, spool: str, count: int) -> None:
    """A worker that ships `count` records while Elasticsearch is unreachable, then exits."""
    profile = _profile(model)
    builder = _builder(profile)
    shipper = _shipper(url, index_name(profile.model_name), Path(spool), max_retries=0)
    for i in range(count):
        assert shipper.ship(builder.build(_features(i), 0.5, request_id=f"{spool}-{i}"))
    shipper.close(timeout=0.5)


def test_replayed_orphans_are_removed_and_the_summed_counts_stay(
        es_url: str, tmp_path: Path, unused_url: str) -> None:
    client = Elasticsearch(es_url)
    model = "retired-orphans"
    index = _prepare_index(client, _profile(model))
    orphans = [tmp_path / f"pid-{n}" for n in (1, 2)]  # recycled workers (--max-requests)
    for orphan in orphans:
        code = ("from tests.integration.test_shipper_es import produce_then_exit; "
                f"produce_then_exit({unused_url!r}, {model!r}, {str(orphan)!r}, 40)")
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
    summed = CollectorRegistry()
    summed.register(SpoolRootCollector(tmp_path))
    assert summed.get_sample_value("mlmon_shipper_queued_total") == 80

    own = tmp_path / "pid-99"
    shipper = _shipper(es_url, index, own, adopt_dirs=orphan_candidates(tmp_path, own))
    assert shipper.flush(timeout=60)
    assert shipper.close(timeout=30)
    ids = [d["_id"] for d in _all_docs(client, index)]
    assert sorted(ids) == sorted(f"{o}-{i}" for o in orphans for i in range(40))
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["pid-99"]
    assert summed.get_sample_value("mlmon_shipper_queued_total") == 80  # the dead ones' counts
    assert summed.get_sample_value("mlmon_shipper_replayed_total") == 80  # this process's


# ---- retry of the failed documents only -----------------------------------------------------

def test_only_documents_failing_with_503_are_retried_and_all_end_indexed(es_url: str) -> None:
    # A real partial failure: two primary shards, at most one per node on this single node,
    # so shard 1 stays unassigned and Elasticsearch answers 503 unavailable_shards_exception
    # for exactly the documents routed to it, while shard 0's documents are indexed. The
    # backoff sleep (injected, as the shipper does) lifts the limit; the retry then succeeds.
    client = Elasticsearch(es_url, request_timeout=60)
    index = "mlmon-retry-partial"
    client.options(ignore_status=404).indices.delete(index=index)
    client.indices.create(index=index, wait_for_active_shards="0", settings={
        "index.number_of_shards": 2, "index.number_of_replicas": 0,
        "index.routing.allocation.total_shards_per_node": 1})
    try:
        client.cluster.health(index=index, wait_for_active_shards="1", timeout="30s")
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 1:
                client.indices.put_settings(index=index, settings={
                    "index.routing.allocation.total_shards_per_node": -1})
                client.cluster.health(index=index, wait_for_status="green", timeout="30s")

        docs = [Document(f"p{i}", json.dumps({"n": i}).encode()) for i in range(40)]
        sender = BulkSender(client, index, max_retries=3, initial_backoff_s=0.25,
                            request_timeout_s=20, bulk_timeout_s=1.0, sleep=sleep)
        result = sender.send(docs)

        client.indices.refresh(index=index)
        on_shard_1 = client.count(index=index, preference="_shards:1")["count"]
        assert 0 < on_shard_1 < len(docs)  # a partial failure, not all or nothing
        assert result.retries == on_shard_1  # only the 503 documents were sent again
        assert sleeps == [0.25]  # one backoff: the retry succeeded
        assert sorted(d.id for d in result.ok) == sorted(d.id for d in docs)
        assert not result.retry and not result.rejected
        hits = helpers.scan(client, index=index, query={"query": {"match_all": {}}})
        assert sorted(h["_id"] for h in hits) == sorted(d.id for d in docs)  # once each
    finally:
        client.options(ignore_status=404).indices.delete(index=index)


def test_a_reused_request_id_is_indexed_once_and_counted(es_url: str, tmp_path: Path) -> None:
    client = Elasticsearch(es_url)
    profile = _profile("dupids")
    index = _prepare_index(client, profile)
    builder = _builder(profile)
    shipper = _shipper(es_url, index, tmp_path)
    for i in range(3):  # three predictions, the caller gave two of them the same id
        shipper.ship(builder.build(_features(i), 0.5, request_id="same" if i else "other"))
        assert shipper.flush(timeout=30)  # one at a time: the second "same" meets the first
    assert shipper.close(timeout=30)
    docs = _all_docs(client, index)
    assert sorted(d["_id"] for d in docs) == ["other", "same"]
    assert next(d for d in docs if d["_id"] == "same")["_source"]["features"]["age"] == 21.0
    assert shipper.stats.duplicate_ids == 1
    assert shipper.stats.shipped == 3  # 409 still counts as delivered: nothing to retry
