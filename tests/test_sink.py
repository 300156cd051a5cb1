"""The notification sink: records webhook payloads, prints one line per alert, `mlmon sink`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlmon.alerting.sink import Sink, alert_line

# The installed entry point's code path (`python -m mlmon.cli` would make a second CliError).
MLMON = [sys.executable, "-c", "import sys; from mlmon.cli import main; sys.exit(main())"]

PAYLOAD = {
    "version": "4", "status": "firing", "receiver": "warning",
    "groupLabels": {"alertname": "MlmonFeatureDrift", "model": "churn"},
    "alerts": [
        {"status": "firing", "labels": {"alertname": "MlmonFeatureDrift", "model": "churn",
                                        "model_version": "3", "feature": "age",
                                        "severity": "warning"},
         "annotations": {"summary": "A feature drifted."}},
        {"status": "resolved", "labels": {"alertname": "MlmonFeatureDrift", "model": "churn",
                                          "model_version": "3", "feature": "city",
                                          "severity": "warning"},
         "annotations": {"summary": "A feature drifted."}},
    ],
}


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def sink(tmp_path: Path):
    out = io.StringIO()
    s = Sink("127.0.0.1", 0, out=str(tmp_path / "n.jsonl"), stream=out).start()
    s.printed = out  # type: ignore[attr-defined]
    yield s
    s.stop()


def test_records_prints_and_appends(sink: Sink, tmp_path: Path) -> None:
    assert _post(sink.url + "/alerts", json.dumps(PAYLOAD).encode()) == 200
    assert sink.notifications() == [PAYLOAD]
    lines = sink.printed.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines == [
        "[FIRING] MlmonFeatureDrift feature=age model=churn model_version=3 severity=warning"
        " | A feature drifted.",
        "[RESOLVED] MlmonFeatureDrift feature=city model=churn model_version=3 severity=warning"
        " | A feature drifted."]
    stored = (tmp_path / "n.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in stored] == [PAYLOAD]
    with urllib.request.urlopen(sink.url + "/notifications", timeout=5) as response:
        assert json.loads(response.read()) == [PAYLOAD]


def test_rejects_what_is_not_a_json_object(sink: Sink) -> None:
    assert _post(sink.url + "/alerts", b"not json") == 400
    assert _post(sink.url + "/alerts", b"[1, 2]") == 400
    assert sink.notifications() == [] and sink.rejected == 2


def test_alert_line_without_labels() -> None:
    assert alert_line({"status": "firing"}, {}) == "[FIRING] ?"


def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "n.jsonl"
    proc = subprocess.Popen([*MLMON, "sink", "--port", str(port),
                             "--out", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.read() == b"ok\n"
                break
            except OSError:
                assert time.monotonic() < deadline, "mlmon sink did not start"
                time.sleep(0.1)
        assert _post(f"http://127.0.0.1:{port}/alerts", json.dumps(PAYLOAD).encode()) == 200
    finally:
        proc.terminate()
        stdout, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "[FIRING] MlmonFeatureDrift feature=age" in stdout
    assert json.loads(out.read_text()) == PAYLOAD


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:  # a port already taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*MLMON, "sink", "--port",
                                 str(port), "--out", str(tmp_path / "x")],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mlmon sink: error: cannot listen on 127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_out_of_range_is_one_line() -> None:
    result = subprocess.run([*MLMON, "sink", "--port", "99999"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("mlmon sink: error: cannot listen on 127.0.0.1:99999: ")
    assert len(result.stderr.strip().splitlines()) == 1
