"""The index template generated from a profile: names, explicit mappings, limits, retention."""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from mlmon.cli import main
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import (
    AssetError,
    count_fields,
    data_stream_name,
    index_template,
    mappings,
    total_fields_limit,
)
from tests.profiles import sample_profile_dict


def _profile(classification: bool = False, model: str = "churn") -> Profile:
    data = sample_profile_dict(classification=classification)
    data["model"]["name"] = model
    return Profile.from_dict(data)


def test_template_matches_exactly_its_data_stream() -> None:
    body = index_template(_profile(model="Churn"))
    assert data_stream_name(_profile(model="Churn")) == "mlmon-predictions-churn"
    # No wildcard: `churn*` would also capture a model named `churn-v2`.
    assert body["index_patterns"] == ["mlmon-predictions-churn"]
    assert body["data_stream"] == {}


def test_feature_kinds_map_to_explicit_types() -> None:
    features = mappings(_profile())["properties"]["features"]
    assert features["dynamic"] is False
    props = features["properties"]
    assert props["age"] == {"type": "double"}
    assert props["income"] == {"type": "double"}
    assert props["city"]["type"] == "keyword"
    assert props["review"]["type"] == "text"
    assert props["review"]["fields"]["keyword"]["type"] == "keyword"


def test_flags_are_keywords_per_feature_and_dynamic_is_off_everywhere() -> None:
    mapping = mappings(_profile())
    assert mapping["dynamic"] is False
    flags = mapping["properties"]["flags"]["properties"]
    assert sorted(flags) == ["age", "city", "income", "review"]
    assert {f["type"] for f in flags.values()} == {"keyword"}

    def objects(node: dict) -> list[dict]:
        found = []
        for field in node.get("properties", {}).values():
            if "properties" in field:
                found.append(field)
                found.extend(objects(field))
        return found

    assert all(obj["dynamic"] is False for obj in objects(mapping))


def test_classification_scores_are_mapped_per_class() -> None:
    prediction = mappings(_profile(classification=True))["properties"]["prediction"]
    assert sorted(prediction["properties"]["scores"]["properties"]) == ["no", "yes"]
    regression = mappings(_profile())["properties"]["prediction"]["properties"]
    assert "scores" not in regression
    assert regression["value"] == {"type": "double"}


def test_total_fields_limit_grows_with_the_profile() -> None:
    small = mappings(_profile())
    assert total_fields_limit(small) == 1000
    data = sample_profile_dict()
    base = data["features"][0]
    data["features"] = [dict(copy.deepcopy(base), name=f"f{i}") for i in range(800)]
    big = mappings(Profile.from_dict(data))
    assert count_fields(big) > 1600  # a feature and a flag per column
    assert total_fields_limit(big) == 2 * count_fields(big)


def test_count_fields_counts_objects_and_subfields() -> None:
    mapping = {"properties": {"a": {"type": "keyword"},
                              "o": {"properties": {"t": {"type": "text",
                                                         "fields": {"k": {"type": "keyword"}}}}}}}
    assert count_fields(mapping) == 4  # a, o, o.t, o.t.k


def test_retention_is_the_data_stream_lifecycle() -> None:
    assert index_template(_profile(), retention="7d")["template"]["lifecycle"] == {
        "data_retention": "7d"}
    assert "lifecycle" not in index_template(_profile(), retention=None)["template"]


def test_template_is_deterministic_and_digest_tracks_the_body() -> None:
    first, again = index_template(_profile()), index_template(_profile())
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    other = index_template(_profile(), retention="7d")
    assert other["_meta"]["body_sha"] != first["_meta"]["body_sha"]


@pytest.mark.parametrize("model", ["churn model", "a/b", "x*", "q?"])
def test_model_names_elasticsearch_refuses_are_reported(model: str) -> None:
    with pytest.raises(AssetError, match="refuses"):
        index_template(_profile(model=model))


def test_cli_print_writes_the_template(tmp_path, capsys) -> None:
    path = tmp_path / "p.json"
    _profile().dump(path)
    assert main(["es-setup", "--profile", str(path), "--print", "--retention", "none"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["index_patterns"] == ["mlmon-predictions-churn"]
    assert "lifecycle" not in printed["template"]


def test_cli_without_url_is_one_line_error(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLMON_ES_URL", raising=False)
    path = tmp_path / "p.json"
    _profile().dump(path)
    assert main(["es-setup", "--profile", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MLMON_ES_URL" in err


def _es_setup(profile_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["es-setup", "--profile", str(profile_path), "--es-url", url,
                 "--timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_es_setup_read_timeout_is_one_readable_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile_path = tmp_path / "p.json"
    _profile().dump(profile_path)
    # Listening but never answering: the kernel completes the connection, nobody reads.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        err = _es_setup(profile_path, url, capsys)
    assert err == f"mlmon es-setup: error: {url}: no answer within 0.3 s (read timeout)\n"


def test_es_setup_404_from_a_host_that_is_not_elasticsearch_is_one_readable_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile_path = tmp_path / "p.json"
    _profile().dump(profile_path)

    class NotElasticsearch(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Not Found</body></html>")

        do_PUT = do_POST = do_DELETE = do_GET  # noqa: N815 - stdlib names

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotElasticsearch)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        err = _es_setup(profile_path, url, capsys)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "None" not in err
    assert err.startswith(f"mlmon es-setup: error: {url}: HTTP 404 ")
    assert "not look like Elasticsearch" in err
