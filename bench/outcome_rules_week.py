"""What the realized-performance rules cost in steady state: a week of data behind the 7d window.

    .venv/bin/python bench/outcome_rules_week.py [--replicas 1] [--classes 3] [--observe-s 180]

The outcome windows read ranges as long as the window, so their cost depends on a week of
samples, which no test accumulates. This writes a week of 15 s scrapes of the outcome series of
`--replicas` classifier replicas (the series the real `OutcomeMonitor` exports for a profile
with `--classes` classes; a nightly label delivery) into a fresh TSDB with
`promtool tsdb create-blocks-from openmetrics`, then starts the real Prometheus on it with the
committed outcome groups (prometheus/recording_rules.yml), scraping each replica's final values
from a static loopback target so that the series continue into the head. It prints each outcome
group's evaluation time (the rules API's `evaluationTime`, every minute for `--observe-s`) and
checks the recorded 7d labelled count against the generated labels. Not part of `make bench`:
the backfill alone takes minutes. Absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlmon.exporter import OutcomeMonitor  # noqa: E402
from mlmon.names import OUTCOME_LABELLED  # noqa: E402
from mlmon.profiling import profile_data  # noqa: E402
from tests.integration.prom_servers import free_port, wait_http  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRAPE_S = 15
DAY = 86400


def _series(classes: int) -> list[tuple[str, str]]:
    """(family, labels inside the braces) of every series one replica exports."""
    from prometheus_client import CollectorRegistry, generate_latest

    rng = np.random.default_rng(1)
    names = [f"c{i}" for i in range(classes)]
    labels = rng.choice(names, 2000)
    profile = profile_data(pd.DataFrame({"x": rng.normal(0, 1, 2000), "y": labels,
                                         "pred": labels}),
                           prediction_column="pred", target_column="y", model_name="m",
                           model_version="1")
    registry = CollectorRegistry()
    OutcomeMonitor(profile, registry)
    out = []
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#"):
            series = line.rsplit(" ", 1)[0]
            family, _, rest = series.partition("{")
            out.append((family, rest.rstrip("}")))
    return out


def _values(family: str, labels: str, bursts: list[int], rng: np.random.Generator,
            start: float) -> tuple[dict[int, float] | None, float]:
    """A counter's increment at each burst (None: a gauge, with its constant value)."""
    if family == "mlmon_counters_start_timestamp_seconds":
        return None, start
    if family == "mlmon_model_baseline":
        return None, 0.9
    if family.endswith("_bucket"):  # cumulative over le: grow with the bound's rank
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        rank = 1.0 if le == "+Inf" else min(1.0, float(le) / DAY)
        return {b: float(round(100 * rank)) for b in bursts}, 0.0
    return {b: float(rng.integers(0, 50)) for b in bursts}, 0.0


def backfill(path: Path, series: list[tuple[str, str]], targets: list[str], end: int,
             days: int) -> tuple[int, dict[str, dict[int, float]]]:
    """Write the OpenMetrics file; returns the start and each matrix series' increments."""
    start = end - days * DAY - 3600
    bursts = list(range(start + 3 * 3600, end, DAY))  # a nightly label file
    rng = np.random.default_rng(5)
    matrix: dict[str, dict[int, float]] = {}
    families: dict[str, list[str]] = {}
    for family, labels in series:
        families.setdefault(family, []).append(labels)
    with open(path, "w", encoding="utf-8") as out:
        for family, members in families.items():
            out.write(f"# TYPE {family} unknown\n")
            for target in targets:
                for labels in members:
                    full = ",".join(x for x in (labels, f'instance="{target}"', 'job="mlmon"')
                                    if x)
                    increments, constant = _values(family, labels, bursts, rng, float(start))
                    if family == "mlmon_outcome_class_total" and increments is not None:
                        matrix[f"{target} {labels}"] = increments
                    value, due = constant, sorted(increments or {})
                    for t in range(start, end + 1, SCRAPE_S):
                        while increments is not None and due and due[0] <= t:
                            value += increments[due.pop(0)]
                        out.write(f"{family}{{{full}}} {value!r} {t}\n")
        out.write("# EOF\n")
    return start, matrix


class _Static(http.server.BaseHTTPRequestHandler):
    text = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.text)

    def log_message(self, *args: object) -> None:
        pass


def serve_final(path: Path, target_port: int, target: str) -> http.server.ThreadingHTTPServer:
    """A loopback target serving the last backfilled value of each of `target`'s series."""
    last: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or f'instance="{target}"' not in line:
            continue
        series, value, _t = line.rsplit(" ", 2)
        family, _, labels = series.partition("{")
        labels = ",".join(p for p in labels.rstrip("}").split(",")
                          if not p.startswith(("instance=", "job=")))
        last[f"{family}{{{labels}}}"] = value
    handler = type("Handler", (_Static,), {"text": "".join(
        f"{s} {v}\n" for s, v in last.items()).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", target_port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (loopback)
        return json.load(answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--observe-s", type=float, default=180.0)
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make install-servers)")
    work = Path(tempfile.mkdtemp(prefix="mlmon-outcome-week-"))
    ports = [free_port() for _ in range(args.replicas)]
    targets = [f"127.0.0.1:{p}" for p in ports]
    series = _series(args.classes)
    end = int(time.time()) // SCRAPE_S * SCRAPE_S
    data = work / "week.om"
    start, matrix = backfill(data, series, targets, end, args.days)
    print(f"{len(series) * len(targets)} input series, {args.days}d of {SCRAPE_S}s scrapes; "
          "backfilling with promtool ...", flush=True)
    began = time.monotonic()
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(data),
                    str(work / "tsdb")], check=True, capture_output=True)
    print(f"backfill: {time.monotonic() - began:.0f} s", flush=True)
    servers = [serve_final(data, port, target) for port, target in zip(ports, targets,
                                                                         strict=True)]
    rules = yaml.safe_load((REPO / "prometheus" / "recording_rules.yml").read_text())
    rules["groups"] = [g for g in rules["groups"] if g["name"].startswith("mlmon.outcomes.")]
    (work / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "rule_files": [str(work / "rules.yml")],
        "scrape_configs": [{"job_name": "mlmon", "static_configs": [{"targets": targets}]}]}))
    address = f"127.0.0.1:{free_port()}"
    with open(work / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen([
            "prometheus", f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}", "--storage.tsdb.retention.time=30d",
            f"--web.listen-address={address}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://{address}/-/ready", timeout=120, process=prometheus)
        deadline = time.monotonic() + args.observe_s
        while time.monotonic() < deadline:
            time.sleep(60)
            groups = _get(f"http://{address}/api/v1/rules")["data"]["groups"]
            print("  ".join(f"{g['name']} {g['evaluationTime'] * 1000:.0f} ms"
                            + ("" if all(r["health"] == "ok" for r in g["rules"]) else " (errors)")
                            for g in groups), flush=True)
        now = time.time()
        expected = sum(v for increments in matrix.values() for t, v in increments.items()
                       if t > now - 7 * DAY)
        found = _get(f"http://{address}/api/v1/query?query={OUTCOME_LABELLED.at('7d')}")
        got = [float(r["value"][1]) for r in found["data"]["result"]]
        print(f"labelled over 7d: recorded {got}, generated {expected:.0f}")
        return 0 if got == [expected] else 1
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        for server in servers:
            server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
