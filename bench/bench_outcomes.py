"""Outcome counting speed: observe_outcome() and observe_outcomes() against observe() in the
same run, on the profile of bench/bench_exporter.py (20 numeric + 5 categorical features).

    .venv/bin/python bench/bench_outcomes.py --out bench/results

A service that learns the truth itself calls observe_outcome() once per label, beside one
observe() per prediction; the CLI counts files of labels with observe_outcomes(). Targets,
judged on same-run ratios (bench/judging.py): one observe_outcome() (with its label delay)
costs <= 0.5x one observe() of the 25-feature record, for a regression and for a classifier
(3 classes); observe_outcomes() on 10,000 labels is >= 6x faster per label than a loop of
observe_outcome() (most of its time is hashing the label strings). Absolute times (us per
label, labels/s) are reported, not judged. Every number is a median over repeated,
interleaved runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.bench_exporter import build_profile, interleaved, make_data  # noqa: E402
from bench.judging import Target, finish  # noqa: E402
from mlmon.exporter import ModelMonitor, Profile  # noqa: E402
from mlmon.exporter.profile import ClassificationPrediction  # noqa: E402

CALLS = 2000
BATCH = 10_000
CLASSES = ("high", "low", "mid")


def classifier(profile: Profile) -> Profile:
    return dataclasses.replace(profile, prediction=ClassificationPrediction(
        1000, CLASSES, (0.3, 0.3, 0.4), None))


def labels(kind: str, n: int) -> tuple[list[Any], list[Any], list[float]]:
    """Predictions, actuals and prediction times (arrived an hour to a day later)."""
    rng = np.random.default_rng(4)
    times = (1.8e9 - rng.uniform(3600, 86400, n)).tolist()
    if kind == "classification":
        pool = np.array(CLASSES, dtype=object)
        return pool[rng.integers(0, 3, n)].tolist(), pool[rng.integers(0, 3, n)].tolist(), times
    predicted = rng.normal(0, 1, n)
    return predicted.tolist(), (predicted + rng.normal(0, 0.5, n)).tolist(), times


def bench_single(kind: str, repeats: int) -> dict[str, float]:
    """One observe_outcome() per label vs one observe() per record, on the same monitor."""
    profile = build_profile()
    if kind == "classification":
        profile = classifier(profile)
    monitor = ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None,
                           clock=lambda: 1.8e9)
    cols, preds = make_data(CALLS)
    rows = [{k: (v[i] if isinstance(v[i], str) else float(v[i])) for k, v in cols.items()}
            for i in range(CALLS)]
    ys: list[Any] = (preds.tolist() if kind == "regression"
                     else [CLASSES[i % 3] for i in range(CALLS)])
    predicted, actual, times = labels(kind, CALLS)

    def outcomes() -> None:
        observe_outcome = monitor.observe_outcome
        for p, a, t in zip(predicted, actual, times, strict=True):
            observe_outcome(p, a, predicted_at=t)

    def records() -> None:
        observe = monitor.observe
        for row, y in zip(rows, ys, strict=True):
            observe(row, y)

    outcomes()  # warm up
    records()
    t_outcome, t_observe, speedup = interleaved(outcomes, records, repeats)
    return {"outcome_us": t_outcome / CALLS * 1e6, "observe_us": t_observe / CALLS * 1e6,
            "cost_ratio": 1.0 / speedup}


def bench_batch(repeats: int) -> dict[str, float]:
    """observe_outcomes() on 10,000 labels vs a loop of observe_outcome() (a classifier)."""
    monitor = ModelMonitor(classifier(build_profile()), CollectorRegistry(),
                           multiproc_directory=None, clock=lambda: 1.8e9)
    predicted, actual, times = labels("classification", BATCH)
    p_arr, a_arr, t_arr = (np.array(predicted, dtype=object), np.array(actual, dtype=object),
                           np.array(times))

    def batch() -> None:
        monitor.observe_outcomes(p_arr, a_arr, predicted_at=t_arr)

    def loop() -> None:
        observe_outcome = monitor.observe_outcome
        for p, a, t in zip(predicted, actual, times, strict=True):
            observe_outcome(p, a, predicted_at=t)

    batch()
    t_batch, t_loop, speedup = interleaved(batch, loop, max(5, repeats // 3))
    return {"batch_ms": t_batch * 1e3, "labels_per_s": BATCH / t_batch,
            "loop_ms": t_loop * 1e3, "speedup": speedup}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results", help="directory for the JSON result")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    regression = bench_single("regression", args.repeats)
    classification = bench_single("classification", args.repeats)
    batch = bench_batch(args.repeats)
    targets = [
        Target(f"observe_outcome() {kind}, time vs observe() of 25 features", r["cost_ratio"],
               0.5, at_least=False,
               reported=f"{r['outcome_us']:.2f} us vs observe() {r['observe_us']:.2f} us")
        for kind, r in (("regression", regression), ("classifier", classification))
    ]
    targets.append(Target(
        f"observe_outcomes() {BATCH:,} labels vs a loop of observe_outcome()", batch["speedup"],
        6, at_least=True,
        reported=f"{batch['labels_per_s'] / 1e6:.2f} M labels/s; {batch['batch_ms']:.2f} ms vs "
                 f"loop {batch['loop_ms']:.1f} ms"))
    result = {"regression": regression, "classification": classification, "batch": batch,
              "repeats": args.repeats, "python": platform.python_version(),
              "cpus": os.cpu_count()}
    return finish("bench_outcomes", args.out, "bench_outcomes.json", result, targets)


if __name__ == "__main__":
    sys.exit(main())
