"""The demo's scheduled jobs run in rounds, as a scheduler would run them: one round every
`--every-s` seconds (the time a round takes comes on top), a heartbeat file touched after each
round that succeeded or had nothing to do (the compose healthchecks read its age, so a job
whose every round fails turns unhealthy), and `--rounds N` to stop after N (tests), exiting 1
when the last round failed."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path


def add_round_arguments(parser: argparse.ArgumentParser, every_s: float) -> None:
    parser.add_argument("--every-s", type=float, default=every_s,
                        help="seconds between two rounds (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="stop after N rounds (0: never); exit 1 if the last one failed")
    parser.add_argument("--heartbeat", type=Path,
                        help="touched after every round that did not fail")


def run_rounds(one_round: Callable[[], bool], args: argparse.Namespace,
               sleep: Callable[[float], None] = time.sleep) -> int:
    """Call `one_round` (False: it failed) every `args.every_s` seconds until `args.rounds`
    (0: forever); the exit status: 0, or 1 when the last round failed."""
    done = 0
    while True:
        ok = one_round()
        if ok and args.heartbeat is not None:
            args.heartbeat.touch()
        done += 1
        if args.rounds and done >= args.rounds:
            return 0 if ok else 1
        sleep(args.every_s)
