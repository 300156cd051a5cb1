"""`mlmon demo-jobs`: the demo's scheduled pipelines, so the dashboards show a batch model beside
the online one, and a training job.

Every `--every-s` seconds (a nightly job, in demo timing), two jobs run one after the other, each
reporting to the Pushgateway as a production pipeline would:

- a batch scoring run (`mlmon.batch.BatchRun`, batch job `demo-scoring`): `--rows` records
  drawn like the traffic generator's, healthy for `--healthy-s` seconds after the start and
  drifted for `--drift-s` after that (the same schedule as `mlmon traffic`, so the batch drifts
  with the online model), scored by the demo model;
- a retraining (`mlmon.exporter.training.TrainingRun`, job `retrain`, the job
  alerting/config.yaml's MlmonTrainingLate schedule lists): the model trained again on the
  reference data, reported with its profile and its R^2.

A job that fails is reported as failed by its own API and logged; the loop goes on, as a
scheduler does. A heartbeat file is touched after each round whose two reports reached the
Pushgateway (the compose healthcheck: a job that reports nothing turns unhealthy);
`--rounds N` exits 1 when the last round's reports did not.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from typing import Any

from mlmon.demo.rounds import add_round_arguments, run_rounds
from mlmon.demo.scenario import HEALTHY, Schedule, next_record
from mlmon.exporter.pushgateway import PUSHGATEWAY_ENV

BATCH_JOB = "demo-scoring"
TRAINING_JOB = "retrain"
_log = logging.getLogger("mlmon.demo.jobs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--pushgateway", default=env(PUSHGATEWAY_ENV),
                        help=f"Pushgateway URL (env {PUSHGATEWAY_ENV})")
    add_round_arguments(parser, every_s=120.0)
    parser.add_argument("--rows", type=int, default=2000, help="rows per batch run")
    parser.add_argument("--healthy-s", type=float, default=180.0,
                        help="healthy batches for this long after the start (as mlmon traffic)")
    parser.add_argument("--drift-s", type=float, default=3600.0,
                        help="then drifted batches for this long")
    parser.add_argument("--seed", type=int, default=11)


def score_batch(model: Any, profile: Any, records: list[dict[str, Any]], phase: str, rows: int,
                pushgateway: str, rng: random.Random) -> Any:
    """One batch scoring run; returns the BatchRun (its outcome, rows and push_error)."""
    from mlmon.batch import BatchRun
    from mlmon.demo.model import to_frame

    frame = to_frame([next_record(records, phase, rng) for _ in range(rows)])
    with BatchRun(profile, job=BATCH_JOB, pushgateway=pushgateway,
                  environment="demo") as run:
        run.observe_batch(frame, model.predict(frame))
    return run


def retrain(pushgateway: str) -> None:
    """One retraining, reported with the profile it builds (raises TrainingReportError when
    the report cannot be pushed)."""
    from sklearn.metrics import r2_score

    from mlmon.demo.model import MODEL_NAME, build_profile, train
    from mlmon.exporter.training import TrainingRun

    with TrainingRun(TRAINING_JOB, MODEL_NAME, pushgateway=pushgateway) as run:
        model = train()
        r2 = float(r2_score(model.reference["target"], model.predict(model.reference)))
        run.succeeded(profile=build_profile(model), rows=len(model.reference),
                      metrics={"r2": r2})


def run(args: argparse.Namespace) -> int:
    from mlmon.demo.model import build_profile, train
    from mlmon.errors import CliError
    from mlmon.exporter.pushgateway import Pushgateway
    from mlmon.exporter.training import TrainingReportError

    if not args.pushgateway:
        raise CliError(f"--pushgateway URL is required (or set {PUSHGATEWAY_ENV})")
    if args.every_s <= 0 or args.rows <= 0:
        raise CliError(f"--every-s and --rows must be > 0, got {args.every_s}, {args.rows}")
    try:
        schedule = Schedule(healthy_s=args.healthy_s, drift_s=args.drift_s)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:  # each round's runs build their client from the URL: refuse a bad one once, here
        Pushgateway(args.pushgateway)
    except ValueError as exc:
        raise CliError(f"--pushgateway {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="mlmon demo-jobs: %(message)s")
    model = train()
    profile = build_profile(model)
    records = model.records()
    rng = random.Random(args.seed)
    started = time.monotonic()

    def one_round() -> bool:
        phase = schedule.phase(time.monotonic() - started) or HEALTHY
        batch = score_batch(model, profile, records, phase, args.rows, args.pushgateway, rng)
        _log.info("batch %s (%s): %s, %d rows%s", BATCH_JOB, phase, batch.outcome, batch.rows,
                  f", not pushed: {batch.push_error}" if batch.push_error else "")
        try:
            retrain(args.pushgateway)
            _log.info("training %s: reported", TRAINING_JOB)
        except TrainingReportError as exc:
            _log.error("training %s: %s", TRAINING_JOB, exc)
            return False
        return batch.push_error is None

    return run_rounds(one_round, args)
