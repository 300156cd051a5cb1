"""A run's outcome counts on the Pushgateway: one group per run, old groups pruned.

`mlmon outcomes` lives for minutes, so Prometheus cannot scrape it: it pushes its registry to
the Pushgateway under `job=OUTCOMES_PUSH_JOB` ("mlmon_outcomes"), `instance=<run id>`. One group
per run, never shared: a PUT replaces a group whole, so runs sharing one would overwrite each
other's counts, and a read-modify-write would race. Each group carries
`mlmon_counters_start_timestamp_seconds` = the run's start, so the restart-aware window counts
(mlmon/alerting/promql.py) treat a run like a process that started then: its counts enter the
windows it falls in, whole.

A group whose last push is older than the longest outcome window + restart_grace no longer
changes any window: each run deletes such groups (its own job's only), so the Pushgateway does
not grow without bound.

Every request goes through mlmon.exporter.pushgateway (its timeout, retries and one-line
`PushError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlmon.exporter.pushgateway import TIMEOUT_S, PushError, Pushgateway
from mlmon.names import OUTCOMES_PUSH_JOB

__all__ = ["PushError", "RunGroup"]


class RunGroup:
    """This run's group on the Pushgateway.

    >>> group = RunGroup("http://127.0.0.1:9091", registry, run_id="20261129T101500Z-1a2b3c4d")
    >>> group.push()                     # PUT: the whole registry, replacing the group
    >>> group.prune(older_than_s=8 * 86400)
    """

    def __init__(self, url: str, registry: Any, run_id: str, *, timeout: float = TIMEOUT_S,
                 clock: Callable[[], float] = time.time,
                 gateway: Pushgateway | None = None) -> None:
        """`gateway`: the client to use (its timeout and retries), instead of one for `url`."""
        self.gateway = gateway or Pushgateway(url, timeout_s=timeout)
        self.url = self.gateway.url
        self.registry = registry
        self.run_id = run_id
        self._clock = clock

    def push(self) -> None:
        """Replace this run's group with the registry's current values."""
        self.gateway.push(OUTCOMES_PUSH_JOB, _Merged(self.registry), {"instance": self.run_id},
                          replace=True)

    def prune(self, older_than_s: float) -> list[str]:
        """Delete the groups of `OUTCOMES_PUSH_JOB` (other runs') last pushed more than
        `older_than_s` ago; their instance labels."""
        cutoff = self._clock() - older_than_s
        deleted = []
        for group in self.gateway.groups():
            labels = group.get("labels", {})
            if labels.get("job") != OUTCOMES_PUSH_JOB or labels.get("instance") == self.run_id:
                continue
            pushed = _push_time(group)
            if pushed is not None and pushed < cutoff:
                self.gateway.delete(OUTCOMES_PUSH_JOB,
                                    {k: v for k, v in labels.items() if k != "job"})
                deleted.append(labels.get("instance", ""))
        return deleted


class _Merged:
    """A registry's families with the same name merged into one: each model version's
    OutcomeMonitor exports its own, and the Pushgateway refuses a body that declares a family
    twice ("second TYPE line")."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric

        merged: dict[str, Any] = {}
        for family in self.registry.collect():
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation,
                                                    family.type, family.unit)
            into.samples.extend(family.samples)
        return list(merged.values())


def _push_time(group: dict[str, Any]) -> float | None:
    """The group's last successful push (the Pushgateway's own `push_time_seconds`)."""
    try:
        return float(group["push_time_seconds"]["metrics"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
