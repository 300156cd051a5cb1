"""Labels joined to their records in a real Elasticsearch: written once, counted once.

Records are indexed into the model's data stream as the shipper writes them (`create`, `_id` =
`event.id`, the template of `mlmon es-setup`); `OutcomeJoiner` looks them up and writes the
outcome. The counters here only record what the joiner reported: the exporter's own counting is
tested with the exporter, the whole chain through the CLI in test_outcomes_cli.py.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from mlmon.exporter.profile import Profile
from mlmon.log_shipper import es_assets
from mlmon.log_shipper.join import (
    COUNTED,
    DUPLICATE,
    INVALID_PREDICTION,
    MISSING_ACTUAL,
    UNKNOWN_ID,
    UNKNOWN_MODEL,
    Label,
    OutcomeJoiner,
)
from mlmon.log_shipper.record import RecordBuilder, stable_id
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.profiles import sample_profile_dict

pytestmark = pytest.mark.integration

T0 = 1_790_000_000.0


class Recorded:
    """Records what the joiner counted (a stand-in for the exporter's outcome API)."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[Any, Any, float | None, float | None]] = []
        self.rejected: Counter[str] = Counter()
        self.lock = threading.Lock()

    def observe_outcome(self, prediction: Any, actual: Any, *, predicted_at: float | None = None,
                        arrived_at: float | None = None) -> None:
        with self.lock:
            self.outcomes.append((prediction, actual, predicted_at, arrived_at))

    def reject_outcome(self, reason: str, n: int = 1) -> None:
        with self.lock:
            self.rejected[reason] += n


def _profile(model: str, classification: bool) -> Profile:
    data = sample_profile_dict(classification=classification)
    data["model"]["name"] = model
    return Profile.from_dict(data)


def _seed(client: Elasticsearch, profile: Profile,
          rows: list[tuple[str, Any, str]]) -> str:
    """Index `(request_id, prediction, model version)` records; the data stream's name."""
    name = es_assets.install(client, profile).data_stream
    operations: list[dict[str, Any]] = []
    for n, (request_id, prediction, version) in enumerate(rows):
        builder = RecordBuilder(model=profile.model_name, model_version=version,
                                service_name="api", environment="test", profile=profile)
        scores = {prediction: 0.95, "no" if prediction == "yes" else "yes": 0.05} if (
            isinstance(prediction, str)) else None
        doc = builder.build({"age": 30.0}, prediction, scores=scores, request_id=request_id,
                            timestamp=T0 + n)
        operations += [{"create": {"_index": name, "_id": doc["event"]["id"]}}, doc]
    answer = client.bulk(operations=operations)
    assert not answer["errors"], answer["items"][:3]
    return name


def _source(client: Elasticsearch, name: str, request_id: str) -> dict[str, Any]:
    client.indices.refresh(index=name)
    hits = client.search(index=name, query={"ids": {"values": [stable_id(request_id)[0]]}})
    return dict(hits["hits"]["hits"][0]["_source"])


def test_classification_labels_join_once_with_every_reason_counted(
        es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    profile = _profile(f"j{uuid.uuid4().hex[:8]}", classification=True)
    long_id = "x" * 600  # stored under its sha256 id, found by the same rule
    rows = [("a", "yes", "3"), ("b", "no", "3"), ("c", "yes", "3"), ("old", "no", "2"),
            ("nan-pred", float("nan"), "3"), (long_id, "yes", "3")]
    name = _seed(client, profile, rows)
    counter = Recorded()
    joiner = OutcomeJoiner(client, profile, {"3": counter})
    labels = [Label("a", "yes", T0 + 100), Label("b", "yes", T0 + 200),  # right, wrong
              Label("c", 1.5, T0 + 100),      # a class the profile lacks: counted (__unseen__)
              Label("zzz", "no", T0 + 100),   # never predicted
              Label("old", "no", T0 + 100),   # a version without a counter here
              Label("nan-pred", "no", T0 + 100),
              Label("a", "no", T0 + 300),     # the same id again in the batch
              Label(long_id, "no", T0 + 50),
              Label("c", None, T0 + 100)]     # no label
    verdicts = joiner.join(labels)
    assert verdicts == [COUNTED, COUNTED, COUNTED, UNKNOWN_ID, UNKNOWN_MODEL,
                        INVALID_PREDICTION, DUPLICATE, COUNTED, MISSING_ACTUAL]
    assert counter.outcomes == [("yes", "yes", T0, T0 + 100), ("no", "yes", T0 + 1, T0 + 200),
                                ("yes", "1.5", T0 + 2, T0 + 100), ("yes", "no", T0 + 5, T0 + 50)]
    assert counter.rejected == {UNKNOWN_ID: 1, UNKNOWN_MODEL: 1, INVALID_PREDICTION: 1,
                                DUPLICATE: 1, MISSING_ACTUAL: 1}
    outcome = _source(client, name, "b")["outcome"]
    assert {k: v for k, v in outcome.items() if k != "writer"} == {
        "label": "yes", "correct": False, "arrived_at": "2026-09-21T14:16:40.000Z",
        "delay_s": 199.0}
    assert _source(client, name, long_id)["outcome"]["correct"] is False
    assert "outcome" not in _source(client, name, "old")

    # Kibana's searches run on the mapped fields: misclassified, confident but wrong.
    client.indices.refresh(index=name)
    wrong = client.search(index=name, query={"query_string": {"query": "outcome.correct:false"}})
    assert {h["_id"] for h in wrong["hits"]["hits"]} == {"b", "c", stable_id(long_id)[0]}

    again = Recorded()
    verdicts = OutcomeJoiner(client, profile, {"3": again}).join(labels)
    assert verdicts.count(DUPLICATE) == 5 and again.outcomes == []


def test_a_records_rejection_counts_under_the_records_version(es_url: str) -> None:  # noqa: F811
    """Champion ("3") and challenger ("4") records in one stream: a duplicate (fed again, or
    twice in a batch) or an unusable prediction counts under the record's version; a label
    with no record of a counted version under the profile's."""
    client = Elasticsearch(es_url)
    profile = _profile(f"v{uuid.uuid4().hex[:8]}", classification=True)
    _seed(client, profile, [("a", "yes", "3"), ("b", "no", "4"), ("c", float("nan"), "4"),
                            ("old", "no", "2")])
    champion, challenger = Recorded(), Recorded()
    joiner = OutcomeJoiner(client, profile, {"3": champion, "4": challenger})
    labels = [Label(i, "yes", T0 + 60) for i in ("a", "b", "c", "old", "b", "zzz")]
    assert joiner.join(labels) == [COUNTED, COUNTED, INVALID_PREDICTION, UNKNOWN_MODEL,
                                   DUPLICATE, UNKNOWN_ID]
    assert champion.rejected == {UNKNOWN_MODEL: 1, UNKNOWN_ID: 1}
    assert challenger.rejected == {INVALID_PREDICTION: 1, DUPLICATE: 1}
    assert joiner.join(labels) == [DUPLICATE, DUPLICATE, INVALID_PREDICTION, UNKNOWN_MODEL,
                                   DUPLICATE, UNKNOWN_ID]
    assert champion.rejected == {UNKNOWN_MODEL: 2, UNKNOWN_ID: 2, DUPLICATE: 1}
    assert challenger.rejected == {INVALID_PREDICTION: 2, DUPLICATE: 3}
    assert (len(champion.outcomes), len(challenger.outcomes)) == (1, 1)


def test_regression_outcome_fields_and_wrong_types(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    profile = _profile(f"r{uuid.uuid4().hex[:8]}", classification=False)
    name = _seed(client, profile, [("p", 2.5, "3"), ("q", -1.0, "3"), ("huge", 1e308, "3")])
    counter = Recorded()
    verdicts = OutcomeJoiner(client, profile, {"3": counter}).join(
        [Label("p", 2.0, T0 + 10), Label("q", "high", T0 + 10), Label("q", float("inf"), T0),
         Label("q", True, T0 + 10), Label("huge", -1e308, T0),  # the error overflows
         Label("q", 1.0, 1e300), Label("q", 1.0, float("nan"))])  # no date: bad_arrival
    assert verdicts == [COUNTED, "wrong_type", "inf", "wrong_type", "inf", "bad_arrival",
                        "bad_arrival"]
    assert counter.outcomes == [(2.5, 2.0, T0, T0 + 10)]
    outcome = _source(client, name, "p")["outcome"]
    assert (outcome["value"], outcome["error"], outcome["absolute_error"]) == (2.0, 0.5, 0.5)
    assert "outcome" not in _source(client, name, "q")


def test_concurrent_joiners_count_each_label_once(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    profile = _profile(f"c{uuid.uuid4().hex[:8]}", classification=True)
    ids = [f"id-{i}" for i in range(400)]
    _seed(client, profile, [(i, "yes", "3") for i in ids])
    labels = [Label(i, "yes" if n % 3 else "no", T0 + 60) for n, i in enumerate(ids)]
    counters = [Recorded() for _ in range(4)]
    start = threading.Barrier(len(counters))

    def run(counter: Recorded) -> None:
        joiner = OutcomeJoiner(Elasticsearch(es_url), profile, {"3": counter})
        start.wait()
        for k in range(0, len(labels), 50):
            joiner.join(labels[k:k + 50])

    threads = [threading.Thread(target=run, args=(c,)) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counted = sum(len(c.outcomes) for c in counters)
    duplicates = sum(c.rejected[DUPLICATE] for c in counters)
    assert counted == len(ids)
    assert duplicates == len(ids) * (len(counters) - 1)
    assert sum(sum(c.rejected.values()) for c in counters) == duplicates


def test_a_record_in_an_older_backing_index_is_found(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    profile = _profile(f"o{uuid.uuid4().hex[:8]}", classification=True)
    name = _seed(client, profile, [("before", "yes", "3")])
    client.indices.rollover(alias=name)
    _seed(client, profile, [("after", "no", "3")])
    counter = Recorded()
    verdicts = OutcomeJoiner(client, profile, {"3": counter}).join(
        [Label("before", "yes", T0 + 9), Label("after", "no", T0 + 9)])
    assert verdicts == [COUNTED, COUNTED]
    client.indices.refresh(index=name)
    hits = client.search(index=name, query={"exists": {"field": "outcome.correct"}})
    backing = {h["_id"]: h["_index"] for h in hits["hits"]["hits"]}
    assert len(set(backing.values())) == 2 and set(backing) == {"before", "after"}


def test_elasticsearch_unreachable_leaves_labels_to_the_caller_then_joins_them(
        es_url: str) -> None:  # noqa: F811
    """Through a proxy that resets every connection: the labels are es_unavailable, nothing is
    written or counted; once it passes again the same labels are joined and counted once."""
    from urllib.parse import urlsplit

    from mlmon.exporter.layout import ES_UNAVAILABLE
    from tests.integration.faulty_proxy import FaultyProxy

    client = Elasticsearch(es_url)
    profile = _profile(f"u{uuid.uuid4().hex[:8]}", classification=True)
    name = _seed(client, profile, [(f"u{i}", "yes", "3") for i in range(30)])
    labels = [Label(f"u{i}", "yes" if i % 2 else "no", T0 + 5) for i in range(30)]
    counter = Recorded()
    with FaultyProxy(upstream_port=int(urlsplit(es_url).port or 9200)) as proxy:
        joiner = OutcomeJoiner(Elasticsearch(proxy.url, max_retries=0), profile, {"3": counter},
                               retries=2, sleep=lambda _s: None)
        assert set(joiner.join(labels[:10])) == {COUNTED}
        proxy.mode = "reset"
        assert joiner.join(labels[10:]) == [ES_UNAVAILABLE] * 20
        assert joiner.last_error.startswith("ConnectionError")
        assert len(counter.outcomes) == 10 and counter.rejected == {}
        proxy.mode = "pass"
        assert set(joiner.join(labels)) == {COUNTED, DUPLICATE}
    assert len(counter.outcomes) == 30 and counter.rejected == {DUPLICATE: 10}
    client.indices.refresh(index=name)
    assert client.count(index=name, query={"exists": {"field": "outcome.label"}})["count"] == 30
