"""Champion vs challenger alerts (shadow mode): the challenger would change too many answers.
The agreement rules they read are alerting/challenger.py's."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import WHERE, lookup, pct
from mlmon.alerting.render import Group
from mlmon.names import MODEL_LABELS


def group(a: AlertBuilder) -> Group:
    dis = a.c.alert("MlmonChallengerDisagreement")
    w = dis["window"]
    labels = (*MODEL_LABELS, "champion_version")
    n = lookup(N.CHALLENGER_COMPARED_INCREASE.at(w), labels, "%.0f")
    return Group("mlmon.alerts.challenger", "Champion vs challenger (shadow mode).", (
        a.rule(
            "MlmonChallengerDisagreement",
            f"1 - {N.CHALLENGER_AGREEMENT.at(w)} > {dis['max_disagreement']}\n"
            f"and {N.CHALLENGER_COMPARED_INCREASE.at(w)} >= {a.min}",
            "A challenger model disagrees with the champion too often.",
            f"Challenger {WHERE} disagrees with champion version "
            "{{ $labels.champion_version }} on " + pct() + f" of {n} requests over the last "
            f"{w} (threshold {dis['max_disagreement']}).",
            "Shadow mode: the challenger would change many answers; look at where (class "
            "pairs, difference histogram) before promoting it."),
    ))
