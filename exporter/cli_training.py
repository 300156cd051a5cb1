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
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import time
from datetime import datetime, timezone

from mlmon.errors import CliError

PUSHGATEWAY_ENV = "MLMON_PUSHGATEWAY_URL"


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


def run(args: argparse.Namespace) -> int:
    from mlmon.exporter.profile import Profile
    from mlmon.exporter.training import TrainedModel, TrainingReport, TrainingReportError

    if not args.pushgateway:
        raise CliError(f"--pushgateway URL is required (or set {PUSHGATEWAY_ENV})")
    metrics = _metrics(args.metric)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    status, duration_s = 0, args.duration_s
    if command:
        status, measured = _run_command(command)
        duration_s = measured if duration_s is None else duration_s
    if duration_s is None:
        raise CliError("--duration-s is required (or give the command to run after --)")
    failed = args.failed or status != 0
    profile = None
    if args.profile and not (failed and args.model):
        # A failed run may have written no profile: only the model name is needed then.
        try:
            profile = Profile.load(args.profile)
        except (OSError, ValueError) as exc:
            if not failed:
                raise CliError(f"--profile {args.profile}: {exc}") from exc
    model_name = args.model or (profile.model_name if profile else None)
    if not model_name:
        raise CliError("--model is required without a readable --profile")
    trained_at = _timestamp(args.trained_at) if args.trained_at else None
    try:
        model = None
        if not failed:
            if profile is not None:
                model = TrainedModel.from_profile(profile, metrics or None, args.version,
                                                  trained_at)
            elif args.version:
                model = TrainedModel(args.version, trained_at or time.time(), metrics=metrics)
            else:
                raise CliError("a successful run needs --version or --profile")
        report = TrainingReport(args.job, model_name, ended_at=time.time(),
                                duration_s=duration_s, rows=args.rows, model=model)
        report.push(args.pushgateway)
    except TrainingReportError as exc:
        raise CliError(str(exc)) from exc
    outcome = (f"succeeded: version {model.version}" if model else "failed")
    print(f"training-run {args.job}/{model_name} {outcome} ({duration_s:.0f} s) pushed to "
          f"{args.pushgateway}")
    return status
