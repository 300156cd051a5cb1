"""BatchRun without a server: what it counts, its run series, and how a run ends once.

Pushing is tested against a real Pushgateway (tests/integration/test_batch_push.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

import mlmon.names as N
from mlmon import BatchRun
from mlmon.batch.run import _records
from mlmon.exporter import ModelMonitor
from mlmon.exporter.profile import Profile
from tests.profiles import sample_profile_dict


@pytest.fixture
def profile() -> Profile:
    return Profile.from_dict(sample_profile_dict())


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(2000, 500, n),
                         "city": rng.choice(["paris", "rome", "oslo"], n),
                         "review": rng.choice(["good", "bad the"], n)})


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in registry.collect()
            if f.name.startswith("mlmon_") and f.name != N.PROFILE_LOADED.name
            for s in f.samples if s.name != N.COUNTERS_START.name}


def test_chunks_count_as_one_batch_would(profile: Profile) -> None:
    frame, predictions = _frame(900), np.linspace(-2, 2, 900)
    run = BatchRun(profile, job="nightly", pushgateway=None)
    for start in (0, 300, 600):
        run.observe_batch(frame.iloc[start:start + 300], predictions[start:start + 300])
    whole = ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None)
    whole.observe_batch(frame, predictions)
    assert run.rows == 900
    assert _samples(run.monitor.registry) == pytest.approx(_samples(whole.registry), rel=1e-12)


def test_run_series_and_a_single_end(profile: Profile) -> None:
    now = [100.0]
    run = BatchRun(profile, job="nightly", pushgateway=None, clock=lambda: now[0])
    run.observe_batch(_frame(10), np.zeros(10))
    now[0] = 130.0
    run.succeed()
    now[0] = 999.0
    run.fail()  # ended already: nothing changes
    assert run.outcome == "success"
    assert run.run_values() == {
        N.BATCH_RUN_SUCCESS.name: 1.0, N.BATCH_RUN_ROWS.name: 10.0,
        N.BATCH_RUN_DURATION.name: 30.0, N.BATCH_RUN_START.name: 100.0,
        N.BATCH_RUN_END.name: 130.0, N.BATCH_LAST_SUCCESS.name: 130.0}
    assert run.grouping_key == {N.BATCH_LABEL: "nightly", "model": "churn", "model_version": "3"}


def test_a_failed_run_has_no_last_success(profile: Profile) -> None:
    with pytest.raises(ZeroDivisionError):
        with BatchRun(profile, job="nightly", pushgateway=None) as run:
            1 / 0  # noqa: B018
    values = run.run_values()
    assert run.outcome == "failure" and values[N.BATCH_RUN_SUCCESS.name] == 0.0
    assert N.BATCH_LAST_SUCCESS.name not in values


def test_rows_as_records() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert _records(pd.DataFrame(rows)) == rows
    assert _records({"a": np.array([1, 2]), "b": ["x", "y"]}) == rows
    assert _records(rows) == rows
    with pytest.raises(TypeError):
        _records([1, 2])
