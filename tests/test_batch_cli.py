"""`mlmon batch` errors that need no server: one line naming what the user typed, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlmon.cli import main
from tests.profiles import sample_profile_dict


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    return path


@pytest.mark.parametrize("extra, message", [
    (["--chunk-rows", "0"], "--chunk-rows: must be at least 1, got 0"),
    (["--id-column", "id"], "--id-column names the records' ids: it needs --es-url"),
    (["--pushgateway", "not a url"], "--pushgateway 'not a url': not a Pushgateway URL"),
])
def test_usage_errors_are_one_line(extra: list[str], message: str, profile: Path,
                                   tmp_path: Path, capsys: Any) -> None:
    args = ["batch", str(tmp_path / "scored.csv"), "--profile", str(profile),
            "--pushgateway", "http://127.0.0.1:9", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlmon batch: error: {message}") and err.count("\n") == 1, err


def test_a_missing_profile_is_one_line(tmp_path: Path, capsys: Any) -> None:
    assert main(["batch", "x.csv", "--profile", str(tmp_path / "nope.json"),
                 "--pushgateway", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlmon batch: error: ") and "nope.json" in err
    assert err.count("\n") == 1
