"""Commands from docker-compose.yml run here, outside Docker: the es-users script's requests and
the traffic healthcheck, so their quoting and logic are tested, not only their YAML."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmon.demo.traffic import with_heartbeat
from tests.test_compose import _compose

REPO = Path(__file__).resolve().parent.parent
PASSWORDS = {"ELASTIC_PASSWORD": "elastic-pw", "KIBANA_PASSWORD": "kibana-pw",
             "GRAFANA_ES_PASSWORD": "grafana-pw"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


class _Recorder(ThreadingHTTPServer):
    requests: list[dict[str, Any]]


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    """An HTTP server on loopback that records each request (method, path, user, JSON body)."""
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
            requests.append({"method": self.command, "path": self.path, "auth": auth,
                             "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        do_PUT = do_POST = _record  # noqa: N815 (http.server's naming)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = _Recorder(("127.0.0.1", 0), Handler)
    server.requests = requests
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_es_users_creates_a_read_only_user_grafana_logs_in_with(
        services: dict[str, Any], recorder: _Recorder) -> None:
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("curl and bash are needed to run the es-users script")
    command = services["es-users"]["command"]
    assert command[:2] == ["bash", "-c"]
    # compose prints a literal $ as $$; the script talks to this recorder instead.
    script = command[2].replace("$$", "$").replace(
        "http://elasticsearch:9200", f"http://127.0.0.1:{recorder.server_address[1]}")
    done = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], **PASSWORDS},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = {(r["method"], r["path"]): r for r in recorder.requests}
    assert all(r["auth"] == "elastic:elastic-pw" for r in recorder.requests)
    assert calls[("POST", "/_security/user/kibana_system/_password")]["body"] == {
        "password": "kibana-pw"}
    user = calls[("PUT", "/_security/user/mlmon_grafana")]["body"]
    assert user["password"] == "grafana-pw"
    role = calls[("PUT", f"/_security/role/{user['roles'][0]}")]["body"]
    assert role["cluster"] == ["monitor"]  # Grafana reads the server version
    (indices,) = role["indices"]
    assert set(indices["privileges"]) == {"read", "view_index_metadata"}  # nothing that writes

    datasources = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/mlmon.yml").read_text())["datasources"]
    (es,) = [d for d in datasources if d["type"] == "elasticsearch"]
    assert es["basicAuthUser"] == "mlmon_grafana"
    assert es["jsonData"]["index"] in indices["names"]
    password_variable = es["secureJsonData"]["basicAuthPassword"].lstrip("$")
    grafana = services["grafana"]
    assert password_variable in grafana["environment"]
    assert "ELASTIC_PASSWORD" not in grafana["environment"]  # no superuser secret in Grafana
    assert grafana["depends_on"]["es-users"]["condition"] == "service_completed_successfully"


def _healthcheck(services: dict[str, Any], heartbeat: Path) -> int:
    test = services["traffic"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    command = [sys.executable, *[part.replace("/tmp/mlmon-traffic.heartbeat", str(heartbeat))
                                 for part in test[2:]]]
    return subprocess.run(command, capture_output=True, timeout=30).returncode


def test_traffic_healthcheck_follows_the_heartbeat_of_successful_requests(
        services: dict[str, Any], tmp_path: Path) -> None:
    command = services["traffic"]["command"]
    heartbeat = tmp_path / "heartbeat"
    assert command[command.index("--heartbeat") + 1] == "/tmp/mlmon-traffic.heartbeat"
    assert _healthcheck(services, heartbeat) != 0  # no request yet

    answers = iter([False, True, True])
    # A clock that stands still: after the first beat, no other within its second.
    send = with_heartbeat(lambda _record: next(answers), heartbeat, clock=lambda: 100.0)
    assert send({}) is False and not heartbeat.exists()  # a failed request is no heartbeat
    assert send({}) is True and heartbeat.exists()
    assert _healthcheck(services, heartbeat) == 0

    stale = time.time() - 31
    os.utime(heartbeat, (stale, stale))
    assert send({}) is True  # same second as the last beat: the file is not touched
    assert _healthcheck(services, heartbeat) != 0


def test_heartbeat_is_rate_limited_and_never_raises(tmp_path: Path) -> None:
    now = [0.0]
    touched = tmp_path / "dir" / "beat"  # the directory does not exist: touch fails
    send = with_heartbeat(lambda _record: True, touched, every_s=1.0, clock=lambda: now[0])
    assert send({}) is True and not touched.exists()
    (tmp_path / "dir").mkdir()
    now[0] = 0.5
    send({})  # the failed touch did not count as a beat, so this one writes
    assert touched.exists()
    stamp = touched.stat().st_mtime_ns
    os.utime(touched, ns=(stamp - 10**9, stamp - 10**9))
    now[0] = 1.0
    send({})
    assert touched.stat().st_mtime_ns == stamp - 10**9  # 0.5 s after the last beat: skipped
    now[0] = 1.6
    send({})
    assert touched.stat().st_mtime_ns > stamp - 10**9
