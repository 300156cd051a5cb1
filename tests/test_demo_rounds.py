"""The demo jobs' rounds: a heartbeat after each, a sleep between two, a stop after --rounds."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlmon.demo.rounds import add_round_arguments, run_rounds


def test_rounds_beat_after_each_and_sleep_only_between_two(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_round_arguments(parser, every_s=30.0)
    heartbeat = tmp_path / "heartbeat"
    args = parser.parse_args(["--rounds", "3", "--heartbeat", str(heartbeat)])
    assert args.every_s == 30.0
    events: list[str] = []

    def one_round() -> None:
        events.append(f"round beat={heartbeat.exists()}")
        heartbeat.unlink(missing_ok=True)

    assert run_rounds(one_round, args, sleep=lambda s: events.append(f"sleep {s:g}")) == 0
    assert events == ["round beat=False", "sleep 30", "round beat=True", "sleep 30",
                      "round beat=True"]
    assert heartbeat.exists()
