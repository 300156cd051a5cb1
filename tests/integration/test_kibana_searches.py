"""Every Kibana saved search, run by a real Elasticsearch, finds exactly the planted records.

Records go through the real pipeline: `ModelMonitor.observe()` finds the flags,
`RecordBuilder` writes the document, the `es-setup` template maps it. Each planted record says
which red flags it must raise; normal records must raise none.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from prometheus_client import CollectorRegistry

from mlmon.exporter.monitor import ModelMonitor
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import install
from mlmon.log_shipper.kibana import red_flag_searches, saved_objects
from mlmon.log_shipper.record import RecordBuilder
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.profiles import sample_profile_dict

pytestmark = pytest.mark.integration

NORMAL = {"age": 30.0, "income": 1500.0, "city": "paris", "review": "good service"}

# id -> (feature overrides (None value = drop the key), prediction, latency s, version, flags)
PLANTED: dict[str, tuple[dict[str, Any], Any, float, str, set[str]]] = {
    "age-absent": ({"age": None}, 0.1, 0.01, "3", {"age.missing"}),
    "age-high": ({"age": 150.0}, 0.1, 0.01, "3", {"age.out_of_range"}),
    "age-nan": ({"age": float("nan")}, 0.1, 0.01, "3", {"age.missing"}),  # a NaN is missing
    "age-inf": ({"age": float("-inf")}, 0.1, 0.01, "3", {"age.invalid"}),
    "age-text": ({"age": "forty"}, 0.1, 0.01, "3", {"age.invalid"}),
    "income-low": ({"income": -5.0}, 0.1, 0.01, "3", {"income.out_of_range"}),
    "city-absent": ({"city": None}, 0.1, 0.01, "3", {"city.missing"}),
    "city-new": ({"city": "oslo"}, 0.1, 0.01, "3", {"city.unseen", "city.not_allowed"}),
    "review-absent": ({"review": None}, 0.1, 0.01, "3", {"review.missing"}),
    "review-number": ({"review": 42}, 0.1, 0.01, "3", {"review.wrong_type"}),
    "review-alien": ({"review": "zorglub blorf"}, 0.1, 0.01, "3", {"review.oov"}),
    "review-mixed": ({"review": "the zorglub"}, 0.1, 0.01, "3", set()),  # one known word
    "pred-nan": ({}, float("nan"), 0.01, "3", {"prediction.nan_inf"}),
    "pred-inf": ({}, float("inf"), 0.01, "3", {"prediction.nan_inf"}),
    "slow": ({}, 0.1, 2.5, "3", {"slow"}),
    "slow-edge": ({}, 0.1, 1.0, "3", {"slow"}),             # the threshold is inclusive
    "not-slow": ({}, 0.1, 0.999, "3", set()),
    "other-version": ({}, 0.1, 0.01, "4", set()),
    **{f"normal-{i}": ({}, 0.1 * i, 0.02, "3", set()) for i in range(8)},
}
FEATURE_FLAGS = ("age.", "income.", "city.", "review.")


def _profile(model: str, version: str) -> Profile:
    data = sample_profile_dict()
    data["model"]["name"], data["model"]["version"] = model, version
    return Profile.from_dict(data)


def _seed(client: Elasticsearch, model: str) -> str:
    profile = _profile(model, "3")
    install(client, profile)
    monitors = {v: ModelMonitor(_profile(model, v), CollectorRegistry(),
                                multiproc_directory=None) for v in ("3", "4")}
    builders = {v: RecordBuilder(model=model, model_version=v, service_name="api",
                                 environment="test", profile=_profile(model, v))
                for v in ("3", "4")}
    name = f"mlmon-predictions-{model}"
    operations: list[dict[str, Any]] = []
    for n, (doc_id, (overrides, prediction, latency, version, _)) in enumerate(PLANTED.items()):
        features = {**NORMAL, **overrides}
        features = {k: v for k, v in features.items() if v is not None}
        observation = monitors[version].observe(features, prediction, latency_s=latency)
        doc = builders[version].build(features, prediction, latency_s=latency,
                                      request_id=doc_id, flags=observation.flags,
                                      unknown_features=observation.unknown_features,
                                      timestamp=1_790_000_000.0 + n)
        operations += [{"create": {"_index": name, "_id": doc_id}}, doc]
    result = client.bulk(operations=operations, refresh=True)
    assert not result["errors"], [i for i in result["items"] if "error" in i["create"]]
    return name


def _expected(key: str) -> set[str]:
    if key == "version":
        return {i for i, p in PLANTED.items() if p[3] == "3"}
    if key == "flagged":
        # OOV is found by the search itself, not flagged by the exporter.
        return {i for i, p in PLANTED.items()
                if any(f.startswith(FEATURE_FLAGS) and f != "review.oov" for f in p[4])}
    return {i for i, p in PLANTED.items() if key in p[4]}


def test_each_saved_search_returns_exactly_its_planted_records(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = f"k{uuid.uuid4().hex[:10]}"
    name = _seed(client, model)
    searches = red_flag_searches(_profile(model, "3"))
    planted_keys = set().union(*(p[4] for p in PLANTED.values()))
    assert planted_keys <= {s.key for s in searches}  # every planted flag has its search
    for search in searches:
        hits = client.search(index=name, size=100,
                             query={"query_string": {"query": search.query}})["hits"]["hits"]
        assert {h["_id"] for h in hits} == _expected(search.key), (search.key, search.query)


def test_dashboard_aggregations_run_on_the_mapped_fields(es_url: str) -> None:  # noqa: F811
    import json

    client = Elasticsearch(es_url)
    model = f"k{uuid.uuid4().hex[:10]}"
    name = _seed(client, model)
    for obj in saved_objects(_profile(model, "3")):
        if obj["type"] != "visualization":
            continue
        segment = json.loads(obj["attributes"]["visState"])["aggs"][1]
        params = segment["params"]
        if segment["type"] == "terms":
            agg = {"terms": {"field": params["field"], "size": params["size"]}}
        else:
            agg = {"range": {"field": params["field"], "ranges": params["ranges"]}}
        buckets = client.search(index=name, size=0, aggs={"a": agg})["aggregations"]["a"][
            "buckets"]
        assert sum(b["doc_count"] for b in buckets) > 0, params["field"]
    cities = client.search(index=name, size=0, aggs={
        "a": {"terms": {"field": "features.city"}}})["aggregations"]["a"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in cities} == {"paris": len(PLANTED) - 2, "oslo": 1}


class _Discard:
    """The joiner's counters: this test reads only the records."""

    def observe_outcome(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reject_outcome(self, reason: str, n: int = 1) -> None:
        raise AssertionError(f"label rejected: {reason}")


def test_outcome_searches_find_misclassified_and_confident_wrong(
        es_url: str) -> None:  # noqa: F811
    from mlmon.log_shipper.join import Label, OutcomeJoiner

    client = Elasticsearch(es_url)
    data = sample_profile_dict(classification=True)
    data["model"]["name"] = f"k{uuid.uuid4().hex[:10]}"
    profile = Profile.from_dict(data)
    name = install(client, profile).data_stream
    builder = RecordBuilder(model=profile.model_name, model_version="3", service_name="api",
                            environment="test", profile=profile)
    # id -> (predicted class, its score, actual class or None when no label arrived)
    planted = {"right-sure": ("yes", 0.97, "yes"), "wrong-sure": ("yes", 0.95, "no"),
               "wrong-edge": ("no", 0.9, "yes"),     # the threshold is inclusive
               "wrong-unsure": ("no", 0.6, "yes"), "right-unsure": ("no", 0.55, "no"),
               "unlabelled-sure": ("yes", 0.99, None)}
    operations: list[dict[str, Any]] = []
    for doc_id, (label, score, _actual) in planted.items():
        other = "no" if label == "yes" else "yes"
        doc = builder.build(NORMAL, label, scores={label: score, other: 1 - score},
                            request_id=doc_id)
        operations += [{"create": {"_index": name, "_id": doc_id}}, doc]
    assert not client.bulk(operations=operations)["errors"]
    labels = [Label(i, p[2], 1_790_000_000.0) for i, p in planted.items() if p[2] is not None]
    assert set(OutcomeJoiner(client, profile, {"3": _Discard()}).join(labels)) == {"counted"}
    client.indices.refresh(index=name)
    searches = {s.key: s for s in red_flag_searches(profile, confident=0.9)}
    expected = {"outcome.misclassified": {"wrong-sure", "wrong-edge", "wrong-unsure"},
                "outcome.confident_wrong": {"wrong-sure", "wrong-edge"}}
    for key, ids in expected.items():
        hits = client.search(index=name, size=100, query={
            "query_string": {"query": searches[key].query}})["hits"]["hits"]
        assert {h["_id"] for h in hits} == ids, (key, searches[key].query)
    # a regression profile has no class to be wrong about: no such searches
    assert not [s for s in red_flag_searches(_profile("r", "3")) if s.key.startswith("outcome.")]
