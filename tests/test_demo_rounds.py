"""The demo jobs' rounds: a heartbeat after each round that did not fail, a sleep between two,
a stop after --rounds with the last round's verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlmon.demo.rounds import add_round_arguments, run_rounds


def _args(tmp_path: Path, rounds: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_round_arguments(parser, every_s=30.0)
    return parser.parse_args(["--rounds", str(rounds), "--heartbeat",
                              str(tmp_path / "heartbeat")])


def test_rounds_beat_after_each_and_sleep_only_between_two(tmp_path: Path) -> None:
    args = _args(tmp_path, 3)
    heartbeat = args.heartbeat
    assert args.every_s == 30.0
    events: list[str] = []

    def one_round() -> bool:
        events.append(f"round beat={heartbeat.exists()}")
        heartbeat.unlink(missing_ok=True)
        return True

    assert run_rounds(one_round, args, sleep=lambda s: events.append(f"sleep {s:g}")) == 0
    assert events == ["round beat=False", "sleep 30", "round beat=True", "sleep 30",
                      "round beat=True"]
    assert heartbeat.exists()


def test_a_failed_round_leaves_the_heartbeat_alone_and_a_failed_last_round_exits_1(
        tmp_path: Path) -> None:
    args = _args(tmp_path, 1)
    assert run_rounds(lambda: False, args, sleep=lambda s: None) == 1
    assert not args.heartbeat.exists()
    verdicts = iter([True, False])  # the first round beats; the second fails, and is the last
    events: list[str] = []

    def one_round() -> bool:
        events.append(f"round beat={args.heartbeat.exists()}")
        args.heartbeat.unlink(missing_ok=True)
        return next(verdicts)

    assert run_rounds(one_round, _args(tmp_path, 2), sleep=lambda s: None) == 1
    assert events == ["round beat=False", "round beat=True"] and not args.heartbeat.exists()
    verdicts = iter([False, True])  # a round that succeeds after a failed one: exit 0
    assert run_rounds(one_round, _args(tmp_path, 2), sleep=lambda s: None) == 0
    assert args.heartbeat.exists()
