"""BatchRun and `mlmon batch` against a real Pushgateway: what a run pushes, and when.

A successful run replaces its group (PUT: no accumulation across runs); a failed run pushes
its outcome only (POST), keeping the last successful run's counts and last-success time; an
unreachable Pushgateway is retried, then reported (API) or one line and exit 2 (CLI).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import mlmon.names as N
from mlmon.batch import BatchRun, PushError
from mlmon.cli import main
from mlmon.exporter import ModelMonitor
from mlmon.exporter.profile import Profile
from tests.integration import prom_servers
from tests.integration.prom_servers import Server, free_port
from tests.profiles import sample_profile_dict

pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration

JOB = "nightly-scoring"


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"row-{seed}-{i}" for i in range(n)],
        "age": rng.normal(40, 12, n).round(1),
        "income": rng.normal(2000, 600, n).round(0),
        "city": rng.choice(["paris", "rome", "berlin", "lyon"], n),
        "review": rng.choice(["good service", "the bad", "great app"], n),
        "pred": rng.normal(0, 1, n),
    })


@pytest.fixture
def profile() -> Profile:
    return Profile.from_dict(sample_profile_dict())


@pytest.fixture
def pgw(pushgateway_factory: Callable[..., Server]) -> Server:
    return pushgateway_factory()


def pushed(pgw: Server, job: str = JOB) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, labels without the grouping key) -> value, for the group of `job`."""
    with urllib.request.urlopen(f"{pgw.url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get(N.BATCH_LABEL) != job:
                continue
            assert s.labels["job"] == N.BATCH_PUSH_JOB
            rest = _labels({k: v for k, v in s.labels.items()
                            if k not in ("job", "instance", N.BATCH_LABEL)})
            out[(s.name, rest)] = s.value
    return out


def _labels(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Sorted labels, bucket bounds as floats (the Pushgateway writes 25.0 as 25)."""
    return tuple(sorted((k, str(float(v)) if k in ("le", "previous_le") else v)
                        for k, v in labels.items()))


def _model(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"model": "churn", "model_version": "3", **labels}.items()))


def _expected(profile: Profile, frame: pd.DataFrame) -> dict[Any, float]:
    """What a service's monitor exports for the same rows (the pushed counts must equal it)."""
    monitor = ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None)
    monitor.observe_batch(frame[["age", "income", "city", "review"]], frame["pred"])
    out = {}
    for family in monitor.registry.collect():
        if family.name.startswith("mlmon_") and family.name not in {
                s.name for s in N.BATCH_NOT_PUSHED}:
            for s in family.samples:
                if s.name != N.COUNTERS_START.name:
                    out[(s.name, _labels(s.labels))] = s.value
    return out


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_a_run_pushes_its_counts_and_the_next_run_replaces_them(profile: Profile,
                                                                pgw: Server) -> None:
    first, second = _frame(3000, seed=1), _frame(1200, seed=2)
    with BatchRun(profile, job=JOB, pushgateway=pgw.url, clock=Clock(1000.0)) as run:
        for part in (first.iloc[:1000], first.iloc[1000:]):
            run.observe_batch(part[["age", "income", "city", "review"]], part["pred"])
    assert (run.outcome, run.rows, run.push_error) == ("success", 3000, None)
    got = pushed(pgw)
    expected = _expected(profile, first)
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    # run series: start 1001 (the monitor's load), end at the exit, success 1
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 1.0
    assert got[(N.BATCH_RUN_ROWS.name, _model())] == 3000
    start, end = got[(N.BATCH_RUN_START.name, _model())], got[(N.BATCH_RUN_END.name, _model())]
    assert start == 1001.0 and end > start
    assert got[(N.BATCH_RUN_DURATION.name, _model())] == end - start
    assert got[(N.BATCH_LAST_SUCCESS.name, _model())] == end
    assert got[(N.COUNTERS_START.name, _model())] == start
    assert not any(name.startswith(("process_", N.REQUESTS.name)) for name, _ in got)

    with BatchRun(profile, job=JOB, pushgateway=pgw.url, clock=Clock(5000.0)) as run:
        run.observe_batch(second[["age", "income", "city", "review"]], second["pred"])
    got = pushed(pgw)
    expected = _expected(profile, second)
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-12)  # replaced
    assert got[(N.OBSERVATIONS.sample, _model())] == 1200
    assert got[(N.BATCH_RUN_START.name, _model())] == 5001.0


def test_a_failed_run_pushes_its_outcome_and_keeps_the_last_success(profile: Profile,
                                                                    pgw: Server) -> None:
    good = _frame(500)
    with BatchRun(profile, job=JOB, pushgateway=pgw.url, clock=Clock(1000.0)) as run:
        run.observe_batch(good[["age", "income", "city", "review"]], good["pred"])
    success_end = pushed(pgw)[(N.BATCH_LAST_SUCCESS.name, _model())]
    with pytest.raises(RuntimeError, match="model crashed"):
        with BatchRun(profile, job=JOB, pushgateway=pgw.url, clock=Clock(9000.0)) as run:
            part = _frame(70, seed=3)
            run.observe_batch(part[["age", "income", "city", "review"]], part["pred"])
            raise RuntimeError("model crashed")
    assert run.outcome == "failure" and run.push_error is None
    got = pushed(pgw)
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 0.0
    assert got[(N.BATCH_RUN_ROWS.name, _model())] == 70
    assert got[(N.BATCH_RUN_START.name, _model())] == 9001.0
    # the last successful run's counts and time stay: the :batch rules read a complete batch
    assert got[(N.BATCH_LAST_SUCCESS.name, _model())] == success_end
    assert got[(N.OBSERVATIONS.sample, _model())] == 500


def test_a_first_run_that_fails_is_visible(profile: Profile, pgw: Server) -> None:
    run = BatchRun(profile, job="first", pushgateway=pgw.url)
    run.fail()
    got = pushed(pgw, "first")
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 0.0
    assert (N.BATCH_LAST_SUCCESS.name, _model()) not in got


def test_an_unreachable_pushgateway_is_retried_then_reported(profile: Profile) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sleeps: list[float] = []
    with BatchRun(profile, job=JOB, pushgateway=url, push_attempts=3,
                  sleep=sleeps.append) as run:
        run.observe_batch({"age": [30.0]}, [0.5])
    assert run.outcome == "success" and sleeps == [0.5, 1.0] and run.failed_pushes == 3
    assert run.push_error is not None and url in run.push_error
    strict = BatchRun(profile, job=JOB, pushgateway=url, push_attempts=1,
                      raise_on_push_error=True)
    with pytest.raises(PushError, match=f"^cannot reach the Pushgateway {url} to push "
                       f"job=mlmon_batch batch_job={JOB} model=churn model_version=3: "):
        strict.succeed()
    # the job's own exception wins over the push's
    with pytest.raises(KeyError):
        with BatchRun(profile, job=JOB, pushgateway=url, push_attempts=1,
                      raise_on_push_error=True):
            raise KeyError("pred")


def test_bad_arguments_raise_before_any_work(profile: Profile, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job"):
        BatchRun(profile, job=" ", pushgateway=None)
    from mlmon.exporter.profile import ProfileError

    with pytest.raises(ProfileError):
        BatchRun(tmp_path / "missing.json", job=JOB, pushgateway=None)


# ---- the CLI -----------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, profile: Profile) -> Iterator[dict[str, Path]]:
    frame = _frame(2500)
    paths = {"profile": tmp_path / "p.json", "csv": tmp_path / "s.csv",
             "parquet": tmp_path / "s.parquet"}
    paths["profile"].write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"])
    yield paths


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_cli_pushes_what_the_api_pushes(kind: str, files: dict[str, Path], profile: Profile,
                                        pgw: Server, capsys: Any) -> None:
    status = main(["batch", str(files[kind]), "--profile", str(files["profile"]),
                   "--prediction-column", "pred", "--pushgateway", pgw.url, "--job", JOB,
                   "--chunk-rows", "700"])
    assert status == 0, capsys.readouterr().err
    got = pushed(pgw)
    expected = _expected(profile, _frame(2500))
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 1.0
    assert "2,500 rows of churn version 3" in capsys.readouterr().out


def test_cli_unreachable_pushgateway_is_one_line(files: dict[str, Path], capsys: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status = main(["batch", str(files["csv"]), "--profile", str(files["profile"]),
                   "--prediction-column", "pred", "--pushgateway", url])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"mlmon batch: error: cannot reach the "
                                                   f"Pushgateway {url}")


def test_cli_unreadable_file_pushes_the_failure(files: dict[str, Path], pgw: Server,
                                                capsys: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = files["csv"].read_bytes().splitlines(keepends=True)
    # a city that is not UTF-8 half-way: reading stops at the chunk that holds it
    fields = lines[1500].split(b",")
    fields[3] += b"\xff"
    bad.write_bytes(b"".join(lines[:1500]) + b",".join(fields) + b"".join(lines[1501:]))
    status = main(["batch", str(bad), "--profile", str(files["profile"]),
                   "--prediction-column", "pred", "--pushgateway", pgw.url, "--job", JOB,
                   "--chunk-rows", "500"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "the run's failure was pushed" in err
    got = pushed(pgw)
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 0.0
    assert got[(N.BATCH_RUN_ROWS.name, _model())] == 1000  # the two chunks before the bad one


@pytest.mark.parametrize("data, option, message", [
    ("parquet", "yhat", "--prediction-column 'yhat': no such column in {path}"),
    ("missing", "pred", "{path}: cannot read: no such file"),
])
def test_cli_a_run_that_cannot_start_is_a_failed_run(data: str, option: str, message: str,
                                                      files: dict[str, Path], pgw: Server,
                                                      capsys: Any, tmp_path: Path) -> None:
    # a nightly job whose input is missing did fail: the run's failure is pushed, one line
    path = files.get(data, tmp_path / "missing.parquet")
    status = main(["batch", str(path), "--profile", str(files["profile"]),
                   "--prediction-column", option, "--pushgateway", pgw.url, "--job", JOB])
    assert status == 2
    assert capsys.readouterr().err == (f"mlmon batch: error: {message.format(path=path)} "
                                       "(the run's failure was pushed)\n")
    got = pushed(pgw)
    assert got[(N.BATCH_RUN_SUCCESS.name, _model())] == 0.0
    assert got[(N.BATCH_RUN_ROWS.name, _model())] == 0
