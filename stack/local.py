"""The docker-compose stack as local processes: `make stack` / `make stack-down`, and the e2e test.

    python stack/local.py up   [--run-dir .run/stack] [--es-url URL] [--port-base 19000] ...
    python stack/local.py down [--run-dir .run/stack]

Reads the same configuration files as docker-compose.yml (prometheus/prometheus.yml, the rule
files, alerting/alertmanager.yml) and rewrites only the addresses: every `service:port` that
names a compose service becomes `127.0.0.1:<local port>`. Prometheus and Alertmanager are the
Debian packages; Elasticsearch is expected to run already (`make es-start`, the Maven runner);
the demo service, the traffic generator and the notification sink are `mlmon` subcommands.

For a fast end-to-end run, `--rules-config` generates the rule files from another copy of
alerting/config.yaml (e.g. shorter `for:`), `--scrape-interval` / `--evaluation-interval` /
`--group-wait` shorten Prometheus' and Alertmanager's timing, and `--healthy-s` / `--drift-s`
set the traffic schedule. Every process is started in its own session with its pid in the run
directory; `down` stops exactly those pids.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alerting" / "alertmanager.yml"

# compose service -> the port it listens on inside the stack (docker-compose.yml).
SERVICE_PORTS = {"demo": 8000, "sink": 9095, "prometheus": 9090, "alertmanager": 9093,
                 "elasticsearch": 9200}
# The order processes start in (each waits for the one before to be ready).
ORDER = ("sink", "alertmanager", "prometheus", "demo", "traffic")


@dataclass
class Settings:
    """Where and how the local stack runs; defaults match `make stack`."""

    run_dir: Path = REPO / ".run" / "stack"
    ports: dict[str, int] = field(default_factory=lambda: dict(SERVICE_PORTS))
    es_url: str | None = None
    rules_config: Path | None = None
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    healthy_s: float = 180.0
    drift_s: float = 3600.0
    rate: float = 10.0
    python: str = sys.executable

    def __post_init__(self) -> None:
        # Prometheus resolves rule files against its config file's directory: keep every
        # path absolute so a relative --run-dir cannot make it silently load no rules.
        self.run_dir = Path(self.run_dir).resolve()

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def url(self, service: str) -> str:
        return f"http://{self.address(service)}"


# ---- configuration rewriting (pure) ----------------------------------------------------------

def rewrite_address(address: str, ports: Mapping[str, int]) -> str:
    """`demo:8000` -> `127.0.0.1:<ports['demo']>`; anything else unchanged.

    `localhost:9090` is Prometheus scraping itself, so it follows Prometheus' port.
    """
    host, sep, port = address.partition(":")
    if sep and host in ports:
        return f"127.0.0.1:{ports[host]}"
    if host == "localhost" and port == str(SERVICE_PORTS["prometheus"]):
        return f"127.0.0.1:{ports['prometheus']}"
    return address


def rewrite_url(url: str, ports: Mapping[str, int]) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{rewrite_address(netloc, ports)}{slash}{path}"


def prometheus_config(config: dict[str, Any], ports: Mapping[str, int], rule_files: list[str],
                      scrape_interval: str | None = None,
                      evaluation_interval: str | None = None) -> dict[str, Any]:
    """prometheus.yml with targets on loopback, absolute rule files, optional faster timing."""
    out = json.loads(json.dumps(config))  # a deep copy of plain YAML data
    out["rule_files"] = rule_files
    glob = out.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        glob.pop("scrape_timeout", None)
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    for job in out.get("scrape_configs", []):
        if scrape_interval:
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
        for static in job.get("static_configs", []):
            static["targets"] = [rewrite_address(t, ports) for t in static["targets"]]
    for am in out.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            static["targets"] = [rewrite_address(t, ports) for t in static["targets"]]
    return out


def alertmanager_config(config: dict[str, Any], ports: Mapping[str, int],
                        group_wait: str | None = None,
                        group_interval: str | None = None) -> dict[str, Any]:
    """alertmanager.yml with webhook URLs on loopback and optional faster grouping."""
    out = json.loads(json.dumps(config))
    for receiver in out.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = rewrite_url(hook["url"], ports)

    def retime(route: dict[str, Any]) -> None:
        if group_wait and "group_wait" in route:
            route["group_wait"] = group_wait
        if group_interval and "group_interval" in route:
            route["group_interval"] = group_interval
        for child in route.get("routes", []):
            retime(child)

    route = out.get("route", {})
    if group_wait:
        route["group_wait"] = group_wait
    if group_interval:
        route["group_interval"] = group_interval
    retime(route)
    return out


def rule_files(settings: Settings, config: dict[str, Any]) -> list[str]:
    """Absolute rule file paths: the committed ones, or generated from `--rules-config`."""
    if settings.rules_config is None:
        base = PROMETHEUS_CONFIG.parent
        return [str((base / f).resolve()) for f in config.get("rule_files", [])]
    from alerting import config as rules_config
    from alerting.generate import outputs

    out_dir = settings.run_dir / "rules"
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = {path.name: text
                 for path, text in outputs(rules_config.load(settings.rules_config)).items()}
    paths = []
    for rule_file in config.get("rule_files", []):  # the same files, regenerated
        target = out_dir / Path(rule_file).name
        target.write_text(generated[target.name])
        paths.append(str(target))
    return paths


# ---- processes -------------------------------------------------------------------------------

def commands(settings: Settings) -> dict[str, list[str]]:
    """The command line of every process, after writing the rewritten configs."""
    run = settings.run_dir
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    local_prometheus = prometheus_config(prometheus, settings.ports,
                                         rule_files(settings, prometheus),
                                         settings.scrape_interval, settings.evaluation_interval)
    (run / "prometheus.yml").write_text(yaml.safe_dump(local_prometheus, sort_keys=False))
    alertmanager = alertmanager_config(yaml.safe_load(ALERTMANAGER_CONFIG.read_text()),
                                       settings.ports, settings.group_wait,
                                       settings.group_interval)
    (run / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager, sort_keys=False))
    mlmon = [settings.python, "-m", "exporter.cli"]
    demo = [*mlmon, "demo", "--port", str(settings.ports["demo"])]
    if settings.es_url:
        demo += ["--es-url", settings.es_url, "--spool-dir", str(run / "spool")]
    return {
        "sink": [*mlmon, "sink", "--port", str(settings.ports["sink"]),
                 "--out", str(run / "notifications.jsonl")],
        "alertmanager": ["prometheus-alertmanager", f"--config.file={run / 'alertmanager.yml'}",
                         f"--storage.path={run / 'alertmanager-data'}",
                         f"--web.listen-address={settings.address('alertmanager')}",
                         "--cluster.listen-address="],
        "prometheus": ["prometheus", f"--config.file={run / 'prometheus.yml'}",
                       f"--storage.tsdb.path={run / 'prometheus-data'}",
                       f"--web.listen-address={settings.address('prometheus')}",
                       "--web.enable-lifecycle"],
        "demo": demo,
        "traffic": [*mlmon, "traffic", "--url", settings.url("demo"),
                    "--rate", str(settings.rate), "--healthy-s", str(settings.healthy_s),
                    "--drift-s", str(settings.drift_s)],
    }


READY = {"sink": "/healthz", "alertmanager": "/-/ready", "prometheus": "/-/ready",
         "demo": "/healthz"}


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout_s:g} s")


def up(settings: Settings, ready_timeout_s: float = 60.0) -> dict[str, int]:
    """Start every process (fresh data directories); returns service -> pid."""
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if shutil.which(b) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (make install-servers)")
    busy = [f"{name} {port}" for name, port in settings.ports.items()
            if name != "elasticsearch" and not _port_free(port)]
    if busy:
        raise RuntimeError(f"ports in use: {', '.join(busy)} (try --port-base)")
    run = settings.run_dir
    if (run / "pids.json").exists():
        raise RuntimeError(f"{run} holds a running stack: run `make stack-down` first")
    for stale in ("prometheus-data", "alertmanager-data", "rules", "spool"):
        shutil.rmtree(run / stale, ignore_errors=True)
    run.mkdir(parents=True, exist_ok=True)
    (run / "notifications.jsonl").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if settings.es_url:
        _es_setup(settings, env)
    pids: dict[str, int] = {}
    try:
        for name, command in commands(settings).items():
            with open(run / f"{name}.log", "wb") as log:  # one run per log
                process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            pids[name] = process.pid
            (run / "pids.json").write_text(json.dumps(pids))
            if name in READY:
                wait_ready(settings.url(name) + READY[name], ready_timeout_s, process)
            if name == "prometheus":
                _check_rules_loaded(settings.url(name))
    except Exception:
        down(settings)
        raise
    return pids


def _es_setup(settings: Settings, env: dict[str, str]) -> None:
    """As compose's `setup` service: the demo's profile, then its index template and stream."""
    profile = settings.run_dir / "profile.json"
    mlmon = [settings.python, "-m", "exporter.cli"]
    for command in ([*mlmon, "demo", "--write-profile", str(profile)],
                    [*mlmon, "es-setup", "--profile", str(profile), "--es-url", settings.es_url]):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:4])} failed: {done.stderr.strip()}")


def _check_rules_loaded(prometheus_url: str) -> None:
    """Prometheus accepts a rule_files glob that matches nothing: make that an error."""
    with urllib.request.urlopen(prometheus_url + "/api/v1/rules", timeout=10) as answer:
        groups = json.load(answer)["data"]["groups"]
    if not groups:
        raise RuntimeError("Prometheus loaded no rule groups (check rule_files)")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        # As the servers do: a port in TIME_WAIT after the last run is free for them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def down(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Stop the processes `up` started (by pid, newest first); returns their names."""
    pid_file = settings.run_dir / "pids.json"
    if not pid_file.exists():
        return []
    pids: dict[str, int] = json.loads(pid_file.read_text())
    for name in reversed(list(pids)):
        _stop(pids[name], timeout_s)
    pid_file.unlink()
    return list(pids)


def _stop(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            finished, _status = os.waitpid(pid, os.WNOHANG)
            if finished:
                return
        except ChildProcessError:  # not our child (a `down` from another process): poll
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


# ---- command line ----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--run-dir", type=Path, default=Settings.run_dir)
    parser.add_argument("--port-base", type=int, default=None,
                        help="use ports BASE.. instead of the compose ports (8000, 9090, ...)")
    parser.add_argument("--es-url", default=os.environ.get("MLMON_ES_URL"),
                        help="a running Elasticsearch for the records (env MLMON_ES_URL)")
    parser.add_argument("--rules-config", type=Path, default=None,
                        help="generate the rules from this config instead of the committed ones")
    parser.add_argument("--fast-alerts", metavar="DURATION",
                        help="shorten `for:` of the data alerts to DURATION (stack/fast_rules.py)")
    parser.add_argument("--scrape-interval")
    parser.add_argument("--evaluation-interval")
    parser.add_argument("--group-wait")
    parser.add_argument("--group-interval")
    parser.add_argument("--healthy-s", type=float, default=Settings.healthy_s)
    parser.add_argument("--drift-s", type=float, default=Settings.drift_s)
    parser.add_argument("--rate", type=float, default=Settings.rate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ports = dict(SERVICE_PORTS)
    if args.port_base is not None:
        ports = {name: args.port_base + i for i, name in enumerate(SERVICE_PORTS)}
    rules = args.rules_config
    if args.fast_alerts and args.action == "up":
        from stack.fast_rules import write_fast_config

        args.run_dir.mkdir(parents=True, exist_ok=True)
        rules = write_fast_config(args.run_dir / "rules-config.yaml", args.fast_alerts)
    settings = Settings(run_dir=args.run_dir, ports=ports, es_url=args.es_url,
                        rules_config=rules, scrape_interval=args.scrape_interval,
                        evaluation_interval=args.evaluation_interval,
                        group_wait=args.group_wait, group_interval=args.group_interval,
                        healthy_s=args.healthy_s, drift_s=args.drift_s, rate=args.rate)
    try:
        if args.action == "up":
            pids = up(settings)
            for name in pids:
                port = settings.ports.get(name)
                where = f" on {settings.url(name)}" if port else ""
                print(f"stack: {name} started{where} (log: {settings.run_dir / name}.log)")
        else:
            stopped = down(settings)
            print(f"stack: stopped {', '.join(stopped) or 'nothing'}")
    except RuntimeError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
