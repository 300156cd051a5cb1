"""A real single-node Elasticsearch 8.14 for tests: start, wait, stop, restart on the same data.

The node runs `stack/elasticsearch/elasticsearch.sh` (Elastic's own 8.14.1 distribution from
Maven Central, installed by `make install-elasticsearch`) on free 127.0.0.1 ports with a temp
base dir. No mock, no fake.

Use the fixtures from a test module::

    from tests.integration.es_server import es_url  # noqa: F401  (a pytest fixture)

    @pytest.mark.integration
    def test_round_trip(es_url: str) -> None:  # noqa: F811
        ...

- `es_server` (session): one shared node, however many modules import the fixture; `es_url`
  (session): its URL. Tests sharing it use their own index / data stream names, so they never
  see each other's documents. Do not stop it: use `es_restartable` for that.
- `es_restartable` (function): a node of the test's own, for outage tests:
  `es_restartable.stop()` then `es_restartable.start()` brings the SAME node back on the same
  port and data dir (`restart(down_s=30)` does both with a pause in between).

Known gaps of this distribution (it carries only the transport-netty4, x-pack-core,
x-pack-security and apm modules): `GET /` (client `info()`) answers 405, and the `_data_stream`,
`_ilm` REST APIs are absent. Indexing into data streams, composable templates, search,
aggregations and `query_string` are the real server's own code and work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "stack" / "elasticsearch" / "elasticsearch.sh"
DEFAULT_HOME = REPO / "stack" / "elasticsearch" / "dist" / "elasticsearch-8.14.1"


def es_home() -> Path:
    """Where the distribution is: $MLMON_ES_HOME or the one `make install-elasticsearch` made."""
    return Path(os.environ.get("MLMON_ES_HOME", DEFAULT_HOME))


def is_installed() -> bool:
    return (es_home() / "bin" / "elasticsearch").is_file()


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; a race is unlikely, not impossible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ElasticsearchError(RuntimeError):
    """The node did not start or stop; the message carries the end of its output."""


class ElasticsearchServer:
    """One single-node Elasticsearch on 127.0.0.1 with its data under `base_dir`.

    >>> server = ElasticsearchServer(Path(tempfile.mkdtemp()))  # doctest: +SKIP
    >>> server.start(); server.url                               # doctest: +SKIP
    'http://127.0.0.1:40123'
    >>> server.stop(); server.start()  # same port, same data     # doctest: +SKIP
    >>> server.close()                 # stop and delete base_dir # doctest: +SKIP
    """

    def __init__(self, base_dir: Path, http_port: int | None = None,
                 transport_port: int | None = None, heap: str = "512m",
                 settings: dict[str, str] | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.settings = dict(settings or {})  # extra elasticsearch.yml settings
        self.http_port = http_port or free_port()
        self.transport_port = transport_port or free_port()
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def output_file(self) -> Path:
        return self.base_dir / "output.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 180.0) -> None:
        """Launch the node and return once the cluster is yellow or green."""
        if self.is_running():
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # /tmp/pytest-of-root is 0700: as root the node runs as nobody, so its dir must be
        # reachable by nobody; tempfile.mkdtemp under /tmp is.
        env = dict(os.environ, MLMON_ES_HOME=str(es_home()), MLMON_ES_HEAP=self.heap,
                   MLMON_ES_SETTINGS="\n".join(f"{k}: {v}" for k, v in self.settings.items()))
        with open(self.output_file, "ab") as out:
            self._process = subprocess.Popen(
                [str(LAUNCHER), str(self.base_dir), str(self.http_port), str(self.transport_port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # a Ctrl-C in pytest must not reach the node first
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ElasticsearchError(
                    f"Elasticsearch exited with {self._process.returncode}: {self._tail()}")
            if self._health_ok():
                return
            time.sleep(0.25)
        self.stop()
        raise ElasticsearchError(f"Elasticsearch not ready after {timeout:.0f} s: {self._tail()}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a clean shutdown that flushes), SIGKILL after `timeout`; ports are freed."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # The launcher's JVM forwards SIGTERM to the server JVM it started; signal the whole
        # session so nothing outlives us even if the launcher dies first.
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
        _wait_port_closed(self.http_port, timeout=10)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down for `down_s` seconds, start again on the same port and data."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        """Stop and delete the base dir."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ElasticsearchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _health_ok(self) -> bool:
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return json.load(response).get("status") in ("yellow", "green")
        except (OSError, ValueError):  # refused, reset, 408 on timeout, half-written JSON
            return False

    def _tail(self, lines: int = 15) -> str:
        try:
            text = self.output_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(text[-lines:]) or "(no output)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _wait_port_closed(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)


def new_server(prefix: str = "mlmon-es-",
               settings: dict[str, str] | None = None) -> ElasticsearchServer:
    """A server in a fresh temp dir; call `missing_server` first when it is not installed."""
    return ElasticsearchServer(Path(tempfile.mkdtemp(prefix=prefix)), settings=settings)


def _require_installed() -> None:
    if not is_installed():
        from tests.conftest import missing_server

        missing_server(f"Elasticsearch 8.14 (looked in {es_home()})")


@contextlib.contextmanager
def running_server(settings: dict[str, str] | None = None) -> Iterator[ElasticsearchServer]:
    """A started node in a fresh temp dir, stopped and deleted afterwards (skip when missing).

    `settings`: extra elasticsearch.yml settings, e.g. `{"http.max_content_length": "1mb"}`."""
    _require_installed()
    server = new_server(settings=settings)
    try:
        server.start()
        yield server
    finally:
        server.close()


class _Shared:
    """The session's one shared node, reference-counted.

    Test modules import the fixture, and pytest makes a separate session fixture for each
    module that does; without this, each of them would start its own node.
    """

    server: ElasticsearchServer | None = None
    users = 0


@pytest.fixture(scope="session")
def es_server() -> Iterator[ElasticsearchServer]:
    """One node shared by the whole session (starting one takes seconds)."""
    _require_installed()
    if _Shared.server is None or not _Shared.server.is_running():
        server = new_server()
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        _Shared.server = server
    _Shared.users += 1
    try:
        yield _Shared.server
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            _Shared.server.close()
            _Shared.server = None


@pytest.fixture(scope="session")
def es_url(es_server: ElasticsearchServer) -> str:
    return es_server.url


@pytest.fixture
def es_restartable() -> Iterator[ElasticsearchServer]:
    """A node of this test's own, which the test may stop and start again."""
    with running_server() as server:
        yield server
