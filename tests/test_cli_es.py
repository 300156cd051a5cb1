"""The Elasticsearch client the CLIs build (log_shipper/cli_es.py `connect`): a URL that is not
one is one line naming it, with its password hidden, in every command that takes --es-url."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlmon.cli import main
from tests.profiles import sample_profile_dict


@pytest.mark.parametrize("command", ["es-setup", "outcomes"])
def test_a_malformed_es_url_is_one_line_naming_it(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,y\nr1,1\n", encoding="utf-8")
    args = {"es-setup": ["es-setup", "--profile", str(profile)],
            "outcomes": ["outcomes", str(labels), "--id-column", "request_id",
                         "--label-column", "y", "--profile", str(profile),
                         "--pushgateway", "http://127.0.0.1:9"]}[command]
    for url, shown in (("htp:/x", "htp:/x"), ("http://u:secret@[::1", "http://u:***@[::1")):
        assert main([*args, "--es-url", url]) == 2
        err = capsys.readouterr().err
        assert err == (f"mlmon {command}: error: --es-url {shown!r}: not an Elasticsearch "
                       "URL (expected http(s)://host:port)\n"), err
