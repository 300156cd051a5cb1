"""Builds challenger_test.yml: promtool tests of the champion/challenger rules and alert.

`python prometheus/tests/challenger_cases.py` rewrites the file; tests/test_rules.py checks that
the committed file equals `render()`. The cases reuse alert_cases.py's `Case` (series, checks
before and at `for:`, premises) and its evaluation order. Expected numbers are worked out in
the comments, in binary-exact values so the premises compare with ==.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import mlmon.names as N
from mlmon.alerting.config import load as load_config

PATH = Path(__file__).with_name("challenger_test.yml")


def _alert_cases() -> ModuleType:
    path = Path(__file__).with_name("alert_cases.py")
    spec = importlib.util.spec_from_file_location("alert_cases", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("alert_cases", module)
    spec.loader.exec_module(module)
    return module


A = _alert_cases()
CHURN = {"model": "churn", "model_version": "3"}  # the champion
CHALLENGER = {"model": "churn", "model_version": "4", "champion_version": "3"}
NAME = "MlmonChallengerDisagreement"
CONFIG = load_config().alert(NAME)
WINDOW, MAX = CONFIG["window"], CONFIG["max_disagreement"]


def _pair(case: Any, agree_per_minute: float, disagree_per_minute: float,
          challenger: dict[str, str] = CHALLENGER, instance: str = "a") -> None:
    """One replica's comparison counters, with the challenger monitor's counters start."""
    at = case.replica({k: challenger[k] for k in N.MODEL_LABELS}, instance)
    at |= {"champion_version": challenger["champion_version"]}
    for agreement, per_minute in (("agree", agree_per_minute), ("disagree", disagree_per_minute)):
        case.add(N.CHALLENGER_COMPARED.sample, at | {"agreement": agreement},
                 A._rising(per_minute))


def _value(rule: str, matchers: str = "") -> str:
    """The churn challenger's series of `rule`, without its name (as premises compare)."""
    extra = f", {matchers}" if matchers else ""
    return f'{rule}{{model="churn", model_version="4"{extra}}} + 0'


def _roles(case: Any, champion: dict[str, str], challenger: dict[str, str]) -> None:
    case.add(N.MODEL_ROLE_INFO.name, champion | {"role": "champion", "instance": "a",
                                                  "job": "mlmon"}, A._const(1.0))
    case.add(N.MODEL_ROLE_INFO.name, challenger | {"role": "challenger", "instance": "a",
                                                    "job": "mlmon"}, A._const(1.0))


def disagreement() -> Any:
    # Two replicas, a minute: a 4 agree and 4 disagree, b 2 agree: pooled 6 of 10 agree,
    # 40 % disagreement (b alone would be silent, a alone louder: the rule pools them).
    # n = 10 per minute reaches min_samples (100) at 10m: the condition holds from 10m, the
    # alert fires at 10m + 30m. At 40m the 1h window holds 400 comparisons.
    case = A.Case(f"{NAME} fires when the pooled disagreement stays above "
                  f"{MAX} for {CONFIG['for']}")
    _pair(case, 4, 4, instance="a")
    _pair(case, 2, 0, instance="b")
    # a second pair that agrees 95 %: silent
    _pair(case, 19, 1, {"model": "fraud", "model_version": "2", "champion_version": "1"})
    case.premise(_value(N.CHALLENGER_AGREEMENT.at(WINDOW)), "20m", CHALLENGER, 0.6)
    case.premise(_value(N.CHALLENGER_COMPARED_INCREASE.at(WINDOW)), "20m", CHALLENGER, 200.0)
    return case.expect(NAME, "39m", "40m", [A._alert(
        {"severity": CONFIG["severity"], **CHALLENGER},
        "A challenger model disagrees with the champion too often.",
        f"Challenger churn version 4 disagrees with champion version 3 on 40% of 400 "
        f"requests over the last {WINDOW} (threshold {MAX}).", NAME)])


def disagreement_needs_enough_comparisons() -> Any:
    # 50 % disagreement, but 1 comparison a minute: at most 90 in the window, below
    # min_samples (100): silent.
    case = A.Case(f"{NAME} stays silent below min_samples comparisons")
    _pair(case, 0.5, 0.5)
    case.premise(_value(N.CHALLENGER_AGREEMENT.at(WINDOW)), "60m", CHALLENGER, 0.5)
    for t in ("40m", "80m"):
        case.checks.append({"eval_time": t, "alertname": NAME, "exp_alerts": []})
    return case


def no_challenger() -> Any:
    # a model without a challenger exports no comparison series: no agreement, no alert
    case = A.Case(f"{NAME} stays silent without a challenger")
    at = case.replica(CHURN)
    case.add(N.OBSERVATIONS.sample, at, A._rising(100))
    case.premise(f"count({N.CHALLENGER_AGREEMENT.at(WINDOW)}) or vector(0)", "40m", {}, 0.0)
    for t in ("40m", "80m"):
        case.checks.append({"eval_time": t, "alertname": NAME, "exp_alerts": []})
    return case


def performance_gap() -> Any:
    # Realized accuracy (R's rule, given here as input) of champion 3: 0.75, challenger 4:
    # 0.875, and of version 5, in no pair: 0.5. The gap of 4 against 3 is 0.125, keyed by the
    # challenger's version with champion_version; version 5 gets none. Per class likewise.
    case = A.Case("the challenger gap is challenger minus its own champion, through the roles")
    acc = N.OUTCOME_ACCURACY.at("1h")
    _roles(case, CHURN, CHALLENGER)
    for version, value in (("3", 0.75), ("4", 0.875), ("5", 0.5)):
        case.add(acc, {"model": "churn", "model_version": version}, A._const(value))
    precision = N.OUTCOME_PRECISION.at("1h")
    for version, yes, no in (("3", 0.5, 0.25), ("4", 0.625, 0.5)):
        case.add(precision, {"model": "churn", "model_version": version, "class": "yes"},
                 A._const(yes))
        case.add(precision, {"model": "churn", "model_version": version, "class": "no"},
                 A._const(no))
    gap = N.challenger_gap(N.OUTCOME_ACCURACY).at("1h")
    case.premise(_value(gap), "10m", CHALLENGER, 0.125)
    case.premise(f"count({gap})", "10m", {}, 1.0)
    precision_gap = N.challenger_gap(N.OUTCOME_PRECISION).at("1h")
    case.premise(_value(precision_gap, 'class="yes"'), "10m", CHALLENGER | {"class": "yes"},
                 0.125)
    case.premise(_value(precision_gap, 'class="no"'), "10m", CHALLENGER | {"class": "no"}, 0.25)
    # the estimated accuracy (E's rule, per drift window): 0.8125 vs 0.875, gap -0.0625
    estimated = N.ESTIMATED_ACCURACY.at("5m")
    for version, value in (("3", 0.875), ("4", 0.8125)):
        case.add(estimated, {"model": "churn", "model_version": version}, A._const(value))
    case.premise(_value(N.challenger_gap(N.ESTIMATED_ACCURACY).at("5m")), "10m", CHALLENGER,
                 -0.0625)
    case.checks.append({"eval_time": "10m", "alertname": NAME, "exp_alerts": []})
    return case


def challenger_is_not_a_rollout() -> Any:
    # churn 3 (expected by the config) and its challenger 4 live side by side for 90m: neither
    # MlmonMultipleModelVersions nor MlmonUnexpectedModelVersion fires (alert_cases.py shows
    # both firing for the same versions without the challenger role).
    case = A.Case("a challenger in shadow mode is neither a second live version nor the wrong one")
    for version in ("3", "4"):
        A._info(case, "churn", version)
    _roles(case, CHURN, CHALLENGER)
    for alert in ("MlmonMultipleModelVersions", "MlmonUnexpectedModelVersion"):
        for t in ("30m", "85m"):
            case.checks.append({"eval_time": t, "alertname": alert, "exp_alerts": []})
    return case


CASES = (disagreement, disagreement_needs_enough_comparisons, no_challenger, performance_gap,
         challenger_is_not_a_rollout)


def render() -> str:
    lines = [
        "# GENERATED by prometheus/tests/challenger_cases.py: champion vs challenger rules.",
        "rule_files:", "  - ../recording_rules.yml", "  - ../../alerting/alert_rules.yml",
        "evaluation_interval: 1m", f"group_eval_order: {A.json.dumps(A.group_order())}",
        "tests:"]
    for make in CASES:
        lines += A.case_lines(make())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
