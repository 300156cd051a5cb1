"""OutcomeMonitor groups pushed to the real Pushgateway and scraped by the real Prometheus.

Two runs of a label-joining job (as `mlmon outcomes` makes them) each push one group
(`job=mlmon_outcomes`, `instance=<run id>`): one Pushgateway group per run, since a push
replaces a group whole and runs sharing one would overwrite each other. Prometheus, scraping the
Pushgateway with honor_labels, sees the confusion counts of both runs, which sum to
scikit-learn's on the union of their labels; each group carries its own counters' start and
the baselines, and nothing but outcome series (no reference or feature series to duplicate).
"""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, push_to_gateway
from sklearn.metrics import confusion_matrix

import mlmon.names as N
from mlmon.exporter import OutcomeMonitor, Profile
from tests.integration import prom_servers
from tests.profiles import sample_profile_dict

prometheus_factory = prom_servers.prometheus_factory
pushgateway_factory = prom_servers.pushgateway_factory

CLASSES = ["no", "yes", "__unseen__"]
ALLOWED = {N.COUNTERS_START.name, N.BASELINE.name, N.OUTCOME_CLASS.sample,
           N.OUTCOME_LABEL_DELAY.bucket, N.OUTCOME_LABEL_DELAY.count, N.OUTCOME_LABEL_DELAY.sum,
           N.OUTCOME_REJECTED.sample}


@pytest.mark.integration
def test_pushed_runs_sum_to_scikit_learn_and_carry_only_outcome_series(
        prometheus_factory, pushgateway_factory) -> None:
    gateway = pushgateway_factory()
    address = gateway.url.removeprefix("http://")
    prometheus = prometheus_factory(targets={"pushgateway": [address]})
    profile = Profile.from_dict(sample_profile_dict(classification=True))
    rng = np.random.default_rng(8)
    pool = np.array(["no", "yes", "maybe"], dtype=object)
    predicted, actual = [], []
    for run, started in (("run-1", 1_700_000_000.0), ("run-2", 1_700_000_600.0)):
        p, a = pool[rng.integers(0, 3, 400)], pool[rng.integers(0, 3, 400)]
        registry = CollectorRegistry()
        monitor = OutcomeMonitor(profile, registry, clock=lambda s=started: s)
        monitor.observe_outcomes(p, a)
        monitor.reject_outcome("unknown_id", 5)
        push_to_gateway(address, job="mlmon_outcomes", registry=registry,
                        grouping_key={"instance": run})
        predicted += p.tolist()
        actual += a.tolist()

    selector = '{job="mlmon_outcomes", model="churn", model_version="3"}'
    prometheus.wait_for(f"count by (instance) ({N.OUTCOME_CLASS.sample}{selector})",
                        lambda r: len(r) == 2)
    got = {(r["metric"]["predicted_class"], r["metric"]["actual_class"]): float(r["value"][1])
           for r in prometheus.query(
               f"sum by (predicted_class, actual_class) ({N.OUTCOME_CLASS.sample}{selector})")}
    mapped = [[x if x in CLASSES else "__unseen__" for x in col] for col in (actual, predicted)]
    expected = confusion_matrix(mapped[0], mapped[1], labels=CLASSES).T
    assert [[got[(p, a)] for a in CLASSES] for p in CLASSES] == expected.tolist()
    starts = prometheus.values(f"{N.COUNTERS_START.name}{selector}", "instance")
    assert starts == {"run-1": 1_700_000_000.0, "run-2": 1_700_000_600.0}
    assert prometheus.values(f'{N.OUTCOME_REJECTED.sample}{{reason="unknown_id"}}',
                             "instance") == {"run-1": 5.0, "run-2": 5.0}
    assert prometheus.values(f"{N.BASELINE.name}{selector}", "instance") == {
        "run-1": 0.5, "run-2": 0.5}
    names = {r["metric"]["__name__"] for r in prometheus.query('{job="mlmon_outcomes"}')}
    # the Pushgateway adds its own push times to every group; no process_* either
    assert names == ALLOWED | {"push_time_seconds", "push_failure_time_seconds"}
