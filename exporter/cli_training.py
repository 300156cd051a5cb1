"""`mlmon training-run`: report a training run to the Pushgateway, in one line of a scheduler.

After the run (cron, an Airflow BashOperator, a CI step):

    mlmon training-run --job retrain --profile p.json --rows 120000 --duration-s 340 \\
        --metric accuracy=0.91 --pushgateway http://127.0.0.1:9091 [--failed]

or around it, timing the command and reporting a failure when it exits non-zero (the exit
status is the command's):

    mlmon training-run --job retrain --profile p.json --pushgateway URL -- python train.py

The model name, version, trained time and sha come from the profile the run wrote (`--model`,
`--version` and `--trained-at` when there is none, or to override it). `--failed`, or a
non-zero command, reports a failed run: the newest model's record stays as it was.

Every argument the command's outcome does not decide is checked before it runs, and the
Pushgateway asked whether it is ready, so a wrong line fails at once (one line, exit 2) rather
than after the training. The profile the command writes is read after it: a failed run is
reported whatever is missing, under `--model`, else the model named by the profile found before
the run, else the job's name. A failed command's status is the exit status even when its report
cannot be pushed (the push error is printed).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

from mlmon.errors import CliError
from mlmon.exporter.pushgateway import PUSHGATEWAY_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", required=True, help="the pipeline's name (the job label)")
    parser.add_argument("--pushgateway", default=os.environ.get(PUSHGATEWAY_ENV),
                        help=f"Pushgateway URL (env {PUSHGATEWAY_ENV})")
    parser.add_argument("--profile", help="the profile the run wrote: model, version, trained "
                        "time, sha, and its baseline metrics unless --metric is given")
    parser.add_argument("--model", help="model name (default: the profile's)")
    parser.add_argument("--version", help="the new model's version (default: the profile's)")
    parser.add_argument("--trained-at", help="when the model was trained: ISO-8601 or Unix "
                        "seconds (default: the profile's trained_at, else now)")
    parser.add_argument("--rows", type=int, help="rows trained on")
    parser.add_argument("--duration-s", type=float,
                        help="how long the run took (measured when a command is given)")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE",
                        help="an evaluation metric of the new model (repeatable)")
    parser.add_argument("--failed", action="store_true", help="the run failed")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- COMMAND...: run it, time it, report its outcome")


def _metrics(texts: list[str]) -> dict[str, float]:
    metrics = {}
    for text in texts:
        name, sep, value = text.partition("=")
        try:
            number = float(value) if sep and name.strip() else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise CliError(f"--metric {text!r}: expected NAME=NUMBER, e.g. accuracy=0.91")
        metrics[name.strip()] = number
    return metrics


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--trained-at {text!r}: expected ISO-8601 or Unix seconds") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _run_command(command: list[str]) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = subprocess.call(command)
    except OSError as exc:
        raise CliError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from exc
    return status, time.monotonic() - started


def _check_before_running(args: argparse.Namespace, command: list[str]) -> None:
    """Refuse, before the command runs, every argument its outcome does not decide: a wrong line
    fails in a second, not after hours of training."""
    if not args.pushgateway:
        raise CliError(f"--pushgateway URL is required (or set {PUSHGATEWAY_ENV})")
    if not args.job.strip():
        raise CliError("--job: the job name is empty")
    if args.rows is not None and args.rows < 0:
        raise CliError(f"--rows {args.rows}: must be >= 0")
    if args.duration_s is None and not command:
        raise CliError("--duration-s is required (or give the command to run after --)")
    if args.duration_s is not None and not (math.isfinite(args.duration_s)
                                            and args.duration_s >= 0):
        raise CliError(f"--duration-s {args.duration_s}: must be a number of seconds >= 0")
    if not (args.model or args.profile):
        raise CliError("--model is required without --profile")
    if not (args.failed or args.version or args.profile):
        raise CliError("a successful run needs --version or --profile")
    if command and shutil.which(command[0]) is None:
        raise CliError(f"cannot run {command[0]!r}: no such command")


def _load_profile(path: str) -> tuple[Any, str | None]:
    """The profile at `path`, or None and why not."""
    from mlmon.exporter.profile import Profile

    try:
        return Profile.load(path), None
    except (OSError, ValueError) as exc:
        return None, f"--profile {path}: {exc}"


def run(args: argparse.Namespace) -> int:
    from mlmon.errors import printable_url
    from mlmon.exporter.pushgateway import check_reachable
    from mlmon.exporter.training import (
        PUSH_TIMEOUT_S,
        TrainedModel,
        TrainingReport,
        TrainingReportError,
    )

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    metrics = _metrics(args.metric)
    trained_at = _timestamp(args.trained_at) if args.trained_at else None
    _check_before_running(args, command)
    profile = None
    if args.profile and not (args.model and (command or args.failed)):
        # Before the run: without a command this is the run's profile; with one, the profile
        # the previous run wrote names the model should this run fail before writing its own.
        profile, error = _load_profile(args.profile)
        if error and not (command or args.failed):
            raise CliError(error)
    known_name = args.model or (profile.model_name if profile else None)
    url = args.pushgateway.rstrip("/")
    check_reachable(url, PUSH_TIMEOUT_S)

    status, duration_s = 0, args.duration_s
    if command:
        status, measured = _run_command(command)
        duration_s = measured if duration_s is None else duration_s
    assert duration_s is not None  # _check_before_running: given, or measured
    model, unreadable = None, None  # unreadable: why a command that exited 0 left no model
    if not (args.failed or status != 0):
        if command and args.profile:
            profile, unreadable = _load_profile(args.profile)  # the one this run wrote
        if profile is not None:
            model = TrainedModel.from_profile(profile, metrics or None, args.version, trained_at)
        elif not unreadable:
            model = TrainedModel(args.version, trained_at or time.time(), metrics=metrics)
    # A failure is reported whatever is missing, under the job's name when nothing names the
    # model, so that MlmonTrainingFailed still fires.
    model_name = args.model or (profile.model_name if profile else None) or known_name or args.job
    report = TrainingReport(args.job, model_name, ended_at=time.time(), duration_s=duration_s,
                            rows=args.rows, model=model)
    try:
        report.push(url)
    except TrainingReportError as exc:
        if status != 0:  # the scheduler must still see the command's own failure
            print(f"mlmon training-run: error: {exc}", file=sys.stderr)
            return status
        raise CliError(f"{unreadable}; {exc}" if unreadable else str(exc)) from exc
    if unreadable:  # exited 0 but left no readable profile: no model to deploy, a failure
        raise CliError(f"{unreadable} (reported as a failed run of {args.job}/{model_name})")
    outcome = (f"succeeded: version {model.version}" if model else "failed")
    print(f"training-run {args.job}/{model_name} {outcome} ({duration_s:.0f} s) pushed to "
          f"{printable_url(url)}")
    return status
