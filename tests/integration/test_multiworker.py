"""Multi-worker servers: real gunicorn (uvicorn workers) or uvicorn --workers, a real Prometheus
with the committed recording rules, and window counts that equal the traffic sent, exactly.

Three workers share MLMON_MULTIPROC_DIR and serve tests/multiworker_app.py (the monitor created
per worker, or once in the master with gunicorn `--preload`). Prometheus scrapes their port
every second (in one case only a metrics-only process reading the same directory instead) and
evaluates the recording rules generated from alerting/config.yaml with only the windows
shortened (SHORT, LONG) through mlmon.alerting.generate. The test sends bursts of known records
separated by quiet gaps; between bursts it terminates one worker (the server starts a new one)
and kills another, and workers also recycle themselves after a number of requests (gunicorn
`--max-requests`, uvicorn `--limit-max-requests`).

At every rule evaluation whose window edges fall in quiet time, the recorded window counts
(records observed, a numeric feature's buckets, a categorical feature's categories) must equal
the records of the bursts inside the window, exactly, and PSI and KS must equal exporter/drift.py
on those records. Which bursts a window holds is read from Prometheus: at time t the rules
compare the last scrape at or before t with the last one at or before t - window (`offset`);
a burst is inside when the later scrape saw it and the earlier one did not. A scrape saw a burst
for certain when the burst ended before the scrape began, and missed it for certain when the
burst began after the scrape's answer (start + scrape_duration_seconds). Evaluations where a
burst is neither, or whose window starts before the target's first scrape (the documented
increase() fallback of a target newer than the window), are not judged; the test requires
judged evaluations whose window holds bursts on both sides of each restart.

Scrapes also fail: Prometheus scrapes through a proxy (tests/integration/faulty_proxy.py) that
resets every connection for a while, in quiet time and during a whole burst, as a network blip
or an overloaded worker would (Prometheus writes staleness markers then). The rules read each
edge at the last successful scrape at or before it, within restart_grace, so windows whose
edges touch a failed scrape are judged too, against the bursts between those two successful
scrapes; the test requires such judged evaluations at the window start (where an instant read
would fall back to increase()) and at its end.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlmon.alerting import config as rules_config
from mlmon.alerting import generate
from mlmon.alerting.recording import FEATURE_CATS, FEATURE_HIST
from mlmon.exporter import drift
from mlmon.exporter.layout import OTHER, UNSEEN
from mlmon.exporter.profile import Profile
from mlmon.exporter.values import canonical_category
from tests.integration import prom_servers
from tests.integration.faulty_proxy import FaultyProxy
from tests.integration.prom_servers import Prometheus, Server, free_port, start_python_server
from tests.profiles import sample_profile_dict

prometheus_factory = prom_servers.prometheus_factory  # the fixture, by name, for pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHORT, LONG = "20s", "40s"
GRACE = "3s"  # restart_grace: at least twice the 1 s scrape interval (the generator checks it)
GRACE_S = rules_config.duration_seconds(GRACE)
FAIL_S = 1.6  # scrapes fail this long (1 or 2 scrapes): successful ones stay within GRACE_S
WORKERS = 3
MAX_REQUESTS = 150  # of about 1,150 requests in all (scrapes included): workers recycle
QUIET_S = 3.5  # quiet time after each burst and restart: > 3 scrapes
# Quiet time before the first burst, so that LONG windows starting after the first scrape still
# hold it for several evaluations.
LEAD_S = 8.0
TOLERANCE = 1e-9  # PSI / KS against exporter/drift.py on the same records
CITY_P = {  # city shares per kind of burst; oslo and lyon were never seen in training
    "reference": {"paris": 0.6, "rome": 0.3, "berlin": 0.05, "madrid": 0.05},
    "drifted": {"paris": 0.2, "rome": 0.35, "madrid": 0.2, "oslo": 0.25},
    "shifted": {"paris": 0.4, "rome": 0.4, "berlin": 0.1, "lyon": 0.1},
}
AGE = {"reference": (40.0, 15.0), "drifted": (70.0, 8.0), "shifted": (50.0, 10.0)}
# (kind, records) bursts, restarts and failing scrapes ("fail": for FAIL_S in quiet time;
# "fail-burst": from just before the next burst to just after it), in order; burst sizes
# differ so any mix-up shows in the counts.
PLAN: list[tuple[str, int]] = [("reference", 240), ("fail", 0), ("drifted", 180),
                               ("terminate", 0), ("reference", 300), ("fail", 0), ("kill", 0),
                               ("fail-burst", 0), ("shifted", 150), ("drifted", 210),
                               ("fail", 0), ("fail", 0)]  # the last: at long windows' ends

SERVERS = {
    "gunicorn": ["-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", str(WORKERS),
                 "--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "50",
                 "--graceful-timeout", "10"],
    "uvicorn": ["-m", "uvicorn", "--workers", str(WORKERS),
                "--limit-max-requests", str(MAX_REQUESTS), "--no-access-log"],
}
# A metrics-only process beside the workers (e.g. a sidecar sharing the directory's volume).
SIDECAR = """
import sys, time
from mlmon.exporter.server import multiprocess_registry, start_http_server
start_http_server(int(sys.argv[1]), registry=multiprocess_registry())
while True:
    time.sleep(3600)
"""


@dataclass
class Burst:
    """Records sent together; `start`/`end` bracket every request (wall clock, as Prometheus)."""

    kind: str
    records: list[dict[str, Any]]
    start: float = 0.0
    end: float = 0.0
    pids: Counter[int] = field(default_factory=Counter)


@dataclass
class Restart:
    signal: str
    at: float
    pid: int


def _records(kind: str, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    mean, sd = AGE[kind]
    # One decimal, inside the profile's allowed range: every value lands in the histogram.
    ages = np.clip(rng.normal(mean, sd, n), 11.0, 97.0).round(1)
    cities = rng.choice(list(CITY_P[kind]), n, p=list(CITY_P[kind].values()))
    return [{"features": {"age": float(a), "city": str(c)}, "prediction": float(i % 5) - 2.0}
            for i, (a, c) in enumerate(zip(ages, cities, strict=True))]


def _short_rules(dest: Path) -> Path:
    """prometheus/recording_rules.yml as mlmon.alerting.generate writes it with windows SHORT and
    LONG (the alerts' windows mapped along) and a 1 s scrape interval."""
    data = yaml.safe_load(rules_config.CONFIG_PATH.read_text(encoding="utf-8"))
    renamed = dict(zip(data["windows"], (SHORT, LONG), strict=True))
    data["windows"], data["restart_grace"] = [SHORT, LONG], GRACE
    for section in data["alerts"].values():
        if section.get("window") in renamed:  # an outcome window (outcome_windows) stays
            section["window"] = renamed[section["window"]]
    prometheus = yaml.safe_load(generate.PROMETHEUS_PATH.read_text(encoding="utf-8"))
    prometheus["global"]["scrape_interval"] = "1s"
    text = generate.outputs(rules_config.parse(data), yaml.safe_dump(prometheus))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / generate.RECORDING_PATH.name
    path.write_text(text[generate.RECORDING_PATH], encoding="utf-8")
    return path


def _environment(workdir: Path, profile: Path) -> dict[str, str]:
    return {**os.environ, "MLMON_MULTIPROC_DIR": str(workdir / "multiproc"),
            "MLMON_TEST_PROFILE": str(profile), "PYTHONPATH": str(REPO)}


def _start_server(kind: str, preload: bool, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    if kind == "gunicorn":
        # With --preload also the `child_exit` hook of tests/multiworker_gunicorn_conf.py (what
        # earlier versions asked for); without, the bare command line.
        hook = ["--preload", "-c", str(REPO / "tests" / "multiworker_gunicorn_conf.py")]
        args = [*SERVERS[kind], "-b", f"127.0.0.1:{port}", *(hook if preload else []),
                "tests.multiworker_app:app"]
    else:
        args = [*SERVERS[kind], "--host", "127.0.0.1", "--port", str(port),
                "tests.multiworker_app:app"]
    Path(env["MLMON_MULTIPROC_DIR"]).mkdir(parents=True)
    return start_python_server(args, workdir, kind, port, env, timeout=60)


def _start_sidecar(workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    return start_python_server(["-c", SIDECAR, str(port)], workdir, "sidecar", port, env)


def _workers(master: int) -> set[int]:
    """The master's live worker processes (uvicorn's may include multiprocessing helpers)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    workers = set()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            workers.add(pid)
    return workers


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.1)


def _restart(server: Server, name: str) -> Restart:
    """Send SIGTERM or SIGKILL to one worker; return once the server has WORKERS again."""
    before = _workers(server.process.pid)
    pid = min(before)
    at = time.time()
    os.kill(pid, signal.SIGTERM if name == "terminate" else signal.SIGKILL)
    _wait(lambda: pid not in (now := _workers(server.process.pid)) and len(now) >= WORKERS,
          60, f"no replacement for worker {pid}")
    return Restart(name, at, pid)


def _post(url: str, record: dict[str, Any]) -> int:
    """POST one record; the pid of the worker that observed it.

    Retried when the connection was refused or reset: a worker at its request limit closes the
    connections it accepted but has not started to serve, so nothing was observed. (Were a
    reset request observed after all, the exported total would exceed what was sent, and the
    test checks that it does not.)"""
    body = json.dumps(record).encode()
    for _ in range(50):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
                return int(answer.read())
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionError):
                raise
        except ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} refused or reset 50 attempts in a row")


def _send(server: Server, burst: Burst) -> None:
    url = f"{server.url}/predict"
    burst.start = time.time()
    with ThreadPoolExecutor(4) as pool:
        burst.pids.update(pool.map(lambda r: _post(url, r), burst.records))
    burst.end = time.time()


def _run_plan(server: Server, proxy: FaultyProxy,
              seed: int) -> tuple[list[Burst], list[Restart], list[tuple[float, float]]]:
    """Bursts, restarts and the (start, end) of each period of failing scrapes."""
    bursts: list[Burst] = []
    restarts: list[Restart] = []
    faults: list[tuple[float, float]] = []
    time.sleep(LEAD_S)
    for i, (kind, n) in enumerate(PLAN):
        if kind in ("terminate", "kill"):
            restarts.append(_restart(server, kind))
        elif kind == "fail":
            proxy.mode = "reset"
            faults.append((time.time(), time.time() + FAIL_S))
            time.sleep(FAIL_S)
            proxy.mode = "pass"
        elif kind == "fail-burst":
            proxy.mode = "reset"
            faults.append((time.time(), 0.0))
            time.sleep(0.2)
            continue  # the burst follows at once
        else:
            bursts.append(Burst(kind, _records(kind, n, seed + i)))
            _send(server, bursts[-1])
            if proxy.mode == "reset":
                time.sleep(0.2)
                proxy.mode = "pass"
                faults[-1] = (faults[-1][0], time.time())
        time.sleep(QUIET_S)
    return bursts, restarts, faults


# ---- what Prometheus recorded --------------------------------------------------------------

Series = dict[str, dict[float, float]]  # label value -> {timestamp: value}


def _raw(prom: Prometheus, expr: str, key: str, seconds: int) -> Series:
    """Every stored sample of `expr` over the last `seconds`, by the value of label `key`."""
    out: Series = {}
    for result in prom.query(f"{expr}[{seconds}s]"):
        samples = out.setdefault(result["metric"].get(key, ""), {})
        samples.update({float(ts): float(v) for ts, v in result["values"]})
    return out


@dataclass
class Scrape:
    at: float
    answered_by: float  # at + scrape_duration_seconds: the answer was rendered before this
    ok: bool  # up == 1

    def saw(self, burst: Burst) -> bool | None:
        """Whether this scrape's counters include the burst; None when it cannot be told."""
        if not self.ok:
            return None
        if burst.end < self.at:
            return True
        if burst.start > self.answered_by:
            return False
        return None


def _scrapes(prom: Prometheus, seconds: int) -> list[Scrape]:
    up = _raw(prom, 'up{job="mlmon"}', "job", seconds)["mlmon"]
    took = _raw(prom, 'scrape_duration_seconds{job="mlmon"}', "job", seconds)["mlmon"]
    return [Scrape(at, at + took[at], up[at] == 1.0) for at in sorted(up)]


def _last_ok(scrapes: list[Scrape], at: float) -> Scrape | None:
    """The last successful scrape at or before `at`."""
    return next((s for s in reversed(scrapes) if s.at <= at and s.ok), None)


@dataclass
class Window:
    bursts: list[Burst]  # inside the window
    failed_at_start: bool  # the last scrape at or before the window start failed
    failed_at_end: bool  # one of the last scrapes at or before t failed


def _window_bursts(t: float, window_s: float, scrapes: list[Scrape],
                   bursts: list[Burst]) -> Window | None:
    """The bursts inside the window ending at evaluation time t, or None when not known.

    The rule reads the last successful scrape at or before t (a failed one leaves a staleness
    marker, which the rule's range selectors skip); the newest one or two scrapes may not be
    stored yet when the rule runs, so the last successful ones at or before each of the last
    three must agree, and be at most restart_grace old (the statistics read the reference
    gauges at the last successful scrape within restart_grace). At the start, the last
    successful scrape at or before t - window, if it is at most restart_grace older (else the
    rules fall back to increase(): not judged)."""
    last = [s for s in scrapes if s.at <= t][-3:]
    right = [_last_ok(scrapes, s.at) for s in last]
    left = _last_ok(scrapes, t - window_s)
    if (len(last) < 3 or left is None or left.at < t - window_s - GRACE_S
            or any(r is None or r.at <= max(t - window_s, t - GRACE_S) for r in right)):
        return None
    seen = [[r.saw(b) for b in bursts] for r in right if r is not None]
    before = [left.saw(b) for b in bursts]
    if None in seen[-1] or None in before or any(row != seen[-1] for row in seen):
        return None
    at_start = [s for s in scrapes if s.at <= t - window_s][-1]
    return Window([b for b, now, then in zip(bursts, seen[-1], before, strict=True)
                   if now and not then], not at_start.ok, not all(s.ok for s in last))


@dataclass
class Truth:
    """What a window holding these records must record."""

    n: int
    age_buckets: dict[float, int]  # le -> cumulative count
    cities: dict[str, int]  # category label -> count
    age: drift.Drift | None
    city: drift.Drift | None


def _truth(profile: Profile, records: list[dict[str, Any]]) -> Truth:
    age, city = (next(f for f in profile.features if f.name == name) for name in ("age", "city"))
    ages = np.array([r["features"]["age"] for r in records])
    edges = [*age.binned.edges, float("inf")]
    top, seen = set(city.top_categories), set(city.seen)
    cities: Counter[str] = Counter()
    for r in records:
        value = canonical_category(r["features"]["city"])
        cities[value if value in top else OTHER if value in seen else UNSEEN] += 1
    reference = dict(zip(city.top_categories, city.top_shares, strict=True))
    reference.update({OTHER: city.other_share, UNSEEN: 0.0})
    return Truth(
        n=len(records),
        age_buckets={le: int(np.sum(ages <= le)) for le in edges},
        cities=dict(cities),
        age=drift.numeric_drift(ages, age.binned.edges, age.binned.bin_shares) if records
        else None,
        city=drift.categorical_drift(cities, reference) if records else None)


@dataclass
class Recorded:
    """The recorded series of one window, by evaluation timestamp."""

    observations: dict[float, float]
    age_buckets: dict[float, dict[float, float]]  # le -> samples
    cities: Series  # category -> samples
    psi: Series  # feature -> samples
    ks: Series

    @classmethod
    def read(cls, prom: Prometheus, window: str, seconds: int) -> Recorded:
        sel = '{model="churn"}'
        return cls(
            observations=_raw(prom, f"model:mlmon_observations:increase{window}{sel}", "model",
                              seconds).get("churn", {}),
            age_buckets={float(le): samples for le, samples in _raw(
                prom, f'{FEATURE_HIST.bucket(window)}{{feature="age"}}', "le", seconds).items()},
            cities=_raw(prom, f'{FEATURE_CATS.counts(window)}{{feature="city"}}', "category",
                        seconds),
            psi=_raw(prom, f"model_feature:mlmon_feature_psi:{window}{sel}", "feature", seconds),
            ks=_raw(prom, f"model_feature:mlmon_feature_ks:{window}{sel}", "feature", seconds))


def _compare(t: float, recorded: Recorded, truth: Truth) -> list[tuple[str, Any, Any]]:
    """(what, recorded, true) for every recorded value at t that differs from the truth."""
    wrong: list[tuple[str, Any, Any]] = []

    def exact(what: str, got: float | None, want: float) -> None:
        if got != want:
            wrong.append((what, got, want))

    exact("observations", recorded.observations.get(t), truth.n)
    for le, count in truth.age_buckets.items():
        exact(f"age le={le:g}", recorded.age_buckets.get(le, {}).get(t), count)
    for category in set(truth.cities) | set(recorded.cities):
        exact(f"city {category}", recorded.cities.get(category, {}).get(t),
              truth.cities.get(category, 0))
    for stat, series in (("psi", recorded.psi), ("ks", recorded.ks)):
        for feature, want in (("age", truth.age), ("city", truth.city)):
            got = series.get(feature, {}).get(t)
            expected = None if want is None else getattr(want, stat)
            if (got is None) != (expected is None) or (
                    got is not None and expected is not None
                    and abs(got - expected) > TOLERANCE):
                wrong.append((f"{stat} {feature}", got, expected))
    return wrong


def _straddles(bursts: list[Burst], restart: Restart) -> bool:
    return (any(b.end < restart.at for b in bursts)
            and any(b.start > restart.at for b in bursts))


def _exported_total(server: Server) -> float:
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=30).read().decode()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "mlmon_observations_total")


@pytest.mark.parametrize(
    ("kind", "preload", "sidecar"),
    [("gunicorn", False, False), ("gunicorn", True, False), ("uvicorn", False, False),
     ("gunicorn", False, True)],
    ids=["gunicorn", "gunicorn-preload", "uvicorn-workers", "gunicorn-metrics-sidecar"])
def test_window_counts_exact_across_worker_restarts(
        tmp_path: Path, prometheus_factory: Any, kind: str, preload: bool,
        sidecar: bool) -> None:
    """Prometheus scrapes the workers' port, or with `sidecar` only a metrics-only process."""
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    profile = Profile.load(profile_path)
    rules = _short_rules(tmp_path / "rules")
    env = _environment(tmp_path, profile_path)
    server = _start_server(kind, preload, tmp_path, env)
    target = _start_sidecar(tmp_path, env) if sidecar else server
    proxy = FaultyProxy(int(target.url.rsplit(":", 1)[1]))  # Prometheus scrapes through it
    try:
        prom: Prometheus = prometheus_factory(
            targets={"mlmon": [proxy.url.removeprefix("http://")]}, rule_files=[rules])
        started = time.time()
        prom.wait_for('up{job="mlmon"} == 1', timeout=30)
        bursts, restarts, faults = _run_plan(server, proxy, seed=11)
        # Let the long window slide past the last burst: empty windows are judged too.
        time.sleep(max(0.0, bursts[-1].end + rules_config.duration_seconds(LONG) + 4
                       - time.time()))
        exported = _exported_total(target)
        seconds = int(time.time() - started) + 10
        scrapes = _scrapes(prom, seconds)
        recorded = {w: Recorded.read(prom, w, seconds) for w in (SHORT, LONG)}
    finally:
        proxy.close()
        server.stop()
        target.stop()
    log = server.log.read_text(errors="replace")
    _keep_evidence(tmp_path / "evidence.json", bursts, restarts, faults, scrapes, recorded)

    sent = sum(len(b.records) for b in bursts)
    # The exporter itself counted every record once: what follows is about the rules.
    assert exported == sent, (exported, sent)
    # Several workers served, and besides the two restarts, recycling replaced some.
    pids = set().union(*(b.pids for b in bursts))
    assert len(pids) > WORKERS + len(restarts) and any(len(b.pids) > 1 for b in bursts), (
        pids, log[-2000:])

    failures: list[Wrong] = []
    report, thin = [], []
    for window in (SHORT, LONG):
        judged, straddling, wrong = _judge(window, recorded[window], scrapes, bursts, restarts,
                                           profile)
        failures += wrong
        report.append(_summary(window, judged, len(recorded[window].observations), straddling,
                               wrong))
        # Not vacuous: windows holding bursts on both sides of each restart were judged, and
        # so were windows with a failed scrape at their start and at their end.
        if (sum(judged.values()) < 10 or set(straddling) != {"terminate", "kill"}
                or judged["failed at start"] < 1 or judged["failed at end"] < 1):
            thin.append(window)
    zero = next(s.at for s in scrapes if s.ok)  # times below are seconds since the first scrape
    failed = [f"{s.at - zero:+.0f}s" for s in scrapes if not s.ok]
    timeline = [f"{b.kind} x{len(b.records)} {b.start - zero:+.1f}..{b.end - zero:+.1f}s"
                for b in bursts] + [f"{r.signal} {r.at - zero:+.1f}s" for r in restarts] + [
                f"scrapes fail {a - zero:+.1f}..{b - zero:+.1f}s" for a, b in faults]
    lines = [f"{w} t={t - zero:+.0f}s {what}: recorded {got}, true {want}"
             for w, t, what, got, want in sorted(failures, key=lambda f: f[2] != "observations")]
    print("\n".join(["timeline: " + ", ".join(timeline), *report]))  # shown with -s
    # Failed scrapes besides the proxy's (the 1 s timeout on a loaded machine) are judged like
    # them; only a gap longer than restart_grace leaves windows unjudged (increase()).
    assert failures == [] and thin == [], "\n".join(
        [f"failed scrapes: {len(failed)} of {len(scrapes)} {failed}",
         f"windows with too few judged evaluations: {thin}",
         "timeline: " + ", ".join(timeline), *report, *lines[:60]])


def _keep_evidence(path: Path, bursts: list[Burst], restarts: list[Restart],
                   faults: list[tuple[float, float]], scrapes: list[Scrape],
                   recorded: dict[str, Recorded]) -> None:
    """What the verdict is computed from, for a look after a failure."""
    path.write_text(json.dumps({
        "bursts": [{"kind": b.kind, "n": len(b.records), "start": b.start, "end": b.end,
                    "pids": dict(b.pids)} for b in bursts],
        "restarts": [vars(r) for r in restarts], "faults": faults,
        "scrapes": [vars(s) for s in scrapes],
        "recorded": {w: {k: {str(key): v for key, v in getattr(r, k).items()}
                         for k in ("observations", "age_buckets", "cities", "psi", "ks")}
                     for w, r in recorded.items()}}, default=str), encoding="utf-8")


Wrong = tuple[str, float, str, Any, Any]  # window, evaluation time, what, recorded, true


def _judge(window: str, recorded: Recorded, scrapes: list[Scrape], bursts: list[Burst],
           restarts: list[Restart],
           profile: Profile) -> tuple[Counter[str], Counter[str], list[Wrong]]:
    """(evaluations judged: "clean", "failed at start", "failed at end" (a window may count
    in both); how many of them straddle each kind of restart; wrong values)."""
    window_s = rules_config.duration_seconds(window)
    judged, straddling, wrong = Counter[str](), Counter[str](), []
    for t in sorted(recorded.observations):
        inside = _window_bursts(t, window_s, scrapes, bursts)
        if inside is None:
            continue
        judged.update([k for k, failed in (("failed at start", inside.failed_at_start),
                                           ("failed at end", inside.failed_at_end)) if failed]
                      or ["clean"])
        truth = _truth(profile, [r for b in inside.bursts for r in b.records])
        wrong += [(window, t, *w) for w in _compare(t, recorded, truth)]
        straddling.update(r.signal for r in restarts if _straddles(inside.bursts, r))
    return judged, straddling, wrong


def _summary(window: str, judged: Counter[str], evaluations: int, straddling: Counter[str],
             wrong: list[Wrong]) -> str:
    counts = [(got, want) for _, _, what, got, want in wrong if what == "observations"]
    over = [(got, want) for got, want in counts if got is not None and got > want]
    text = (f"{window}: {sum(judged.values())} of {evaluations} evaluations judged "
            f"({dict(judged)}; windows straddling a "
            f"restart: {dict(straddling)}); observation count wrong at {len(counts)}: "
            f"{len(over)} over, {sum(got is not None and got % 1 != 0 for got, _ in counts)} "
            f"not whole (extrapolated)")
    if over:
        worst = max(over, key=lambda c: c[0] - c[1])
        text += f", worst overcount {worst[0]:g} against {worst[1]}"
    return text + f"; {len(wrong) - len(counts)} other wrong values"
