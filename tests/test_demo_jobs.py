"""`mlmon demo-jobs`'s argument checks (its rounds against a real Pushgateway:
tests/integration/test_demo_jobs.py)."""

from __future__ import annotations

import pytest

from mlmon.cli import main


def test_a_pushgateway_url_that_is_not_one_is_one_line_before_any_round(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-jobs", "--pushgateway", "http://u:secret@[::1", "--rounds", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("mlmon demo-jobs: error: --pushgateway 'http://u:***@[::1': not a "
                   "Pushgateway URL (expected http://host:port)\n"), err
