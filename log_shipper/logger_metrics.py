"""`PredictionLogger`'s own failures as Prometheus series, read at scrape time.

- `mlmon_prediction_logger_errors_total`: `record()` calls that failed inside (the caller got
  None and the prediction went on);
- `mlmon_log_sink_dropped_total{reason}`: records the JSON-lines sink did not write
  (`queue_full`, `build_error`, `write_error`).
Records the shipper could not deliver are its own series (`mlmon_shipper_dropped_total`,
log_shipper/metrics.py). One `PredictionLogger` per registry: a second collector would repeat
these names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

import mlmon.names as N

if TYPE_CHECKING:
    from mlmon.log_shipper.facade import PredictionLogger


class PredictionLoggerCollector(Collector):
    """Yields the logger's and its log sink's error counters.

    >>> REGISTRY.register(PredictionLoggerCollector(logger))
    """

    def __init__(self, logger: PredictionLogger) -> None:
        self._logger = logger

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(N.LOGGER_ERRORS.name, N.LOGGER_ERRORS.help,
                                  value=self._logger.errors)
        sink = self._logger.log_sink
        if sink is not None:
            dropped = CounterMetricFamily(N.LOG_SINK_DROPPED.name, N.LOG_SINK_DROPPED.help,
                                          labels=list(N.LOG_SINK_DROPPED.labels))
            for reason, value in sorted(dict(sink.drops).items()):
                dropped.add_metric([reason], value)
            yield dropped
