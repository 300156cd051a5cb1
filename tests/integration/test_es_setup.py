"""`mlmon es-setup` against a real Elasticsearch 8.14: idempotent install, typed round trip."""

from __future__ import annotations

import copy
import uuid

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from mlmon.cli import main
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import AssetError, install
from mlmon.log_shipper.record import RecordBuilder
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.profiles import sample_profile_dict

pytestmark = pytest.mark.integration


def _profile(model: str, extra_feature: bool = False, classification: bool = False) -> Profile:
    data = sample_profile_dict(classification=classification)
    data["model"]["name"] = model
    if extra_feature:
        extra = copy.deepcopy(data["features"][2])
        extra["name"] = "plan"
        data["features"].append(extra)
    return Profile.from_dict(data)


def _model() -> str:
    return f"m{uuid.uuid4().hex[:10]}"  # each test its own data stream on the shared node


def test_install_is_idempotent_and_updates_a_live_data_stream(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    first = install(client, _profile(model))
    assert (first.template, first.data_stream_exists) == ("created", False)
    assert install(client, _profile(model)).template == "unchanged"

    name = f"mlmon-predictions-{model}"
    client.create(index=name, id="a", document={"@timestamp": "2026-11-22T10:00:00Z"},
                  refresh=True)
    backing = next(iter(client.indices.get(index=name)))
    assert backing.startswith(f".ds-{name}-")  # a data stream, created by the first record

    updated = install(client, _profile(model, extra_feature=True))
    assert (updated.template, updated.mapping_updated) == ("updated", True)
    live = client.indices.get_mapping(index=name)[backing]["mappings"]
    assert live["properties"]["features"]["properties"]["plan"]["type"] == "keyword"
    assert install(client, _profile(model, extra_feature=True)).template == "unchanged"


def test_records_round_trip_with_the_profile_types(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    profile = _profile(model, classification=True)
    install(client, profile)
    builder = RecordBuilder(model=model, model_version="3", service_name="api",
                            environment="test", profile=profile)
    docs = [
        builder.build({"age": 30, "income": 1500.5, "city": "paris", "review": "good service",
                       "colour": "red"}, "yes", scores={"no": 0.2, "yes": 0.8}, latency_s=0.01,
                      request_id="r1", timestamp=1_790_000_000.0),
        builder.build({"age": 95.5, "income": 100, "city": "oslo", "review": "zorglub"}, "no",
                      scores={"no": 0.9, "yes": 0.1}, request_id="r2",
                      flags={"age": ["out_of_range"], "city": ["unseen", "not_allowed"]},
                      timestamp=1_790_000_001.0),
    ]
    name = f"mlmon-predictions-{model}"
    for doc in docs:
        client.create(index=name, id=doc["event"]["id"], document=doc)
    client.indices.refresh(index=name)

    def ids(query: str) -> list[str]:
        hits = client.search(index=name, query={"query_string": {"query": query}})["hits"]["hits"]
        return sorted(h["_id"] for h in hits)

    assert ids("features.age:[90 TO *]") == ["r2"]           # numeric: a range, not a string
    assert ids("features.city:paris") == ["r1"]              # keyword
    assert ids("features.review:service") == ["r1"]          # text, analysed
    assert ids('features.review.keyword:"good service"') == ["r1"]
    assert ids("flags.city:unseen") == ["r2"]
    assert ids("flagged:age") == ["r2"]
    assert ids("prediction.scores.yes:>0.5") == ["r1"]
    assert ids("event.duration:10000000") == ["r1"]
    assert ids("unknown_features:colour") == ["r1"]
    # The unknown feature's value stays in _source but is not mapped: no mapping explosion.
    mapping = client.indices.get_mapping(index=name)
    features = next(iter(mapping.values()))["mappings"]["properties"]["features"]["properties"]
    assert "colour" not in features
    aggs = client.search(index=name, size=0, aggs={
        "cities": {"terms": {"field": "features.city"}},
        "age": {"histogram": {"field": "features.age", "interval": 50}},
    })["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["cities"]["buckets"]} == {"paris": 1, "oslo": 1}
    assert {b["key"]: b["doc_count"] for b in aggs["age"]["buckets"]} == {0.0: 1, 50.0: 1}


def test_a_value_of_the_wrong_type_is_rejected_not_coerced(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    install(client, _profile(model))
    with pytest.raises(BadRequestError, match="document_parsing_exception|mapper_parsing"):
        client.create(index=f"mlmon-predictions-{model}", id="bad", document={
            "@timestamp": "2026-11-22T10:00:00Z", "features": {"age": "forty"}})


def test_retention_is_stored_and_ilm_is_not_what_we_rely_on(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    install(client, _profile(model), retention="7d")
    stored = client.indices.get_index_template(name=f"mlmon-predictions-{model}")
    lifecycle = stored["index_templates"][0]["index_template"]["template"]["lifecycle"]
    assert lifecycle["data_retention"] == "7d"
    # This distribution has no ILM: an ILM policy setting is refused, which is why the
    # template uses the data stream lifecycle.
    with pytest.raises(BadRequestError):
        client.indices.put_index_template(name=f"ilm-{model}", index_patterns=[f"ilm-{model}"],
                                          template={"settings": {"index.lifecycle.name": "x"}})


def test_a_plain_index_with_the_stream_name_is_refused(es_url: str) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    client.indices.create(index=f"mlmon-predictions-{model}")
    with pytest.raises(AssetError, match="plain index"):
        install(client, _profile(model))


def test_cli_installs_and_reports(es_url: str, tmp_path, capsys) -> None:  # noqa: F811
    model = _model()
    path = tmp_path / "p.json"
    _profile(model).dump(path)
    assert main(["es-setup", "--profile", str(path), "--es-url", es_url]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["es-setup", "--profile", str(path), "--es-url", es_url]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_cli_unreachable_server_is_one_line(tmp_path, capsys) -> None:
    from tests.integration.es_server import free_port

    path = tmp_path / "p.json"
    _profile(_model()).dump(path)
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["es-setup", "--profile", str(path), "--es-url", url, "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot connect" in err and "\n" not in err


def test_a_changed_retention_reaches_an_existing_data_stream_or_says_it_cannot(
        es_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    client = Elasticsearch(es_url)
    model = _model()
    name = f"mlmon-predictions-{model}"
    assert install(client, _profile(model), retention="7d").retention is None  # no stream yet
    client.create(index=name, id="a", document={"@timestamp": "2026-11-22T10:00:00Z"})
    report = install(client, _profile(model), retention="3d")
    try:
        stored = client.indices.get_data_lifecycle(name=name)
    except BadRequestError as exc:  # the test distribution: no _data_stream REST API at all
        assert "no handler found" in str(exc)
        assert report.retention == "unsupported"
        assert "retention NOT applied" in report.summary()
        assert f"retention 3d not applied to the existing data stream {name}" in caplog.text
    else:  # a full server: the stream itself now keeps 3 days
        assert report.retention == "applied"
        assert stored["data_streams"][0]["lifecycle"]["data_retention"] == "3d"
