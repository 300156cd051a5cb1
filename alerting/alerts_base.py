"""What every alert family builds with: a rule from its config section, the readers of
exported and pushed gauges, and the comparison of a statistic with a reference gauge.

Each family module (alerting/alerts_<family>.py) turns an `AlertBuilder` into its group;
alerting/alerts.py lists the groups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlmon.alerting import promql as q
from mlmon.alerting.config import Config
from mlmon.alerting.render import Rule
from mlmon.names import BASELINE, BATCH_LABELS


def baseline(metric: str) -> str:
    """The profile's baseline gauge of `metric` (every replica of a version exports it)."""
    return f'{BASELINE.name}{{metric="{metric}"}}'


def at_least(count: str, minimum: Any, labels: Sequence[str]) -> str:
    """The guard `and on (labels) count >= minimum`: a condition holds only on enough samples
    (`count` carries only `labels`, fewer than the condition, e.g. no feature)."""
    return f"and on ({q.by(labels)})\n{count} >= {minimum}"


class AlertBuilder:
    """Alert rules from a config: thresholds, windows and `for:` come from there only.

        a = AlertBuilder(config)
        a.rule("MlmonModelStale", expr, summary, description, why)
    """

    def __init__(self, config: Config) -> None:
        self.c = config
        self.min = config.min_samples

    def latest(self, selector: str) -> str:
        """A service's exported gauge (never a batch run's: `q.online`) read at the last
        successful scrape within restart_grace: an instant read would vanish while a scrape
        fails and restart the alert's `for:`."""
        return q.latest(q.online(selector), self.c.restart_grace)

    def pushed(self, selector: str, group: tuple[str, ...] = BATCH_LABELS) -> str:
        """A batch run's pushed gauge, as `latest`, one value per `group`."""
        return q.reference(selector, group, self.c.restart_grace, q.pushed)

    def beyond_reference(self, value: str, op: str, reference: str, margin: str,
                         labels: Sequence[str],
                         select: Callable[[str], str] = q.online) -> str:
        """`value op on (labels) (reference margin)`: a statistic past a reference gauge moved
        by the allowed margin, e.g. accuracy below `baseline - 0.05`, a missing ratio above
        `reference null rate + 0.1`. The reference is read per `labels`, deduplicated over
        replicas (`q.reference`); `select` picks a service's gauge or a batch run's pushed one.
        """
        bound = q.reference(reference, labels, self.c.restart_grace, select)
        return f"{value}\n{op} on ({q.by(labels)})\n({bound} {margin})"

    def rule(self, name: str, expr: str, summary: str, description: str, why: str) -> Rule:
        """The alert `name` with its config section's `for:`, keep_firing_for and severity,
        and a runbook_url to its section of alerting/runbook.md."""
        section: dict[str, Any] = self.c.alert(name)
        keep = section.get("keep_firing_for")
        return Rule(
            name, expr, why, alert=True, for_=str(section["for"]),
            keep_firing_for=None if keep is None else str(keep),
            labels={"severity": str(section["severity"])},
            annotations={"summary": summary, "description": description,
                         "runbook_url": f"{self.c.runbook_base_url}#{name.lower()}"})
