"""Training-run reports (mlmon/exporter/training.py) and `mlmon training-run`'s argument handling.

What the Pushgateway and Prometheus make of a push: tests/integration/test_training_runs.py.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mlmon.names as N
from mlmon.cli import main
from mlmon.exporter.profile import Profile
from mlmon.exporter.pushgateway import PushError, Pushgateway
from mlmon.exporter.training import (
    TrainedModel,
    TrainingReport,
    TrainingReportError,
    TrainingRun,
)
from tests.profiles import sample_profile_dict

TRAINED = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()  # tests/profiles.py's


def _families(report: TrainingReport) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {family.name: [(s.labels, s.value) for s in family.samples]
            for family in report.registry().collect()}


def test_a_successful_run_carries_the_run_and_the_new_model() -> None:
    model = TrainedModel("4", 1000.0, "abc123", {"accuracy": 0.91, "auc": 0.8})
    report = TrainingReport("retrain", "churn", ended_at=2000.0, duration_s=340.0, rows=120000,
                            model=model)
    assert _families(report) == {
        N.TRAINING_RUN_TIMESTAMP.name: [({}, 2000.0)],
        N.TRAINING_RUN_SUCCESS.name: [({}, 1.0)],
        N.TRAINING_RUN_DURATION.name: [({}, 340.0)],
        N.TRAINING_RUN_ROWS.name: [({}, 120000.0)],
        N.TRAINING_LAST_SUCCESS.name: [({}, 2000.0)],
        N.TRAINING_MODEL_TRAINED.name: [({"model_version": "4", "profile_sha": "abc123"},
                                          1000.0)],
        N.TRAINING_MODEL_METRIC.name: [({"metric": "accuracy"}, 0.91), ({"metric": "auc"}, 0.8)],
    }


def test_a_failed_run_carries_only_the_run_so_the_newest_model_stays() -> None:
    families = _families(TrainingReport("retrain", "churn", ended_at=2000.0, duration_s=5.0))
    assert set(families) == {s.name for s in N.TRAINING_RUN_SERIES}
    assert families[N.TRAINING_RUN_SUCCESS.name] == [({}, 0.0)]
    assert math.isnan(families[N.TRAINING_RUN_ROWS.name][0][1])  # not said: NaN, not 0


@pytest.mark.parametrize("report, message", [
    (TrainingReport("", "churn", 1.0, 1.0), "job name is empty"),
    (TrainingReport("retrain", "churn", 1.0, -1.0), "not a time >= 0"),
    (TrainingReport("retrain", "churn", 1.0, math.inf), "not a time >= 0"),
    (TrainingReport("retrain", "churn", 1.0, 1.0, rows=-5), "rows -5 is negative"),
    (TrainingReport("retrain", "churn", 1.0, 1.0, model=TrainedModel("", 1.0)),
     "version is empty"),
    (TrainingReport("retrain", "churn", 1.0, 1.0,
                    model=TrainedModel("4", 1.0, metrics={"auc": math.nan})),
     "not a finite number"),
])
def test_bad_values_are_refused_before_anything_is_pushed(report: TrainingReport,
                                                          message: str) -> None:
    with pytest.raises(TrainingReportError, match=message):
        report.push("http://127.0.0.1:1")  # never reached: the check comes first


def test_the_model_comes_from_its_profile_as_the_exporter_will_export_it() -> None:
    profile = Profile.from_dict(sample_profile_dict())
    model = TrainedModel.from_profile(profile)
    assert model == TrainedModel("3", TRAINED, profile.sha, {"mae": 0.5})
    # The exporter exports the same trained time for the deployed profile: comparable exactly.
    from mlmon.exporter.layout import trained_timestamp
    assert trained_timestamp(profile) == model.trained_at
    overridden = TrainedModel.from_profile(profile, {"rmse": 1.0}, version="4", trained_at=5.0)
    assert overridden == TrainedModel("4", 5.0, profile.sha, {"rmse": 1.0})


def test_an_unreachable_pushgateway_is_retried_then_one_error_naming_it() -> None:
    report = TrainingReport("retrain", "churn", 1.0, 1.0)
    sleeps: list[float] = []
    with pytest.raises(TrainingReportError, match=r"^cannot reach the Pushgateway "
                       r"http://127\.0\.0\.1:1 to push job=retrain model=churn: .*refused "
                       r"\(3 attempts\)$") as raised:
        report.push(Pushgateway("http://127.0.0.1:1", timeout_s=5, sleep=sleeps.append))
    assert sleeps == [0.5, 1.0]
    assert isinstance(raised.value.__cause__, PushError)
    with pytest.raises(TrainingReportError, match="'ftp://x': not a Pushgateway URL"):
        report.push("ftp://x")
    with pytest.raises(TrainingReportError, match="'pgw 9091': not a Pushgateway URL"):
        TrainingRun("retrain", "churn", pushgateway="pgw 9091")  # before the training


@pytest.mark.parametrize("args, message", [
    (["--metric", "accuracy"], "--metric 'accuracy': expected NAME=NUMBER"),
    (["--metric", "accuracy=high"], "--metric 'accuracy=high': expected NAME=NUMBER"),
    (["--metric", "=0.9"], "--metric '=0.9': expected NAME=NUMBER"),
    (["--duration-s", "1", "--model", "churn"], "needs --version or --profile"),
    (["--duration-s", "1", "--version", "4"], "--model is required"),
    (["--model", "churn", "--version", "4"], "--duration-s is required"),
    (["--duration-s", "1", "--model", "churn", "--version", "4", "--trained-at", "yesterday"],
     "--trained-at 'yesterday': expected ISO-8601 or Unix seconds"),
    (["--duration-s", "1", "--profile", "missing.json"], "--profile missing.json"),
    (["--duration-s", "1", "--model", "churn", "--version", "4", "--pushgateway", ""],
     "--pushgateway URL is required"),
    (["--model", "churn", "--version", "4", "--", "no-such-command-mlmon"],
     "cannot run 'no-such-command-mlmon'"),
])
def test_cli_errors_are_one_line_naming_what_was_typed(args: list[str], message: str, capsys,
                                                       monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    status = main(["training-run", "--job", "retrain", "--pushgateway", "http://127.0.0.1:1",
                   *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("mlmon training-run: error: ") and err.count("\n") == 1
    assert message in err


@pytest.fixture
def gateway_ready(monkeypatch) -> None:
    """The /-/ready check passes, so the push itself is what fails (nothing listens on :1): a
    Pushgateway gone during the run. With a real one: tests/integration/test_training_runs.py."""
    import mlmon.exporter.pushgateway
    monkeypatch.setattr(mlmon.exporter.pushgateway, "check_reachable", lambda url, timeout: None)


def test_cli_reads_the_model_from_the_profile_before_pushing(tmp_path: Path, capsys,
                                                             gateway_ready) -> None:
    """Everything resolved from the profile; only the push itself fails."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(sample_profile_dict()))
    status = main(["training-run", "--job", "retrain", "--profile", str(path), "--duration-s",
                   "3", "--pushgateway", "http://127.0.0.1:1"])
    assert status == 2
    assert "to push job=retrain model=churn" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--model", "churn"], "a successful run needs --version or --profile"),
    (["--version", "4"], "--model is required without --profile"),
    (["--model", "churn", "--version", "4", "--metric", "auc"], "--metric 'auc'"),
    (["--model", "churn", "--version", "4", "--trained-at", "soon"], "--trained-at 'soon'"),
    (["--model", "churn", "--version", "4", "--rows", "-1"], "--rows -1: must be >= 0"),
    (["--model", "churn", "--version", "4", "--duration-s", "-1"], "--duration-s -1.0"),
    (["--model", "churn", "--version", "4", "--job", " "], "--job: the job name is empty"),
    # A correct line, but nothing listens at the Pushgateway's address.
    (["--model", "churn", "--version", "4"], "cannot reach the Pushgateway http://127.0.0.1:1"),
])
def test_a_misconfigured_line_fails_before_running_the_command(
        args: list[str], message: str, capsys, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    status = main(["training-run", "--job", "retrain", "--pushgateway", "http://127.0.0.1:1",
                   *args, "--", "touch", str(ran)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("mlmon training-run: error: ") and err.count("\n") == 1
    assert message in err
    assert not ran.exists()  # the command never ran


def test_a_failed_command_keeps_its_status_when_its_report_cannot_be_pushed(
        capsys, tmp_path: Path, gateway_ready) -> None:
    ran = tmp_path / "ran"
    status = main(["training-run", "--job", "retrain", "--model", "churn", "--version", "4",
                   "--pushgateway", "http://127.0.0.1:1", "--",
                   "sh", "-c", f"touch {ran}; exit 3"])
    err = capsys.readouterr().err
    assert ran.exists()
    assert status == 3  # the command's, as the scheduler must see it, not the push's 2
    assert err.startswith("mlmon training-run: error: cannot reach the Pushgateway "
                          "http://127.0.0.1:1 to push job=retrain model=churn")
    assert err.count("\n") == 1


@pytest.mark.parametrize("before, expected", [
    (True, "job=retrain model=churn"),  # the profile the previous run left names the model
    (False, "job=retrain model=retrain"),  # nothing names it: the job's name, so it is seen
])
def test_a_failed_command_without_model_is_reported_under_what_is_known(
        before: bool, expected: str, capsys, tmp_path: Path, gateway_ready) -> None:
    path = tmp_path / "p.json"
    if before:
        path.write_text(json.dumps(sample_profile_dict()))
    status = main(["training-run", "--job", "retrain", "--profile", str(path),
                   "--pushgateway", "http://127.0.0.1:1", "--",
                   "sh", "-c", f"rm -f {path}; exit 4"])
    assert status == 4
    assert f"to push {expected}: " in capsys.readouterr().err
