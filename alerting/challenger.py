"""Recording rules for champion vs challenger: agreement per window, and the performance gaps.

Agreement (per drift window): from the challenger's comparison counters
(mlmon/exporter/challenger.py), pooled over replicas, restart-aware like every window count.

The gap (challenger minus champion) of any per-version rule, realized (per outcome window) or
estimated from scores (per drift window), e.g. realized accuracy
`model:mlmon_outcome_accuracy:<w>` -> `model:mlmon_outcome_accuracy_challenger_gap:<w>`
(`mlmon.names.challenger_gap`), keyed by the challenger's model_version and the champion's
`champion_version`. The pairing comes from the role info series: each challenger's row
names its champion, so the gap needs nothing but the two versions' own rules:

    rule{challenger} * on (model, model_version) group_left (champion_version) role{challenger}
    - on (model, champion_version) group_left ()
    rule{every version}, model_version renamed to champion_version

A challenger compared with two champion versions at once (replicas of a rollout disagree on
the champion) has two role rows; the join then fails for it until the rollout ends, rather
than mixing the two champions.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.config import Config, duration_seconds
from mlmon.alerting.render import Group, Rule
from mlmon.names import MODEL_LABELS, RuleName

PAIR = (*MODEL_LABELS, "champion_version")

# (rule, extra labels beyond the model's, what it is): the per-version rules that get a gap,
# with the windows they exist for (`gap_windows`).
REALIZED_GAPS: tuple[tuple[RuleName, tuple[str, ...], str], ...] = (
    (N.OUTCOME_ACCURACY, (), "realized accuracy"),
    (N.OUTCOME_PRECISION, ("class",), "realized precision of each class"),
    (N.OUTCOME_RECALL, ("class",), "realized recall of each class"),
    (N.OUTCOME_MAE, (), "realized MAE"),
    (N.OUTCOME_RMSE, (), "realized RMSE"),
)
# Estimated from calibrated scores before labels arrive (alerting/estimation.py): per drift
# window, like the estimates themselves.
ESTIMATED_GAPS: tuple[tuple[RuleName, tuple[str, ...], str], ...] = (
    (N.ESTIMATED_ACCURACY, (), "estimated accuracy"),
    (N.ESTIMATED_PRECISION, ("class",), "estimated precision of each class"),
    (N.ESTIMATED_RECALL, ("class",), "estimated recall of each class"),
)


def _summed(config: Config, metric: str, window: str, group: tuple[str, ...],
            extra: tuple[str, ...], counter: bool = True) -> str:
    return q.summed_window_count(metric, window, duration_seconds(window),
                                 duration_seconds(config.restart_grace), group, extra, counter)


def agreement_rules(config: Config, w: str) -> list[Rule]:
    """Comparisons, agreement rate, class pairs and mean difference over window `w`."""
    by_agreement = N.CHALLENGER_COMPARED_BY_AGREEMENT.at(w)
    compared = N.CHALLENGER_COMPARED_INCREASE.at(w)
    diff = N.CHALLENGER_DIFFERENCE
    pair_extra = ("champion_version", "champion_class", "challenger_class")
    diff_count = _summed(config, diff.count, w, PAIR, ("champion_version",), counter=False)
    return [
        Rule(by_agreement,
             _summed(config, N.CHALLENGER_COMPARED.sample, w, (*PAIR, "agreement"),
                     ("champion_version", "agreement")),
             f"Challenger predictions compared with the champion's over {w}, agree / "
             "disagree, pooled over replicas (restart-aware counts)."),
        Rule(compared, f"sum without (agreement) ({by_agreement})",
             f"Comparisons in {w} behind the agreement rate, so the alert can require enough."),
        Rule(N.CHALLENGER_AGREEMENT.at(w),
             f'sum without (agreement) ({by_agreement}{{agreement="agree"}})\n'
             f"/\n({compared} > 0)",
             f"Headline: share of requests on which challenger and champion agree over {w} "
             "(classification: the same class; regression: |difference| <= the tolerance); "
             "absent, not NaN, for an empty window."),
        Rule(N.CHALLENGER_CLASS_PAIR_INCREASE.at(w),
             _summed(config, N.CHALLENGER_CLASS_PAIR.sample, w,
                     (*MODEL_LABELS, *pair_extra), pair_extra),
             f"Compared classifications per (champion class, challenger class) over {w}: "
             "where the two disagree."),
        Rule(N.CHALLENGER_DIFFERENCE_MEAN.at(w),
             f"{_summed(config, diff.sum, w, PAIR, ('champion_version',), counter=False)}\n"
             f"/\n({diff_count} > 0)",
             f"Regression: mean of challenger - champion over {w} (a systematic offset)."),
    ]


def challenger_versions(grace: str) -> str:
    """Each challenger's (model, model_version, champion_version), deduplicated over replicas."""
    role = f'{N.MODEL_ROLE_INFO.name}{{role="{N.CHALLENGER_ROLE}"}}'
    return f"max by ({q.by(PAIR)}) ({q.latest(role, grace)})"


def gap_expr(rule: str, extra: Sequence[str], grace: str) -> str:
    """`rule` (a per-version series) of each challenger minus that of its champion."""
    champion_side = q.by(("model", "champion_version", *extra))
    return (
        f"(\n  {rule}\n  * on ({q.by(MODEL_LABELS)}) group_left (champion_version)\n"
        f"  {challenger_versions(grace)}\n)\n"
        f"- on ({champion_side}) group_left ()\n"
        f"max without (model_version) (\n"
        f'  label_replace({rule}, "champion_version", "$1", "model_version", "(.*)")\n)'
    )


def gap_rules(config: Config, w: str,
              gaps: Sequence[tuple[RuleName, tuple[str, ...], str]]) -> list[Rule]:
    return [Rule(N.challenger_gap(rule).at(w), gap_expr(rule.at(w), extra, config.restart_grace),
                 f"Challenger minus champion: {what} over {w}, the challenger's version in "
                 "model_version, its champion's in champion_version (paired through "
                 f"{N.MODEL_ROLE_INFO.name}).")
            for rule, extra, what in gaps]


def gap_windows(config: Config) -> tuple[str, ...]:
    """The windows of the realized-performance rules."""
    return config.outcome_windows


def challenger_groups(config: Config) -> list[Group]:
    """Agreement and estimated gaps per drift window; realized gaps per outcome window."""
    groups = [Group(f"mlmon.challenger.{w}",
                    f"Champion vs challenger over {w}: agreement, estimated performance gaps.",
                    tuple(agreement_rules(config, w) + gap_rules(config, w, ESTIMATED_GAPS)))
              for w in config.windows]
    # at the outcome rules' own interval: they change no more often than that
    groups += [Group(f"mlmon.challenger_gap.{w}",
                     f"Champion vs challenger: realized performance gaps over {w}, evaluated "
                     f"every {config.outcome_evaluation_interval} like the realized metrics.",
                     tuple(gap_rules(config, w, REALIZED_GAPS)),
                     interval=config.outcome_evaluation_interval)
               for w in gap_windows(config)]
    return groups
