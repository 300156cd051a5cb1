"""Alert rules, generated from the config: thresholds, windows and `for:` come from there only.

Each alert carries `severity` plus the labels of the series it fires on, a fixed one-line
`summary`, a `description` templated with the values, and a `runbook_url` into
alerting/runbook.md (one section per alert, anchored by the lower-cased name).

One module per family builds its group (alerting/alerts_<family>.py) with the pieces of
alerts_base.py and alerts_text.py; this module lists the groups in the order they are written.
"""

from __future__ import annotations

from mlmon.alerting import (
    alerts_batch,
    alerts_challenger,
    alerts_drift,
    alerts_estimation,
    alerts_host,
    alerts_model,
    alerts_ops,
    alerts_performance,
    alerts_quality,
    alerts_training,
)
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.config import Config
from mlmon.alerting.render import Group

# The rule file's order: a new family goes last, so the files' diffs stay small.
_FAMILIES = (alerts_drift, alerts_quality, alerts_model, alerts_ops, alerts_challenger,
             alerts_performance, alerts_training, alerts_host, alerts_batch, alerts_estimation)


def alert_groups(config: Config) -> list[Group]:
    """The alert groups, in a stable order."""
    builder = AlertBuilder(config)
    return [family.group(builder) for family in _FAMILIES]
