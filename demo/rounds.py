"""The demo's scheduled jobs run in rounds, as a scheduler would run them: one round every
`--every-s` seconds (the time a round takes comes on top), a heartbeat file touched after each
(the compose healthchecks read its age), and `--rounds N` to stop after N (tests)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path


def add_round_arguments(parser: argparse.ArgumentParser, every_s: float) -> None:
    parser.add_argument("--every-s", type=float, default=every_s,
                        help="seconds between two rounds (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
    parser.add_argument("--heartbeat", type=Path, help="touched after every round")


def run_rounds(one_round: Callable[[], None], args: argparse.Namespace,
               sleep: Callable[[float], None] = time.sleep) -> int:
    """Call `one_round` every `args.every_s` seconds until `args.rounds` (0: forever); 0."""
    done = 0
    while True:
        one_round()
        if args.heartbeat is not None:
            args.heartbeat.touch()
        done += 1
        if args.rounds and done >= args.rounds:
            return 0
        sleep(args.every_s)
