"""OutcomeMonitor: only the outcome series of one model version, for short-lived jobs.

    from mlmon.outcomes.push import RunGroup  # job "mlmon_outcomes", instance = the run id

    registry = CollectorRegistry()
    monitor = OutcomeMonitor(Profile.load("profile.json"), registry)
    monitor.observe_outcomes(predictions, labels, predicted_at=times)
    RunGroup("http://127.0.0.1:9091", registry, run_id).push()  # mlmon.exporter.pushgateway

A job that joins labels (`mlmon outcomes`) lives for minutes, so Prometheus cannot scrape it;
it pushes one Pushgateway group per run instead. The group must carry only what the run
counted: the outcome series, the baselines, and `mlmon_counters_start_timestamp_seconds` (= when
this monitor was created, so the restart-aware window counts treat each run as a process that
started then). The reference and feature series stay with the service: repeated in every pushed
group they would be duplicated and break the joins of the rules. No `process_*` series either.

Always one process: its counts live in memory (a multi-process directory is for services).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

from mlmon.exporter.collector import OutcomeRenderer, build_metrics
from mlmon.exporter.layout import OutcomeLayout, outcome_series_count
from mlmon.exporter.multiprocess import Storage
from mlmon.exporter.outcomes import OutcomeCounter, OutcomeMethods
from mlmon.exporter.profile import Profile


class OutcomeMonitor(OutcomeMethods):
    """Counts labels against predictions for one model version; exports the outcome series only.

    >>> monitor = OutcomeMonitor(Profile.load("profile.json"), CollectorRegistry())
    >>> monitor.observe_outcome("spam", "ham").correct
    False

    `registry`: where the series are exported (None: prometheus_client's default REGISTRY;
    a pushing job passes its own, since a push sends the whole registry).
    """

    def __init__(self, profile: Profile, registry: CollectorRegistry | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.layout = OutcomeLayout(profile)
        self.clock = clock
        self.started_at = clock()
        self.storage = Storage(self.layout)  # type: ignore[arg-type]  # size and lock only
        self._outcomes = OutcomeCounter(self.layout.outcomes, self.storage, clock)
        self._collector = _OutcomeCollector(self)
        self.registry = REGISTRY if registry is None else registry
        self.registry.register(self._collector)

    def series_count(self) -> int:
        """Series this monitor exports: a function of the profile only."""
        return outcome_series_count(self.profile) + 1  # + the counters' start

    def unregister(self) -> None:
        """Stop exporting this monitor's series."""
        self.registry.unregister(self._collector)


class _OutcomeCollector:
    """Renders one OutcomeMonitor at scrape (or push) time."""

    def __init__(self, monitor: OutcomeMonitor) -> None:
        self._monitor = monitor
        # the outcome renderer reads only the layout's `outcomes`, `window` and `size`
        self._renderer = OutcomeRenderer(monitor.layout, monitor.started_at)  # type: ignore[arg-type]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self._monitor
        totals = m.storage.totals()
        yield from build_metrics([self._renderer.render(totals.arrays, m.clock(), m.started_at)])
