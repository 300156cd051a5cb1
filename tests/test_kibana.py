"""Kibana saved objects: the NDJSON is well formed, self-consistent, stable, and up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlmon.cli import main
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.cli_kibana import import_objects
from mlmon.log_shipper.kibana import (
    escape_field,
    quote,
    range_agg,
    red_flag_searches,
    saved_objects,
    to_ndjson,
)
from tests.profiles import sample_profile_dict

REPO = Path(__file__).resolve().parents[1]


def _profile(classification: bool = True) -> Profile:
    return Profile.from_dict(sample_profile_dict(classification=classification))


def _embedded(obj: dict) -> list[dict]:
    """The JSON strings Kibana keeps inside attributes, parsed."""
    attrs = obj["attributes"]
    out = []
    meta = attrs.get("kibanaSavedObjectMeta", {})
    if "searchSourceJSON" in meta:
        out.append(json.loads(meta["searchSourceJSON"]))
    for key in ("visState", "panelsJSON", "optionsJSON", "uiStateJSON"):
        if key in attrs:
            out.append(json.loads(attrs[key]))
    return out


@pytest.mark.parametrize("classification", [True, False])
def test_every_reference_resolves(classification: bool) -> None:
    objects = saved_objects(_profile(classification))
    by_id = {(o["type"], o["id"]) for o in objects}
    assert len(by_id) == len(objects)  # ids unique
    for obj in objects:
        assert set(obj) >= {"id", "type", "attributes", "references", "migrationVersion"}
        names = {ref["name"] for ref in obj["references"]}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_id, ref
        for embedded in _embedded(obj):
            if isinstance(embedded, dict) and "indexRefName" in embedded:
                assert embedded["indexRefName"] in names
        if obj["type"] == "dashboard":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            assert len(panels) == len(obj["references"])
            for panel in panels:
                assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names
                assert panel["gridData"]["i"] == panel["panelIndex"]


def test_objects_the_issue_asks_for_are_there() -> None:
    objects = saved_objects(_profile())
    types = [o["type"] for o in objects]
    assert types[0] == "index-pattern" and types[-1] == "dashboard"
    view = objects[0]["attributes"]
    assert (view["title"], view["timeFieldName"]) == ("mlmon-predictions-churn", "@timestamp")
    vis = [json.loads(o["attributes"]["visState"]) for o in objects if o["type"] == "visualization"]
    segments = {agg["params"]["field"]: agg["type"] for v in vis for agg in v["aggs"][1:]}
    assert segments["features.city"] == "terms"       # categorical frequency
    assert segments["features.age"] == "range"        # numeric distribution
    assert segments["features.income"] == "range"
    assert segments["prediction.label"] == "terms"
    dashboard_refs = {r["type"] for r in objects[-1]["references"]}
    assert dashboard_refs == {"visualization", "search"}


def test_search_queries_are_lucene_and_match_their_titles() -> None:
    objects = [o for o in saved_objects(_profile()) if o["type"] == "search"]
    searches = red_flag_searches(_profile())
    assert len(objects) == len(searches)
    for obj, search in zip(objects, searches, strict=True):
        source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert source["query"] == {"query": search.query, "language": "lucene"}
        assert obj["attributes"]["title"] == search.title


def test_searches_per_feature_kind() -> None:
    keys = {s.key for s in red_flag_searches(_profile())}
    assert {"age.missing", "age.out_of_range", "age.invalid"} <= keys
    assert {"city.missing", "city.not_allowed", "city.unseen"} <= keys
    assert {"review.missing", "review.oov", "review.wrong_type"} <= keys
    assert {"prediction.nan_inf", "slow", "version", "flagged"} <= keys
    assert "age.unseen" not in keys and "city.out_of_range" not in keys


def test_slow_threshold_is_in_nanoseconds() -> None:
    slow = {s.key: s for s in red_flag_searches(_profile(), slow_ms=250)}["slow"]
    assert slow.query == "event.duration:>=250000000"


def test_lucene_escaping() -> None:
    assert escape_field("a b:c") == r"a\ b\:c"
    assert escape_field("plain_name") == "plain_name"
    assert quote('say "hi" \\') == r'"say \"hi\" \\"'
    data = sample_profile_dict()
    data["features"][2]["name"] = "home city"
    searches = {s.key: s for s in red_flag_searches(Profile.from_dict(data))}
    assert searches["home city.unseen"].query == r"flags.home\ city:unseen"


def test_range_agg_follows_the_reference_edges() -> None:
    agg = range_agg("features.age", _profile().features[0].binned)
    assert agg["params"]["ranges"] == [{"to": 25.0}, {"from": 25.0, "to": 35.0},
                                       {"from": 35.0, "to": 50.0}, {"from": 50.0}]


def test_ids_are_stable_and_per_model() -> None:
    first = to_ndjson(saved_objects(_profile()))
    assert first == to_ndjson(saved_objects(_profile()))
    data = sample_profile_dict(classification=True)
    data["model"]["name"] = "fraud"
    other = saved_objects(Profile.from_dict(data))
    ids = {o["id"] for o in saved_objects(_profile())}
    assert ids.isdisjoint({o["id"] for o in other})


def test_committed_objects_match_the_generator() -> None:
    profile = Profile.load(REPO / "kibana" / "example_profile.json")
    committed = (REPO / "kibana" / "saved_objects.ndjson").read_text(encoding="utf-8")
    assert committed == to_ndjson(saved_objects(profile)), "run 'make generate-kibana'"


def test_cli_writes_ndjson(tmp_path: Path) -> None:
    profile_path = tmp_path / "p.json"
    _profile().dump(profile_path)
    out = tmp_path / "objects.ndjson"
    assert main(["kibana-objects", "--profile", str(profile_path), "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(saved_objects(_profile()))
    assert all(re.match(r"^\{.*\}$", line) for line in lines)


def test_cli_import_without_url_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLMON_KIBANA_URL", raising=False)
    profile_path = tmp_path / "p.json"
    _profile().dump(profile_path)
    code = main(["kibana-objects", "--profile", str(profile_path), "-o", str(tmp_path / "o"),
                 "--import"])
    assert code == 2
    assert "--kibana-url" in capsys.readouterr().err


def test_import_to_nothing_listening_is_a_cli_error() -> None:
    import socket

    from mlmon.errors import CliError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CliError, match="cannot reach Kibana"):
        import_objects(f"http://127.0.0.1:{port}", "{}\n", timeout=2)


@pytest.mark.parametrize("where", ["a_directory", "missing_parent", "parent_is_a_file"])
def test_cli_unwritable_output_is_one_line_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    profile_path = tmp_path / "p.json"
    _profile().dump(profile_path)
    (tmp_path / "file").write_text("x")
    out = {"a_directory": tmp_path, "missing_parent": tmp_path / "missing" / "o.ndjson",
           "parent_is_a_file": tmp_path / "file" / "o.ndjson"}[where]
    assert main(["kibana-objects", "--profile", str(profile_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlmon kibana-objects: error: cannot write") and str(out) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "missing").exists()  # no silent mkdir -p
