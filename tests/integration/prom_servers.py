"""Real Prometheus and Alertmanager for tests, loading the repo's own config and rule files.

Only addresses, intervals and `for:` durations are substituted; the rules themselves are the
committed ones. Reusable by any test (dashboards, stack checks):

    from tests.integration import prom_servers
    prometheus_factory = prom_servers.prometheus_factory   # pytest finds fixtures by name
    alertmanager_factory = prom_servers.alertmanager_factory
    notification_sink = prom_servers.notification_sink

    def test_x(prometheus_factory, alertmanager_factory, notification_sink):
        am = alertmanager_factory(webhook_url=notification_sink.url + "/alerts")
        prom = prometheus_factory(targets={"mlmon": ["127.0.0.1:8001"]}, alertmanager=am)
        prom.wait_for('up{job="mlmon"} == 1', timeout=15)

Also a replica process for exporter tests:
`python -m tests.integration.prom_servers --profile P --rows ROWS.jsonl --port N` observes every
row (JSON lines: {"features": {...}, "prediction": ..., "scores": ..., "latency_s": ..., "ok": ...,
and optionally "outcome": {"actual": ..., "predicted_at": unix seconds}, the row's label counted
by `observe_outcome`) through `exporter.ModelMonitor`, then serves /metrics until terminated.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from mlmon.alerting.sink import Sink

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = REPO / "prometheus" / "prometheus.yml"
RULE_FILES = (REPO / "prometheus" / "recording_rules.yml", REPO / "alerting" / "alert_rules.yml")
ALERTMANAGER_YML = REPO / "alerting" / "alertmanager.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        return response.read()


def wait_http(url: str, timeout: float = 15.0,
              process: subprocess.Popen[bytes] | None = None,
              headers: dict[str, str] | None = None) -> None:
    """Poll `url` (sending `headers`) until it answers; give up early when `process` exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _get(url, timeout=1.0, headers=headers)
            return
        except OSError:
            if time.monotonic() > deadline or (process is not None and process.poll() is not None):
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


def wait_until(check: Callable[[], Any], timeout_s: float, what: str,
               interval_s: float = 0.5) -> Any:
    """Poll `check()` until it returns something truthy (returned); fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class Server:
    """A server process with its log file; `stop()` terminates it (and is idempotent)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


ServerT = TypeVar("ServerT", bound=Server)


class Prometheus(Server):
    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of `expr` now (raises on a query error)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        body = json.loads(_get(url))
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def query_range(self, expr: str, start: float, end: float,
                    step: float = 1.0) -> list[dict[str, Any]]:
        """Range query result (a matrix) of `expr` from `start` to `end` (Unix seconds)."""
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end,
                                         "step": step})
        body = json.loads(_get(f"{self.url}/api/v1/query_range?{params}", timeout=30.0))
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def values(self, expr: str, key: str) -> dict[str, float]:
        """`{label key value: sample value}` of an instant query."""
        return {r["metric"].get(key, ""): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool] = bool,
                 timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `expr` until `predicate(result)` holds; returns the result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} not satisfied within {timeout}s: {result}")
            time.sleep(0.5)

    def settled(self, expr: str, key: str, expected: dict[str, float], tolerance: float = 1e-9,
                timeout: float = 150.0) -> dict[str, float]:
        """The values of `expr` by label `key` once they equal `expected` within `tolerance`.

        A recording rule that reads another group's output runs at its own offset, so it can
        still hold the value from before its inputs were complete for up to one evaluation
        interval after they are. Asserting on the first answer raced that; this asserts on the
        value the rules settle on, and fails with the last answer when they never do."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.values(expr, key)
            if got.keys() == expected.keys() and all(
                    abs(got[k] - v) <= tolerance for k, v in expected.items()):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr!r} by {key}: {got}, expected {expected} "
                                     f"(within {tolerance}) for {timeout}s")
            time.sleep(0.5)


def generated_rules(dest: Path, change: Callable[[dict[str, Any]], None],
                    scrape_interval: str = "1s") -> list[Path]:
    """The recording and alert rules as `make generate-rules` writes them from
    alerting/config.yaml after `change(config_data)` (e.g. shorter windows), for a Prometheus
    scraping every `scrape_interval` (the generator checks restart_grace against it)."""
    from mlmon.alerting import config as rules_config
    from mlmon.alerting import generate

    data = yaml.safe_load(rules_config.CONFIG_PATH.read_text(encoding="utf-8"))
    change(data)
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    prometheus["global"]["scrape_interval"] = scrape_interval
    texts = generate.outputs(rules_config.parse(data), yaml.safe_dump(prometheus))
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for source in (generate.RECORDING_PATH, generate.ALERTS_PATH):
        path = dest / source.name
        path.write_text(texts[source], encoding="utf-8")
        out.append(path)
    return out


def substituted_rules(dest: Path, for_override: str | None,
                      sources: Sequence[Path] = RULE_FILES) -> list[Path]:
    """Copies of the rule files (the repo's by default); every `for:` replaced by
    `for_override` when given. A group's own `interval:` (the outcome groups run every
    outcome_evaluation_interval, minutes) is dropped, so every group runs at the test's
    evaluation interval: the tests judge values, not the production cadence."""
    out = []
    for path in sources:
        text = re.sub(r"(?m)^    interval: .*\n", "", path.read_text(encoding="utf-8"))
        if for_override is not None:
            text = re.sub(r"(?m)^(\s+for: ).*$", rf"\g<1>{for_override}", text)
        copy = dest / path.name
        copy.write_text(text, encoding="utf-8")
        out.append(copy)
    return out


def prometheus_config(targets: dict[str, list[str]], rule_files: list[Path],
                      alertmanager: str | None, interval: str, self_address: str) -> str:
    """The repo's prometheus.yml with addresses, intervals and rule paths substituted."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager:
        config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    else:
        config.pop("alerting")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["prometheus"]["static_configs"] = [{"targets": [self_address]}]
    given = {**targets, **({"alertmanager": [alertmanager]} if alertmanager else {})}
    # A job the test gave no address for is dropped: its stack hostname (pushgateway:9091,
    # node-exporter:9100) does not resolve here, and a target that is always down is noise in
    # every `up` the test reads.
    for name in [n for n in jobs if n != "prometheus" and n not in given]:
        config["scrape_configs"].remove(jobs.pop(name))
    if alertmanager:
        jobs["alertmanager"]["static_configs"] = [{"targets": [alertmanager]}]
    for name, addresses in targets.items():
        if name not in jobs:
            jobs[name] = {"job_name": name}
            config["scrape_configs"].append(jobs[name])
        jobs[name]["static_configs"] = [{"targets": list(addresses)}]
        if name == "pushgateway":  # pushed job/instance labels win, as in the stack's config
            jobs[name]["honor_labels"] = True
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_config(webhook_url: str) -> str:
    """The repo's alertmanager.yml with the webhook URL and route timings substituted."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    for route in (config["route"], *config["route"].get("routes", [])):
        route["group_wait"] = "0s"
        if "group_interval" in route:
            route["group_interval"] = "1s"
    return yaml.safe_dump(config, sort_keys=False)


def _start(cmd: list[str], workdir: Path, name: str, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{name}.log"
    with open(log, "wb") as fh:
        process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd or workdir,
                                   env=env)
    return process, log


def _binary(name: str) -> str:
    """The server binary's path; a missing one fails in CI and skips elsewhere."""
    binary = shutil.which(name)
    if binary is None:
        from tests.conftest import missing_server

        missing_server(name)
    return str(binary)


def _launch(kind: type[ServerT], cmd: list[str], workdir: Path, name: str,
            address: str, headers: dict[str, str] | None = None) -> ServerT:
    """Start `cmd`, wait until `/-/ready` answers on `address` (asked with `headers`), or stop
    it and say why."""
    process, log = _start(cmd, workdir, name)
    server = kind(process, f"http://{address}", log)
    try:
        wait_http(f"{server.url}/-/ready", process=process, headers=headers)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}") from None
    return server


def start_alertmanager(workdir: Path, webhook_url: str) -> Server:
    binary = _binary("prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(alertmanager_config(webhook_url), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    return _launch(Server, [
        binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
        f"--web.listen-address={address}", "--cluster.listen-address="], workdir, "alertmanager",
        address)


def start_prometheus(workdir: Path, targets: dict[str, list[str]],
                     alertmanager: Server | None = None, interval: str = "1s",
                     for_override: str | None = "0s",
                     rule_files: Sequence[Path] = RULE_FILES) -> Prometheus:
    """`rule_files`: the committed ones, or e.g. rules generated with shorter windows."""
    binary = _binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    rules = substituted_rules(workdir, for_override, rule_files)
    am_address = alertmanager.url.removeprefix("http://") if alertmanager else None
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, rules, am_address, interval, address),
                      encoding="utf-8")
    return _launch(Prometheus, [
        binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={address}", "--web.enable-lifecycle"], workdir, "prometheus",
        address)


def start_pushgateway(workdir: Path, basic_auth: tuple[str, str, str] | None = None) -> Server:
    """A Pushgateway persisting into `workdir` (its default path is the system's); Prometheus
    scrapes it with `honor_labels: true` (the pushed job/instance labels win), as the stack does.
    `basic_auth`: (user, password, the password's bcrypt hash): every request must carry them
    (its --web.config.file's basic_auth_users)."""
    binary = _binary("prometheus-pushgateway")
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    cmd = [binary, f"--web.listen-address={address}",
           f"--persistence.file={workdir / 'pushgateway.data'}"]
    headers = None
    if basic_auth is not None:
        user, password, bcrypt_hash = basic_auth
        web_config = workdir / "web.yml"
        web_config.write_text(yaml.safe_dump({"basic_auth_users": {user: bcrypt_hash}}),
                              encoding="utf-8")
        cmd.append(f"--web.config.file={web_config}")
        headers = {"Authorization": basic_authorization(user, password)}
    return _launch(Server, cmd, workdir, "pushgateway", address, headers)


def basic_authorization(user: str, password: str) -> str:
    """The Authorization header's value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _servers(tmp_path: Path, name: str,
             start: Callable[..., ServerT]) -> Iterator[Callable[..., ServerT]]:
    """A fixture body: `make(...)` starts a server in its own dir; all stop at teardown."""
    started: list[ServerT] = []

    def make(*args: Any, **kwargs: Any) -> ServerT:
        server = start(tmp_path / f"{name}{len(started)}", *args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """`make(targets={job: [host:port]}, alertmanager=None, interval="1s", for_override="0s",
    rule_files=RULE_FILES)`."""
    yield from _servers(tmp_path, "prometheus", start_prometheus)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`make(webhook_url=...)`: Alertmanager with the repo's routes, group_wait 0s."""
    yield from _servers(tmp_path, "alertmanager", start_alertmanager)


@pytest.fixture
def pushgateway_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`make(basic_auth=None)`: a Pushgateway on a free loopback port, persisting under
    tmp_path; with basic_auth=(user, password, bcrypt hash), only for requests that carry them."""
    yield from _servers(tmp_path, "pushgateway", start_pushgateway)


@pytest.fixture
def notification_sink(tmp_path: Path) -> Iterator[Sink]:
    """The webhook sink on a free port, in this process; `.notifications()` lists payloads."""
    sink = Sink("127.0.0.1", 0, out=str(tmp_path / "notifications.jsonl"),
                stream=open(tmp_path / "sink.log", "w", encoding="utf-8"))  # noqa: SIM115
    sink.start()
    yield sink
    sink.stop()


# ---- a replica process -------------------------------------------------------------------


def start_replica(workdir: Path, profile: Path, rows: list[dict[str, Any]], name: str,
                  go_file: Path | None = None) -> Server:
    """A process observing `rows` through ModelMonitor and serving /metrics.

    With `go_file`, only the first half is observed before serving, and the second half once
    that file exists (so rates over the window are non-zero once Prometheus has scraped).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rows_path = workdir / f"{name}.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    port = free_port()
    return start_python_server(["-m", "tests.integration.prom_servers",
                                "--profile", str(profile), "--rows", str(rows_path),
                                "--port", str(port),
                                *(["--go", str(go_file)] if go_file else [])],
                               workdir, name, port)


def start_python_server(args: list[str], workdir: Path, name: str, port: int,
                        env: dict[str, str] | None = None, timeout: float = 30) -> Server:
    """`python ARGS` from the repo root (log: `workdir/NAME.log`), serving /metrics on
    127.0.0.1:`port`; returns once /metrics answers, or stops it and raises with its log's end."""
    process, log = _start([sys.executable, *args], workdir, name, cwd=REPO, env=env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_http(f"{server.url}/metrics", timeout=timeout, process=process)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}") from None
    return server


def _replica_main(argv: list[str] | None = None) -> int:
    from prometheus_client import CollectorRegistry

    from mlmon.exporter import ModelMonitor
    from mlmon.exporter.server import start_http_server

    parser = argparse.ArgumentParser(description="observe rows, then serve /metrics")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--go", help="observe the second half of the rows once this file exists")
    args = parser.parse_args(argv)
    registry = CollectorRegistry()
    monitor = ModelMonitor.from_profile(args.profile, registry=registry, multiproc_directory=None)
    with open(args.rows, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    half = len(rows) // 2 if args.go else len(rows)

    def observe(part: list[dict[str, Any]]) -> None:
        for row in part:
            monitor.observe(row["features"], row.get("prediction"), scores=row.get("scores"))
            monitor.record_request(row.get("latency_s"), ok=row.get("ok", True))
            outcome = row.get("outcome")
            if outcome is not None:
                monitor.observe_outcome(row.get("prediction"), outcome["actual"],
                                        predicted_at=outcome.get("predicted_at"))

    observe(rows[:half])
    start_http_server(args.port, registry=registry)
    if args.go:
        while not Path(args.go).exists():
            time.sleep(0.1)
        observe(rows[half:])
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(_replica_main())
