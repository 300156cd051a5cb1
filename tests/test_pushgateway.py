"""The Pushgateway client without a server: its URL checks, basic auth from the URL, and the
password never shown (the behaviour against a real Pushgateway: tests/integration)."""

from __future__ import annotations

import base64
import logging
import socket

import pytest

from mlmon.errors import CliError, printable_url
from mlmon.exporter.pushgateway import PushError, Pushgateway, check_reachable


def test_user_and_password_in_the_url_become_basic_auth_and_are_never_printed() -> None:
    gateway = Pushgateway("https://ops:p%40ss%3Aword@pgw.internal:9091/")
    assert gateway.url == "https://ops:***@pgw.internal:9091"
    assert gateway._base == "https://pgw.internal:9091"  # noqa: SLF001 - where requests go
    assert gateway._headers == {  # noqa: SLF001
        "Authorization": "Basic " + base64.b64encode(b"ops:p@ss:word").decode()}
    assert Pushgateway("ops@pgw:9091").url == "http://ops@pgw:9091"  # a user alone: no ***
    assert Pushgateway("pgw:9091")._headers == {}  # noqa: SLF001


@pytest.mark.parametrize(("url", "shown"), [
    ("http://u:secret@host:9091", "http://u:***@host:9091"),
    ("u:secret@host:9091", "u:***@host:9091"),
    ("http://u:se/cret@host:9091", "http://u:***@host:9091"),  # unencoded: does not parse
    ("http://host:9091", "http://host:9091"),
])
def test_printable_url_hides_the_password(url: str, shown: str) -> None:
    assert printable_url(url) == shown


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_errors_and_retry_log_lines_name_the_url_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(CliError) as raised:
        check_reachable("http://u:secret@[::1", timeout=1)
    assert "secret" not in str(raised.value) and "u:***@" in str(raised.value)
    gateway = Pushgateway(f"http://u:secret@127.0.0.1:{_closed_port()}", attempts=2,
                          sleep=lambda s: None)
    with caplog.at_level(logging.INFO, logger="mlmon.exporter.pushgateway"), \
            pytest.raises(PushError) as pushed:
        gateway.ready()
    assert str(pushed.value).startswith("cannot reach the Pushgateway http://u:***@127.0.0.1:")
    assert len(caplog.records) == 1 and "http://u:***@127.0.0.1:" in caplog.text
    assert "secret" not in caplog.text + str(pushed.value) + pushed.value.url


def test_the_readiness_check_blames_the_pushgateway_url_only_for_the_url() -> None:
    with pytest.raises(CliError, match=r"^--pushgateway 'http://\[::1': not a Pushgateway URL"):
        check_reachable("http://[::1", timeout=5)
    with pytest.raises(ValueError, match=r"^timeout_s must be > 0, got 0$"):  # the caller's bug
        check_reachable("http://127.0.0.1:9", timeout=0)


def test_the_pushgateway_environment_variable_is_named_in_one_module() -> None:
    from mlmon.exporter.pushgateway import PUSHGATEWAY_ENV
    from tests.test_layout import FOLDERS, REPO

    naming = sorted(str(path.relative_to(REPO)) for folder in [*FOLDERS, "stack"]
                    for path in (REPO / folder).rglob("*.py")
                    if PUSHGATEWAY_ENV in path.read_text(encoding="utf-8"))
    assert naming == ["exporter/pushgateway.py"]
