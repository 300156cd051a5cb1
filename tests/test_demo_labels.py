"""The demo's labelling job: which rows have arrived, and a cursor that moves only on success.

The run itself is `mlmon outcomes` against real servers (tests/integration/test_demo_labels.py);
here the command is a small Python program that copies the rows it was given, or fails.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from mlmon.demo.labels import ARRIVED_FILE, CURSOR_FILE, arrived, feed, outcomes_command
from mlmon.demo.traffic import LABEL_COLUMNS

HEADER = ",".join(LABEL_COLUMNS) + "\n"


def _labels(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + text)
    return path


def test_rows_arrived_by_now_in_file_order_whole_lines_only(tmp_path: Path) -> None:
    path = _labels(tmp_path, "a,1.5,100\nb,2.5,130\nc,3.5,110\nd,4.5,1")  # d: being written
    rows, end = arrived(path, 0, now=120.0)
    assert rows == b"a,1.5,100\n"  # c has arrived too, but waits behind b
    assert end == len(HEADER) + len("a,1.5,100\n")
    rows, end = arrived(path, end, now=200.0)
    assert rows == b"b,2.5,130\nc,3.5,110\n"  # not d: no newline yet
    assert arrived(path, end, now=200.0) == (b"", end)


def test_a_row_without_a_usable_arrival_is_fed_for_the_command_to_count(tmp_path: Path) -> None:
    path = _labels(tmp_path, "a,1.5,soon\nb,2.5\nc,3.5,999\n")
    assert arrived(path, 0, now=120.0)[0] == b"a,1.5,soon\nb,2.5\n"


def test_no_file_yet_nothing_arrived_and_a_replaced_file_starts_over(tmp_path: Path) -> None:
    assert arrived(tmp_path / "labels.csv", 0, now=1e12) == (b"", 0)
    path = _labels(tmp_path, "a,1.5,100\n")
    assert arrived(path, 10_000, now=1e12) == (b"a,1.5,100\n", path.stat().st_size)


def _copy_to(out: Path, status: int = 0) -> list[str]:
    """A stand-in for `mlmon outcomes`: copies the rows file it reads, exits with `status`."""
    code = ("import shutil, sys; "
            f"shutil.copy(sys.argv[1], {str(out)!r}) if {status} == 0 else None; "
            f"sys.exit({status})")
    return [sys.executable, "-c", code]


def test_the_cursor_moves_only_when_the_run_succeeds(tmp_path: Path) -> None:
    path = _labels(tmp_path, "a,1.5,100\nb,2.5,200\n")
    state, copied = tmp_path / "state", tmp_path / "copied.csv"
    state.mkdir()
    failing = [*_copy_to(copied, status=2), str(state / ARRIVED_FILE)]
    assert feed(path, state, failing, now=150.0) is None
    assert not (state / CURSOR_FILE).exists()  # fed again next round
    works = [*_copy_to(copied), str(state / ARRIVED_FILE)]
    assert feed(path, state, works, now=150.0) == 1
    assert copied.read_text() == HEADER + "a,1.5,100\n"  # with its header, for the command
    assert feed(path, state, works, now=150.0) == 0  # b has not arrived: no run
    assert copied.read_text() == HEADER + "a,1.5,100\n"
    assert feed(path, state, works, now=250.0) == 1
    assert copied.read_text() == HEADER + "b,2.5,200\n"
    assert int((state / CURSOR_FILE).read_text()) == path.stat().st_size


def test_the_command_feeds_both_versions_with_the_arrival_column(tmp_path: Path) -> None:
    command = outcomes_command(tmp_path / "rows.csv", [Path("p1.json"), Path("p2.json")],
                               "http://127.0.0.1:9200", "http://127.0.0.1:9091")
    assert command[1:4] == ["-m", "mlmon.cli", "outcomes"]
    text = " ".join(command)
    assert "--id-column request_id --label-column target --arrived-column arrived_at" in text
    assert "--profile p1.json --profile p2.json" in text


def test_a_damaged_cursor_feeds_from_the_start(tmp_path: Path) -> None:
    path = _labels(tmp_path, "a,1.5,100\n")
    state, copied = tmp_path / "state", tmp_path / "copied.csv"
    state.mkdir()
    (state / CURSOR_FILE).write_text("")  # cut short
    assert feed(path, state, [*_copy_to(copied), str(state / ARRIVED_FILE)], now=150.0) == 1
    assert copied.read_text() == HEADER + "a,1.5,100\n"


def test_each_demo_model_is_fed_with_its_champions_and_challengers_profiles() -> None:
    from mlmon.demo.cli import PROGRESSION, RISK
    from mlmon.demo.labels import profiles
    from mlmon.demo.model import (
        CHALLENGER_VERSION,
        MODEL_NAME,
        MODEL_VERSION,
        RISK_CLASSES,
        RISK_MODEL_NAME,
    )
    from mlmon.exporter.profile import ClassificationPrediction

    for model, name in ((PROGRESSION, MODEL_NAME), (RISK, RISK_MODEL_NAME)):
        found = profiles(model)
        assert [(p.model_name, p.model_version) for p in found] == [
            (name, MODEL_VERSION), (name, CHALLENGER_VERSION)]
    # the classifier's: its classes, which the labels the traffic writes for it name
    for profile in profiles(RISK):
        assert isinstance(profile.prediction, ClassificationPrediction)
        assert set(profile.prediction.classes) == set(RISK_CLASSES)


def _run_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: Path, status: int,
             rounds: int = 1) -> int:
    """`mlmon demo-labels --rounds N` with a stand-in for `mlmon outcomes` exiting `status`
    (and a test profile instead of the demo's trained ones)."""
    from mlmon.cli import main
    from mlmon.demo import labels as job
    from mlmon.exporter.profile import Profile
    from tests.profiles import sample_profile_dict

    monkeypatch.setattr(job, "profiles", lambda model: [Profile.from_dict(sample_profile_dict())])
    monkeypatch.setattr(job, "outcomes_command",
                        lambda rows, *a: [*_copy_to(tmp_path / "copied.csv", status),
                                          str(rows)])
    return main(["demo-labels", "--labels", str(labels), "--state-dir", str(tmp_path / "state"),
                 "--es-url", "http://127.0.0.1:9", "--pushgateway", "http://127.0.0.1:9",
                 "--every-s", "0.01", "--rounds", str(rounds),
                 "--heartbeat", str(tmp_path / "heartbeat")])


def test_a_failed_run_leaves_the_heartbeat_alone_and_exits_non_zero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _labels(tmp_path, "a,1.5,100\n")
    assert _run_job(tmp_path, monkeypatch, path, status=2) == 1
    assert not (tmp_path / "heartbeat").exists()
    assert _run_job(tmp_path, monkeypatch, path, status=0) == 0  # fed: beats
    assert (tmp_path / "heartbeat").exists()


def test_labels_that_cannot_be_read_are_one_line_and_a_missing_file_is_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _run_job(tmp_path, monkeypatch, folder, status=0) == 2
    err = capsys.readouterr().err
    assert err == f"mlmon demo-labels: error: --labels {folder}: Is a directory\n", err
    missing = tmp_path / "typo.csv"
    with caplog.at_level(logging.INFO, logger="mlmon.demo.labels"):
        assert _run_job(tmp_path, monkeypatch, missing, status=0, rounds=3) == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"--labels {missing} does not exist (yet)"]
