"""Builds window_counts_test.yml: what the window counts count when replicas come and go.

`python prometheus/tests/window_cases.py` rewrites the file; tests/test_rules.py checks that the
committed file equals `render()`. Every case has replica `a` (the same process all along, 10
records a minute) and a target `b` that restarts, appears, vanishes or predates Prometheus, or
is a multi-worker server whose workers come and go. Values are per minute from t=0; the check
is at t=10m over the 5m window, (5m, 10m]. Each target's counter is also the `+Inf` bucket of
feature `age`, so the per-bucket rules (matched to the target's counters-start timestamp
ignoring `feature` and `le`) are checked as well. The expected numbers are what
docs/drift-and-alerts.md and docs/multi-worker.md say is counted, worked out from the listed
samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import mlmon.names as N
from mlmon.alerting.config import duration_seconds
from mlmon.alerting.config import load as load_config
from mlmon.alerting.recording import FEATURE_HIST
from mlmon.names import COUNTERS_START, PROFILE_LOADED

PATH = Path(__file__).with_name("window_counts_test.yml")
MODEL = {"model": "churn", "model_version": "3"}
T, W = 10, 5  # evaluation minute and window (minutes)
OLD = -100000.0  # counters (and a profile) started long before the test starts
Samples = list[float | None | str]  # None: no sample; "stale": a staleness marker


def _ramp(minutes: int, first: float = 0.0, per_minute: float = 10.0) -> list[float]:
    """`minutes` consecutive scrapes of a counter starting at `first`."""
    return [first + i * per_minute for i in range(minutes)]


class Case(NamedTuple):  # not a dataclass: tests load this file without registering it
    name: str
    why: str
    b_started: Samples      # mlmon_counters_start_timestamp_seconds
    b_counter: Samples
    expected: float | None  # None: compare with increase() instead of a number
    # mlmon_profile_loaded_timestamp_seconds when it differs from b_started (multi-worker:
    # the answering worker's load time); the rules must not depend on it
    b_loaded: Samples | None = None


A_COUNTER = _ramp(T + 3)
A_COUNT = A_COUNTER[T] - A_COUNTER[T - W]  # replica a: the exact difference, 50


def restart_inside_window() -> Case:
    # b restarts at 6m30s: the old process counted 0..60 until 6m (and ~5 more, never scraped);
    # the new one loaded at 390 s and counted 5 by 7m, then 10 a minute.
    counter = _ramp(7) + _ramp(6, first=5.0)
    loaded = [OLD] * 7 + [390.0] * 6
    return Case("a restart inside the window counts the new process's whole counter only",
                "b's old process counted 10 in the window before the restart (60 - 50): "
                "not counted", loaded, counter, A_COUNT + counter[T])


def restart_just_before_window() -> Case:
    # b restarted at 4m10s (loaded 250 s, inside restart_grace before the window) and was first
    # scraped at 5m with 8. It is the same process at both ends of the window: exact difference.
    counter = _ramp(5) + _ramp(8, first=8.0)
    loaded = [OLD] * 5 + [250.0] * 8
    return Case("a process restarted before the window and scraped at its start: exact",
                "not its whole counter (that would add the 8 counted before the window)",
                loaded, counter, A_COUNT + counter[T] - counter[T - W])


def loaded_in_grace_scraped_after() -> Case:
    # b loaded at 4m50s (290 s) but was first scraped at 6m (with 12): one window ago there is
    # no sample, so its whole counter counts, including what it saw between 4m50s and 5m.
    counter = [None] * 6 + _ramp(7, first=12.0)
    loaded = [None] * 6 + [290.0] * 7
    return Case("a process loaded just before the window but first scraped in it: whole counter",
                "restart_grace catches it; counts before the window start may be included",
                loaded, counter, A_COUNT + counter[T])


def new_replica() -> Case:
    # b starts at 6m30s (loaded 390 s), counts 5 by its first scrape at 7m, then 10 a minute.
    counter = [None] * 7 + _ramp(6, first=5.0)
    loaded = [None] * 7 + [390.0] * 6
    return Case("a new replica appearing inside the window counts its whole counter",
                "every count of b was made inside the window", loaded, counter,
                A_COUNT + counter[T])


def vanished_replica() -> Case:
    # b is scaled down after its 7m scrape (staleness markers from 8m): it still counts the 20 it
    # made inside the window, exactly (increase() would extrapolate its last samples).
    counter = _ramp(8) + ["stale"] * 5
    loaded = [OLD] * 8 + ["stale"] * 5
    return Case("a replica that vanished inside the window counts what it made there, exactly",
                "its last sample minus its sample one window ago", loaded, counter,
                A_COUNT + counter[7] - counter[T - W])


def newer_than_window() -> Case:
    # b has run for long (loaded long ago, counter at 1000) but Prometheus first scraped it at
    # 7m: no sample one window ago, so the rule falls back to increase() over what was scraped.
    counter = [None] * 7 + _ramp(6, first=1000.0)
    loaded = [None] * 7 + [OLD] * 6
    return Case("a long-running replica first scraped inside the window falls back to increase()",
                "no sample one window ago and not a new process", loaded, counter, None)


# Multi-worker targets (one MLMON_MULTIPROC_DIR): the counters are the sum over every worker's
# file, dead workers' included, so they never go backwards when a worker is recycled or
# crashes; the counters' start is when the directory first held the profile, whichever worker
# answers; the profile-loaded timestamp is the answering worker's and jumps between them.
WORKER_LOADS = [30.0, 200.0, 30.0, 200.0, 30.0, 200.0, 350.0, 200.0, 350.0, 200.0, 350.0,
                200.0, 350.0]  # the worker loaded at 30 s is recycled at 5m50s (350 s)


def worker_recycled_inside_window() -> Case:
    # b: 3 workers sharing a directory created at 20 s; one recycled at 5m50s (max_requests or
    # a crash: the same for the sum). The sum rises by 10 a minute throughout. Keyed on the
    # answering worker's load time, the rules would take the whole counter here (63 + 50).
    counter = _ramp(T + 3, first=3.0)
    return Case("a multi-worker target with a worker recycled inside the window: exact",
                "the summed counters never went backwards and their start stayed put, "
                "whichever worker answered", [20.0] * (T + 3), counter,
                A_COUNT + counter[T] - counter[T - W], WORKER_LOADS)


def directory_created_inside_window() -> Case:
    # b: a multi-worker target whose directory was emptied at deploy and first held the profile
    # at 6m40s (400 s); its workers counted 4 by the 7m scrape.
    counter = [None] * 7 + _ramp(6, first=4.0)
    return Case("a multi-worker target whose directory started inside the window: whole counter",
                "every summed count was made after the counters' start", [None] * 7 + [400.0] * 6,
                counter, A_COUNT + counter[T], [None] * 7 + [400.0, 410.0] * 3)


def metadata_without_start() -> Case:
    # b: a directory written by an mlmon version that did not record the counters' start:
    # exported as 0 (the far past), never "recently started", so: the exact difference.
    counter = _ramp(T + 3, first=500.0)
    return Case("a multi-worker directory from an older version (start 0) counts exactly",
                "0 keeps the same-counters branch; a made-up recent start would count the whole "
                "counter", [0.0] * (T + 3), counter, A_COUNT + counter[T] - counter[T - W],
                WORKER_LOADS)


# Failed scrapes: Prometheus writes staleness markers for every series of the target at a
# failed scrape, so an instant read there finds nothing. Each edge of the window is read at the
# last successful scrape at or before it (within restart_grace), so the count is exact between
# those two scrapes: counts made after the last successful scrape before the window start fall
# into this window, and are absent from the previous one, whose right edge is that scrape.
# b's traffic varies from minute to minute here, so increase()'s extrapolation cannot land on
# the exact count by chance.
UNEVEN = [float(sum([3, 17, 5, 12, 8, 20, 1, 9, 14, 6, 11, 4, 7][:i])) for i in range(T + 3)]


def _failed(samples: Samples, *minutes: int) -> Samples:
    """`samples` with the scrapes at `minutes` failed (staleness markers)."""
    return ["stale" if i in minutes else v for i, v in enumerate(samples)]


def failed_scrape_at_window_start() -> Case:
    counter = UNEVEN
    return Case("a failed scrape at the window start: exact from the scrape before it",
                "the left edge is the 4m scrape; increase() would extrapolate",
                _failed([OLD] * (T + 3), T - W), _failed(counter, T - W),
                A_COUNT + counter[T] - counter[T - W - 1])


def failed_scrape_at_window_end() -> Case:
    counter = UNEVEN
    return Case("a failed scrape at the evaluation: exact up to the scrape before it",
                "the right edge is the 9m scrape (last_over_time over the window)",
                _failed([OLD] * (T + 3), T), _failed(counter, T),
                A_COUNT + counter[T - 1] - counter[T - W])


def failed_scrapes_at_both_edges_multiworker() -> Case:
    counter = [3.0 + v for v in UNEVEN]
    return Case("a multi-worker target with failed scrapes at both edges: exact between the "
                "scrapes before them", "the counters' start is read at the 4m scrape",
                _failed([20.0] * (T + 3), T - W, T), _failed(counter, T - W, T),
                A_COUNT + counter[T - 1] - counter[T - W - 1],
                _failed(WORKER_LOADS, T - W, T))


def new_replica_failed_scrape_at_end() -> Case:
    # as new_replica, the scrape at 10m failed: its whole counter at the 9m scrape
    counter = [None] * 7 + _failed(_ramp(6, first=5.0), T - 7)
    return Case("a new replica whose scrape at the evaluation failed: its whole counter at the "
                "scrape before", "the recently-started branch reads the last successful scrape",
                [None] * 7 + _failed([390.0] * 6, T - 7), counter, A_COUNT + counter[T - 1])


def restart_at_window_start_failed_scrape() -> Case:
    # b restarted at 4m30s (270 s); the 5m scrape failed, the new process was first scraped at
    # 6m with 13. The left edge is the old process's 4m scrape: a different start, so the new
    # process's whole counter (as for any restart: the old process's last counts are lost).
    counter = _ramp(5) + ["stale"] + _ramp(7, first=13.0)
    started = [OLD] * 5 + ["stale"] + [270.0] * 7
    return Case("a restart just before the window with the scrape at its start failed: the new "
                "process's whole counter", "its start differs from the left edge's",
                started, counter, A_COUNT + counter[T])


def scrapes_failed_longer_than_grace() -> Case:
    # the 4m and 5m scrapes failed: no successful scrape within restart_grace before the window
    # start, so the count falls back to increase()
    counter = UNEVEN
    return Case("scrapes failing for longer than restart_grace at the window start: increase()",
                "no left edge within the grace", _failed([OLD] * (T + 3), T - W - 1, T - W),
                _failed(counter, T - W - 1, T - W), None)


CASES: tuple[Callable[[], Case], ...] = (
    restart_inside_window, restart_just_before_window, loaded_in_grace_scraped_after,
    new_replica, vanished_replica, newer_than_window, worker_recycled_inside_window,
    directory_created_inside_window, metadata_without_start, failed_scrape_at_window_start,
    failed_scrape_at_window_end, failed_scrapes_at_both_edges_multiworker,
    new_replica_failed_scrape_at_end, restart_at_window_start_failed_scrape,
    scrapes_failed_longer_than_grace)


def _values(samples: Samples) -> str:
    out = []
    for v in samples:
        out.append("_" if v is None else "stale" if v == "stale" else repr(float(v)))
    return " ".join(out)


def _labels(d: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def _series(instance: str, started: Samples, counter: Samples,
            loaded: Samples | None = None) -> list[tuple[str, str]]:
    at = MODEL | {"instance": instance, "job": "mlmon"}
    bucket = at | {"feature": "age", "le": "+Inf"}
    return [(f"{COUNTERS_START.name}{_labels(at)}", _values(started)),
            (f"{PROFILE_LOADED.name}{_labels(at)}", _values(started if loaded is None else loaded)),
            (f"{N.OBSERVATIONS.sample}{_labels(at)}", _values(counter)),
            (f"{N.FEATURE_VALUE.bucket}{_labels(bucket)}", _values(counter))]


def case_lines(case: Case) -> list[str]:
    series = _series("a", [OLD] * len(A_COUNTER), A_COUNTER)
    series += _series("b", case.b_started, case.b_counter, case.b_loaded)
    lines = [f"  # {case.name}: {case.why}", "  - interval: 1m", "    input_series:"]
    for name, values in series:
        lines += [f"      - series: {json.dumps(name)}", f"        values: {json.dumps(values)}"]
    lines.append("    promql_expr_test:")
    w = f"{W}m"
    for rule, metric, labels in (
            (N.OBSERVATIONS_INCREASE.at(w), N.OBSERVATIONS.sample, MODEL),
            (FEATURE_HIST.bucket(w),
             N.FEATURE_VALUE.bucket, MODEL | {"feature": "age", "le": "+Inf"})):
        if case.expected is None:  # a exactly, b as increase() estimates it
            want = (f"{A_COUNT!r} + sum by ({', '.join(labels)}) "
                    f'(increase({metric}{{instance="b"}}[{w}]))')
        else:
            want = repr(case.expected)
        lines += [f"      - expr: {json.dumps(f'abs({rule} - ({want})) < bool 1e-9')}",
                  f"        eval_time: {T}m", "        exp_samples:",
                  f"          - labels: {json.dumps(_labels(labels))}", "            value: 1"]
    return lines


def render() -> str:
    config = load_config()
    if f"{W}m" not in config.windows or duration_seconds(config.restart_grace) != 60:
        raise ValueError("the cases assume a 5m window and restart_grace 1m (alerting/config.yaml)")
    lines = [
        "# GENERATED by prometheus/tests/window_cases.py: window counts when replicas restart,",
        "# appear, vanish or predate Prometheus, multi-worker targets whose workers are recycled,",
        "# and failed scrapes at the window's edges (docs/drift-and-alerts.md, window counts;",
        "# docs/multi-worker.md).",
        "rule_files:", "  - ../recording_rules.yml", "evaluation_interval: 1m", "tests:"]
    for make in CASES:
        lines += case_lines(make())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
