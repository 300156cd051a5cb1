"""`mlmon demo-jobs` against a real Pushgateway: one round pushes a batch run of the demo model
(healthy, then drifted on the schedule) and a training run of the job the late-training alert
watches."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import mlmon.names as N
from mlmon.alerting.config import load
from mlmon.demo.jobs import BATCH_JOB, TRAINING_JOB
from tests.integration import prom_servers

pytestmark = pytest.mark.integration

pushgateway_factory = prom_servers.pushgateway_factory
REPO = Path(__file__).resolve().parents[2]


def _samples(url: str) -> dict[str, float]:
    """`series{labels}` -> value, as the Pushgateway exposes them (labels sorted by name)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:  # noqa: S310
        lines = answer.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines
            if line.startswith("mlmon_")}


def _round(gateway: str, healthy_s: str, tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    done = subprocess.run([sys.executable, "-m", "mlmon.cli", "demo-jobs", "--pushgateway",
                           gateway, "--rounds", "1", "--rows", "400", "--healthy-s", healthy_s,
                           "--heartbeat", str(heartbeat)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert heartbeat.exists()


def test_one_round_pushes_a_batch_run_and_a_training_run(tmp_path: Path,
                                                          pushgateway_factory) -> None:
    assert TRAINING_JOB in load().alert("MlmonTrainingLate")["schedules"]
    gateway = pushgateway_factory().url
    _round(gateway, "600", tmp_path)  # healthy: no unseen channel
    group = (f'batch_job="{BATCH_JOB}",instance="",job="{N.BATCH_PUSH_JOB}",model="diabetes",'
             'model_version="1"')
    healthy = _samples(gateway)
    assert healthy[f"{N.BATCH_RUN_ROWS.name}{{{group}}}"] == 400
    assert healthy[f"{N.BATCH_RUN_SUCCESS.name}{{{group}}}"] == 1
    training = f'instance="",job="{TRAINING_JOB}",model="diabetes"'
    assert healthy[f"{N.TRAINING_RUN_SUCCESS.name}{{{training}}}"] == 1
    assert healthy[f"{N.TRAINING_RUN_ROWS.name}{{{training}}}"] == 442  # the diabetes data
    unseen = (f'{N.FEATURE_CATEGORY.sample}{{batch_job="{BATCH_JOB}",category="__unseen__",'
              f'feature="channel",instance="",job="{N.BATCH_PUSH_JOB}",model="diabetes",'
              'model_version="1"}')
    assert healthy[unseen] == 0
    _round(gateway, "0", tmp_path)  # drifted from the start: unseen channels, replacing
    drifted = _samples(gateway)
    assert 0 < drifted[unseen] < 400
    assert drifted[f"{N.BATCH_RUN_ROWS.name}{{{group}}}"] == 400  # replaced, not added


def test_a_round_whose_reports_do_not_arrive_beats_not_and_exits_1(
        tmp_path: Path, pushgateway_factory) -> None:
    pgw = pushgateway_factory()
    pgw.stop()  # its port answers no more: every push fails, after its retries
    heartbeat = tmp_path / "heartbeat"
    done = subprocess.run([sys.executable, "-m", "mlmon.cli", "demo-jobs", "--pushgateway",
                           pgw.url, "--rounds", "1", "--rows", "50", "--heartbeat",
                           str(heartbeat)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert "cannot reach the Pushgateway" in done.stderr and "Traceback" not in done.stderr
    assert not heartbeat.exists()
