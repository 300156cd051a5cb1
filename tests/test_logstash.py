"""The Logstash pipeline, checked without Logstash (neither Debian nor Maven Central has it).

A small parser for the pipeline config language reads `logstash/pipeline/mlmon.conf` into a
tree, so the tests check its structure and the settings that carry mlmon's guarantees
(op_type create, _id = event.id, the data stream name), and that the JSON-lines sink writes
exactly the documents the direct path sends.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmon.exporter.profile import Profile
from mlmon.log_shipper.logging_sink import JsonLinesSink
from mlmon.log_shipper.record import RecordBuilder, index_name
from tests.profiles import sample_profile_dict

LOGSTASH = Path(__file__).resolve().parents[1] / "logstash"
CONF = LOGSTASH / "pipeline" / "mlmon.conf"

# Plugins in the default Logstash 8 distribution that this pipeline may use.
BUNDLED = {"input": {"tcp", "file"}, "filter": {"mutate"},
           "output": {"elasticsearch", "file"}, "codec": {"json", "json_lines"}}

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<arrow>=>)
  | (?P<op>==|!=|<=|>=|=~|!~|[{}\[\](),!<>])
  | (?P<word>[A-Za-z0-9_@.\-]+)
""", re.VERBOSE)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SyntaxError(f"unexpected {text[pos:pos + 20]!r} at {pos}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group()))
    return tokens


class Parser:
    """config := section*; section := NAME { body }; body := (plugin | if/else)*."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise SyntaxError(f"unexpected end, expected {expected}")
        value = self.tokens[self.i][1]
        if expected is not None and value != expected:
            raise SyntaxError(f"expected {expected!r}, got {value!r} (token {self.i})")
        self.i += 1
        return value

    def config(self) -> dict[str, list[dict[str, Any]]]:
        sections: dict[str, list[dict[str, Any]]] = {}
        while self.peek() is not None:
            name = self.take()
            self.take("{")
            sections.setdefault(name, []).extend(self.body())
            self.take("}")
        return sections

    def body(self) -> list[dict[str, Any]]:
        plugins: list[dict[str, Any]] = []
        while self.peek() not in ("}", None):
            if self.peek() == "if":
                plugins.extend(self.conditional())
            else:
                plugins.append(self.plugin())
        return plugins

    def conditional(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self.take("if")
        condition = self.condition()
        for plugin in self.block():
            out.append(dict(plugin, when=condition))
        while self.peek() == "else":
            self.take("else")
            if self.peek() == "if":
                self.take("if")
                condition = self.condition()
            else:
                condition = "else"
            for plugin in self.block():
                out.append(dict(plugin, when=condition))
        return out

    def condition(self) -> str:
        parts = []
        while self.peek() != "{":
            parts.append(self.take())
        return " ".join(parts)

    def block(self) -> list[dict[str, Any]]:
        self.take("{")
        plugins = self.body()
        self.take("}")
        return plugins

    def plugin(self) -> dict[str, Any]:
        name = self.take()
        self.take("{")
        settings: dict[str, Any] = {}
        while self.peek() != "}":
            key = _unquote(self.take())
            self.take("=>")
            settings[key] = self.value()
        self.take("}")
        return {"plugin": name, "settings": settings}

    def value(self) -> Any:
        token = self.peek()
        if token == "[":
            self.take("[")
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return items
        if token == "{":
            self.take("{")
            mapping = {}
            while self.peek() != "}":
                key = _unquote(self.take())
                self.take("=>")
                mapping[key] = self.value()
            self.take("}")
            return mapping
        return _unquote(self.take())


def _unquote(token: str) -> str:
    return token[1:-1] if token[:1] in "\"'" else token


@pytest.fixture(scope="module")
def pipeline() -> dict[str, list[dict[str, Any]]]:
    return Parser(CONF.read_text(encoding="utf-8")).config()


def _plugins(pipeline: dict, section: str, name: str) -> list[dict[str, Any]]:
    return [p for p in pipeline[section] if p["plugin"] == name]


def test_parser_rejects_broken_configs() -> None:
    with pytest.raises(SyntaxError):
        Parser("input { tcp { port => 5044 }").config()
    with pytest.raises(SyntaxError):
        Parser("output { elasticsearch { hosts => } }").config()


def test_only_bundled_plugins(pipeline: dict) -> None:
    assert set(pipeline) == {"input", "filter", "output"}
    for section, plugins in pipeline.items():
        for plugin in plugins:
            assert plugin["plugin"] in BUNDLED[section], plugin["plugin"]
            codec = plugin["settings"].get("codec")
            assert codec is None or codec in BUNDLED["codec"]


def test_inputs_take_json_lines_over_tcp_and_files(pipeline: dict) -> None:
    (tcp,) = _plugins(pipeline, "input", "tcp")
    assert tcp["settings"]["codec"] == "json_lines"
    assert re.fullmatch(r"\$\{MLMON_LOGSTASH_TCP_PORT:\d+\}", tcp["settings"]["port"])
    (file_input,) = _plugins(pipeline, "input", "file")
    assert file_input["settings"]["codec"] == "json"  # one document per line of the file
    assert "sincedb_path" in file_input["settings"]   # restarts do not re-read everything


def test_output_is_create_with_the_event_id_into_the_model_stream(pipeline: dict) -> None:
    (es,) = _plugins(pipeline, "output", "elasticsearch")
    settings = es["settings"]
    assert settings["action"] == "create"
    assert settings["document_id"] == "%{[event][id]}"
    assert settings["manage_template"] == "false" and settings["ilm_enabled"] == "false"
    assert es["when"] == "else"  # unparsable lines never reach Elasticsearch
    # The index name Logstash builds, for a lower-cased model name, is the direct path's.
    model = "churn"
    assert settings["index"].replace("%{[@metadata][model]}", model) == index_name(model)


def test_lowercases_the_model_like_the_direct_path(pipeline: dict) -> None:
    mutates = _plugins(pipeline, "filter", "mutate")
    assert any(m["settings"].get("lowercase") == ["[@metadata][model]"] for m in mutates)
    assert index_name("Churn") == "mlmon-predictions-churn"


def test_only_logstash_fields_are_removed(pipeline: dict) -> None:
    removed = set()
    for mutate in _plugins(pipeline, "filter", "mutate"):
        removed.update(mutate["settings"].get("remove_field", []))
    doc = _builder().build({"age": 30.0, "city": "paris"}, 0.3, latency_s=0.01,
                           flags={"age": ["out_of_range"]}, request_id="x")
    record_paths = set(doc) | {f"[{k}][{sub}]" for k, v in doc.items() if isinstance(v, dict)
                               for sub in v}
    assert removed, "the pipeline must drop @version and friends"
    assert removed.isdisjoint(record_paths), removed & record_paths


def test_settings_files_are_valid_yaml() -> None:
    settings = yaml.safe_load((LOGSTASH / "config" / "logstash.yml").read_text())
    assert settings["dead_letter_queue.enable"] is True
    (pipe,) = yaml.safe_load((LOGSTASH / "config" / "pipelines.yml").read_text())
    assert pipe["path.config"].endswith("/pipeline/mlmon.conf")


# ---- the JSON-lines sink writes what the direct path sends ---------------------------------

def _builder() -> RecordBuilder:
    profile = Profile.from_dict(sample_profile_dict(classification=True))
    return RecordBuilder(model="churn", model_version="3", service_name="api",
                         environment="test", profile=profile)


def _records() -> list[dict[str, Any]]:
    builder = _builder()
    return [
        builder.build({"age": 42.0, "income": 1200.5, "city": "paris", "review": "très bien"},
                      "yes", scores={"no": 0.3, "yes": 0.7}, latency_s=0.012, request_id="a",
                      timestamp=1_790_000_000.5),
        builder.build({"age": None, "city": "oslo", "colour": "red"}, "no", request_id="b",
                      flags={"age": ["missing"], "city": ["unseen", "not_allowed"]},
                      unknown_features=["colour"], timestamp=1_790_000_001.0),
    ]


def test_file_sink_lines_are_the_direct_documents(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    sink = JsonLinesSink.file(str(path))
    records = _records()
    for record in records:
        sink.emit(record)
    sink.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records


def test_tcp_sink_lines_are_the_direct_documents() -> None:
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    sink = JsonLinesSink.tcp("127.0.0.1", port)
    records = _records()
    for record in records:
        sink.emit(record)
    sink.close()
    thread.join(timeout=10)
    server.close()
    lines = b"".join(received).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records
