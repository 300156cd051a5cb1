"""The batch side of the rule generator: names, the online/batch split, the schedule config.

The values of the `:batch` rules and alerts are proven by promtool (prometheus/tests/
batch_cases.py) and on real servers (tests/integration/test_batch_prometheus.py); these tests
pin the structure every later rule must keep.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

import mlmon.names as N
from mlmon.alerting import alerts, generate, promql, recording
from mlmon.alerting import config as cfg

# A raw selector of a series the exporter exports (which a batch run pushes too): its name not
# preceded by a rule name's colon, with its label matchers if any.
_EXPORTED = "|".join(sorted({re.escape(name) for s in N.EXPORTER_SERIES
                             for name in (s.sample, s.bucket, s.count, s.sum)}, key=len,
                            reverse=True))
_SELECTOR = re.compile(rf"(?<![\w:])({_EXPORTED})(?![\w:])(\{{[^}}]*\}})?")


def _selectors(expr: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2) or "") for m in _SELECTOR.finditer(expr)]


def test_rule_names_of_batch() -> None:
    assert N.FEATURE_PSI.at(N.BATCH) == "model_feature:mlmon_feature_psi:batch"
    assert N.FEATURE_KS.at(N.BATCH) == "model_feature:mlmon_feature_ks:batch"
    assert N.PREDICTION_PSI.at(N.BATCH) == "model:mlmon_prediction_psi:batch"
    assert N.FEATURE_SAMPLES.at(N.BATCH) == "model_feature:mlmon_feature_samples:batch"
    assert N.FEATURE_MISSING_RATIO.at(N.BATCH) == "model_feature:mlmon_feature_missing:ratio_batch"
    assert N.FEATURE_SAMPLES.at("5m") == "model_feature:mlmon_feature_samples:increase5m"
    assert recording.FEATURE_HIST.bins(N.BATCH) == (
        "model_feature_le:mlmon_feature_value:bin_share_batch")


@pytest.mark.parametrize("selector, matcher, expected", [
    ("mlmon_x_total", 'a=""', 'mlmon_x_total{a=""}'),
    ('mlmon_x_total{outcome="error"}', 'a=""', 'mlmon_x_total{outcome="error", a=""}'),
    ("mlmon_x_total{}", 'a!=""', 'mlmon_x_total{a!=""}'),
])
def test_matching_adds_one_matcher(selector: str, matcher: str, expected: str) -> None:
    assert promql.matching(selector, matcher) == expected


def _rules(groups: list) -> list[tuple[str, str, str]]:
    return [(g.name, r.name, r.expr) for g in groups for r in g.rules]


def test_online_rules_read_only_services_and_batch_rules_only_pushed_series() -> None:
    config = cfg.load()
    online = _rules(recording.window_groups(config))
    online += [r for r in _rules(alerts.alert_groups(config)) if "batch" not in r[0]]
    batch = _rules(recording.batch_groups(config))
    batch += [r for r in _rules(alerts.alert_groups(config)) if "batch" in r[0]]
    for rules, matcher in ((online, promql.ONLINE), (batch, promql.PUSHED)):
        selectors = [(group, name, *s) for group, name, expr in rules for s in _selectors(expr)]
        assert len(selectors) > 60  # the check sees the rules' selectors
        for group, name, series, labels in selectors:
            assert matcher in labels, (group, name, series, labels)


def test_every_service_statistic_has_its_batch_counterpart() -> None:
    config = cfg.load()
    window = config.alert("MlmonFeatureDrift")["window"]
    # Performance is not a batch statistic here: realized needs labels, which a scoring batch
    # does not have; estimated performance of a batch is not built (docs/batch-jobs.md); a
    # challenger runs in shadow beside a service.
    not_batch = ("mlmon.outcomes.", "mlmon.estimation.", "mlmon.challenger")
    names = {r.name for g in recording.window_groups(config) for r in g.rules
             if g.name.endswith("." + window) and not g.name.startswith(not_batch)}
    batch = {r.name for g in recording.batch_groups(config) for r in g.rules}
    services_only = {N.prediction_stat("min").at(window), N.prediction_stat("max").at(window)}
    for name in names:
        if name.startswith(("model:mlmon_requests", "model_le:mlmon_inference", "model:mlmon_"
                            "inference", "model:mlmon_observations:rate")) or name in services_only:
            continue  # request-path statistics: a batch has no requests
        level, metric, op = name.split(":")
        counterpart = f"{level}:{metric}:{N.operation(op.removesuffix(window), N.BATCH)}"
        assert counterpart in batch, name


def _config() -> dict:
    return copy.deepcopy(yaml.safe_load(cfg.CONFIG_PATH.read_text()))


@pytest.mark.parametrize("schedules, message", [
    ({"nightly": "one day"}, "bad duration"),
    (["nightly"], "batch job name -> duration"),
])
def test_bad_schedules_are_loud(schedules: object, message: str) -> None:
    data = _config()
    data["alerts"]["MlmonBatchJobMissed"]["schedules"] = schedules
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.parse(data)


def test_schedules_come_from_the_config() -> None:
    data = _config()
    data["alerts"]["MlmonBatchJobMissed"]["schedules"] = {"weekly": "8d", "hourly": "2h"}
    text = generate.outputs(cfg.parse(data))[generate.ALERTS_PATH]
    rule = next(r for g in yaml.safe_load(text)["groups"] for r in g["rules"]
                if r.get("alert") == "MlmonBatchJobMissed")
    assert 'batch_job="weekly"' in rule["expr"] and "> 691200" in rule["expr"]
    assert 'batch_job="hourly"' in rule["expr"] and "> 7200" in rule["expr"]
    data["alerts"]["MlmonBatchJobMissed"]["schedules"] = {}
    text = generate.outputs(cfg.parse(data))[generate.ALERTS_PATH]
    assert "vector(0) < 0" in text  # no job checked: a rule that never fires
