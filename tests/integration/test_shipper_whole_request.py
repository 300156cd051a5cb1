"""A whole bulk request rejected by the real Elasticsearch costs only its offender.

An `_id` over 512 bytes (400 `action_request_validation_exception`) and a document over the
node's `http.max_content_length` (413, empty body) inside batches of good records: the sender
splits the batch until the offender is alone, every good record is indexed exactly once, and
only the offender is dead-lettered, with Elasticsearch's own reason. The size limit is a test
node's `http.max_content_length: 64kb` (the default 100mb would need a >100 MB document).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers

from mlmon.log_shipper.deadletter import read_dead_letters
from mlmon.log_shipper.record import RecordBuilder
from mlmon.log_shipper.sender import BulkSender, Document
from mlmon.log_shipper.shipper import Shipper
from tests.integration.es_server import ElasticsearchServer, es_server, es_url, running_server

__all__ = ["es_server", "es_url"]

pytestmark = pytest.mark.integration

LIMIT_BYTES = 64 << 10


@pytest.fixture(scope="module")
def small_limit_url() -> Iterator[str]:
    """A node of this module's own that refuses requests over 64 KiB with 413."""
    server: ElasticsearchServer
    with running_server({"http.max_content_length": "64kb"}) as server:
        yield server.url


def _builder() -> RecordBuilder:
    return RecordBuilder(model="whole", model_version="1", service_name="t", environment="t")


def _good(n: int, prefix: str) -> list[dict[str, Any]]:
    builder = _builder()
    return [builder.build({"age": float(i), "city": "paris"}, 0.5, request_id=f"{prefix}-{i}")
            for i in range(n)]


def _ship_all(url: str, index: str, records: list[dict[str, Any]], spool: Path
              ) -> tuple[Shipper, list[dict[str, Any]]]:
    dead = spool / "dead.ndjson"
    shipper = Shipper(es=url, index=index, spool_dir=spool / "spool", max_docs=len(records),
                      max_age_s=0.2, dead_letter_path=dead, handle_signals=False)
    for record in records:
        assert shipper.ship(record)
    assert shipper.close(timeout=60)
    return shipper, read_dead_letters(dead)


def _indexed_ids(client: Elasticsearch, index: str) -> list[str]:
    client.indices.refresh(index=index)
    return [h["_id"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})]


def test_an_over_long_id_is_dead_lettered_alone_and_its_batch_mates_indexed(
        es_url: str, tmp_path: Path) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    index = "mlmon-whole-long-id"
    good = _good(99, "long")
    bad = {**good[0], "event": {**good[0]["event"], "id": "x" * 644}}  # ship() takes it as is
    records = good[:40] + [bad] + good[40:]
    shipper, dead = _ship_all(es_url, index, records, tmp_path)
    try:
        ids = _indexed_ids(client, index)
        assert sorted(ids) == sorted(r["event"]["id"] for r in good)  # each once, none lost
        assert [d["id"] for d in dead] == ["x" * 644]
        reason = dead[0]["reason"]
        assert dead[0]["status"] == 400
        assert reason["type"] == "action_request_validation_exception"
        assert "is too long, must be no longer than 512 bytes but was: 644" in reason["reason"]
        assert shipper.stats.shipped == 99 and shipper.stats.dead_lettered == 1
    finally:
        client.options(ignore_status=404).indices.delete(index=index)


def test_a_document_over_the_request_limit_is_dead_lettered_alone_with_the_413(
        small_limit_url: str, tmp_path: Path) -> None:
    client = Elasticsearch(small_limit_url)
    index = "mlmon-whole-too-large"
    good = _good(60, "big")  # ~300 bytes each: the 61-document batch is well under 64 KiB
    huge = _good(1, "huge")[0]
    huge["features"] = {**huge["features"], "review": "y" * (LIMIT_BYTES + 1000)}
    records = good[:17] + [huge] + good[17:]
    shipper, dead = _ship_all(small_limit_url, index, records, tmp_path)
    ids = _indexed_ids(client, index)
    assert sorted(ids) == sorted(r["event"]["id"] for r in good)
    assert [d["id"] for d in dead] == ["huge-0"]
    assert dead[0]["status"] == 413
    assert dead[0]["reason"]["type"] == "request_entity_too_large"
    assert dead[0]["reason"]["reason"] == "Request Entity Too Large"  # Elasticsearch's status line
    assert dead[0]["reason"]["request_bytes"] > LIMIT_BYTES
    assert dead[0]["document"]["features"]["review"] == huge["features"]["review"]
    assert shipper.stats.shipped == 60 and shipper.stats.dead_lettered == 1


def test_the_sender_keeps_requests_under_the_limit_it_knows(small_limit_url: str) -> None:
    # With the node's limit given, a batch larger than it goes as several requests that all
    # fit (no 413 round trips), and a document that alone cannot fit is never sent.
    client = Elasticsearch(small_limit_url)
    index = "mlmon-whole-presplit"
    sizes: list[int] = []
    real_bulk = client.bulk

    def spying_bulk(**kwargs: Any) -> Any:  # the real call, its body size noted
        sizes.append(len(kwargs["operations"]))
        return real_bulk(**kwargs)

    docs = [Document(f"d{i}", json.dumps({"n": i, "pad": "p" * 900}).encode())
            for i in range(200)]  # ~190 KiB in all
    docs.insert(50, Document("alone-too-big", json.dumps({"pad": "q" * LIMIT_BYTES}).encode()))
    sender = BulkSender(client, index, max_request_bytes=LIMIT_BYTES)
    sender._client.bulk = spying_bulk  # type: ignore[method-assign]
    result = sender.send(docs)
    try:
        assert len(sizes) >= 3 and max(sizes) <= LIMIT_BYTES
        assert [(d.id, status) for d, status, _ in result.rejected] == [("alone-too-big", 413)]
        assert result.rejected[0][2]["type"] == "request_too_large"
        assert sorted(_indexed_ids(client, index)) == sorted(f"d{i}" for i in range(200))
        assert not result.retry
    finally:
        client.options(ignore_status=404).indices.delete(index=index)


def test_a_rejection_of_the_whole_request_splits_only_as_far_as_needed(es_url: str) -> None:
    # Two offenders among 64: each ends alone, the other 62 are indexed, and the number of
    # requests stays logarithmic, not one per document.
    client = Elasticsearch(es_url)
    index = "mlmon-whole-two-bad"
    calls = 0
    real_bulk = client.options(max_retries=0).bulk

    docs = [Document(f"ok{i}", b'{"n":1}') for i in range(64)]
    docs[5] = Document("a" * 600, b'{"n":1}')
    docs[50] = Document("b" * 513, b'{"n":1}')
    sender = BulkSender(client, index)

    def counting_bulk(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_bulk(**kwargs)

    sender._client.bulk = counting_bulk  # type: ignore[method-assign]
    result = sender.send(docs)
    try:
        assert sorted(d.id for d, _, _ in result.rejected) == ["a" * 600, "b" * 513]
        assert all(r["type"] == "action_request_validation_exception"
                   for _, _, r in result.rejected)
        assert len(result.ok) == 62 and not result.retry
        assert calls <= 2 * 2 * 6 + 1  # per offender at most two requests per halving level
        assert sorted(_indexed_ids(client, index)) == sorted(
            d.id for d in docs if len(d.id) <= 512)
        boundary = sender.send([Document("c" * 512, b'{"n":1}')])  # exactly 512 bytes is fine
        assert len(boundary.ok) == 1
    finally:
        client.options(ignore_status=404).indices.delete(index=index)


def test_record_with_an_over_long_request_id_is_indexed_under_its_hash(
        es_url: str, tmp_path: Path) -> None:  # noqa: F811
    # The request id contract end to end: record() returns the hashed id, Elasticsearch holds
    # the document under it (once, even when the request is recorded twice) with the original.
    from prometheus_client import CollectorRegistry

    from mlmon.exporter.profile import Profile
    from mlmon.log_shipper.facade import PredictionLogger
    from mlmon.log_shipper.record import stable_id
    from tests.profiles import sample_profile_dict

    data = sample_profile_dict()
    data["model"]["name"] = "whole-request-id"
    profile = Profile.from_dict(data)
    logger = PredictionLogger.from_profile(
        profile, service_name="t", environment="t", es_url=es_url, spool_dir=tmp_path,
        registry=CollectorRegistry(), max_age_s=0.2, handle_signals=False)
    long_id = "req-" + "é" * 320  # 644 bytes
    first = logger.record({"age": 30.0, "city": "paris"}, 0.4, request_id=long_id)
    assert logger.shipper is not None and logger.shipper.flush(timeout=30)
    second = logger.record({"age": 30.0, "city": "paris"}, 0.4, request_id=long_id)
    good = logger.record({"age": 31.0, "city": "rome"}, 0.5)
    assert logger.close(timeout=60)
    client = Elasticsearch(es_url)
    index = logger.shipper.index
    try:
        client.indices.refresh(index=index)
        hits = {h["_id"]: h["_source"] for h in helpers.scan(
            client, index=index, query={"query": {"match_all": {}}})}
        assert first == second == stable_id(long_id)[0]
        assert set(hits) == {first, good}
        assert hits[first]["event"]["original_id"] == long_id
        assert logger.shipper.stats.dead_lettered == 0 and logger.errors == 0
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
