"""Recording rules of estimated performance: the expected confusion matrix, before labels.

The exporter adds each scored prediction's expected row to `mlmon_estimated_outcome_class_total`
(mlmon/exporter/estimation.py: calibrated probability of each actual class). That counter has
the shape of the realized one, so the one confusion-matrix builder of alerting/outcomes.py turns
it into estimated accuracy and per-class precision and recall, pooled over replicas. The windows
are the drift windows (alerting/config.yaml `windows`): an estimate exists as soon as predictions
do, like drift, unlike realized performance, which waits for labels.
"""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.config import Config
from mlmon.alerting.outcomes import ConfusionNames, confusion_rules
from mlmon.alerting.render import Group

ESTIMATED_CONFUSION = ConfusionNames(N.ESTIMATED_CLASS_INCREASE, N.ESTIMATED_ACCURACY,
                                     N.ESTIMATED_PRECISION, N.ESTIMATED_RECALL,
                                     total=N.ESTIMATED_SAMPLES)


def estimation_group(config: Config, window: str) -> Group:
    """The estimated-performance rules of one drift window."""
    rules = confusion_rules(N.ESTIMATED_CLASS.sample, ESTIMATED_CONFUSION, config, window,
                            what="scored predictions (expected from calibrated scores)")
    return Group(f"mlmon.estimation.{window}",
                 f"Estimated performance of the scored predictions made over {window}.",
                 tuple(rules))


def estimation_groups(config: Config) -> list[Group]:
    """One group per drift window, shortest first."""
    return [estimation_group(config, w) for w in config.windows]
