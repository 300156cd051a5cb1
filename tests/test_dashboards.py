"""Generated Grafana dashboards: up to date, stable, consistent with provisioning and metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
sys.path.insert(0, str(GRAFANA))

import generate  # noqa: E402
from panels import expressions, version_annotation  # noqa: E402

from tests.conftest import missing_server  # noqa: E402

SOURCES = generate.sources()
EXPECTED_UIDS = {"mlmon-model-overview", "mlmon-feature-drill-down", "mlmon-service-health",
                 "mlmon-model-performance"}


def _load(path: Path) -> dict:
    return json.loads(generate.target(path).read_text())


def test_committed_json_matches_the_generator() -> None:
    assert generate.main(["--check"]) == 0


def test_generation_is_deterministic() -> None:
    assert [generate.render(p) for p in SOURCES] == [generate.render(p) for p in SOURCES]


def test_the_dashboards_exist_with_stable_unique_uids() -> None:
    assert {_load(p)["uid"] for p in SOURCES} == EXPECTED_UIDS


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_variables_model_version_and_feature(path: Path) -> None:
    names = [v["name"] for v in _load(path)["templating"]["list"]]
    assert names[:2] == ["model", "model_version"]
    if "feature" in path.name:
        assert names[2] == "feature"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_panels_do_not_overlap(path: Path) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _load(path)["panels"]:
        grid = panel["gridPos"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, panel["title"]
        assert grid["x"] + grid["w"] <= 24
        cells |= area


def test_every_datasource_uid_is_provisioned() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "mlmon.yml").read_text())["datasources"]
    uids = {d["uid"] for d in provisioned}
    used = set()
    for path in SOURCES:
        text = generate.target(path).read_text()
        used |= set(re.findall(r'"uid": "(mlmon-[a-z]+)"', text)) - EXPECTED_UIDS
    assert used and used <= uids


def _known_metrics() -> set[str]:
    """Metric names in the metric tables (docs/exporter-and-metrics.md, and docs/challenger.md
    for the champion/challenger series), with histogram suffixes."""
    table = "".join((REPO / "docs" / page).read_text()
                    for page in ("exporter-and-metrics.md", "challenger.md"))
    names = set(re.findall(r"`(mlmon_[a-z_]+)`", table))
    for base in [n for n in names if n.endswith(("_value", "_seconds", "_score"))]:
        names |= {base + s for s in ("_bucket", "_count", "_sum")}
    return names


def test_mlmon_metric_names_are_the_designed_ones() -> None:
    known = _known_metrics()
    for path in SOURCES:
        for expr in expressions(_load(path)):
            for name in re.findall(r"(?<![:\w])(mlmon_[a-z_]+)", expr):
                if not name.startswith("mlmon_shipper_"):  # the shipper's own health series
                    assert name in known, f"{path.name}: {name} is not in the metric table"


def test_prometheus_panels_have_expressions_and_titles() -> None:
    for path in SOURCES:
        data = _load(path)
        assert expressions(data)
        for panel in data["panels"]:
            assert panel["title"]
            assert panel["targets"], panel["title"]


def test_recording_rule_names_exist() -> None:
    rules_file = REPO / "prometheus" / "recording_rules.yml"
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = set()
    for path in SOURCES:
        for expr in expressions(_load(path)):
            used |= set(re.findall(r"\b([a-z_]+:mlmon_[a-z0-9_]+:[a-z0-9_]+)", expr))
    assert used, "the dashboards should read the recording rules"
    assert used <= recorded, f"not recorded: {sorted(used - recorded)}"


def test_version_annotation_marks_new_versions_not_new_replicas(tmp_path: Path) -> None:
    """promtool evaluates the annotation's expression on series with a known history.

    churn version 3 starts on replica a at 0m, a second replica b joins at 10m, a restarts as c
    (a new address) at 30m; version 4 starts on d at 40m. Only 0m and 40m are deploys.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_server("promtool")
    expr = version_annotation()["expr"].replace("$model", ".*")

    def series(instance: str, version: str, start_min: int, end_min: int = 60) -> dict:
        values = " ".join(["_"] * start_min + ["1"] * (end_min - start_min))
        return {"series": f'mlmon_model_info{{instance="{instance}", model="churn", '
                          f'model_version="{version}"}}', "values": values}

    def live(version: str) -> list[dict]:
        return [{"labels": f'{{model="churn", model_version="{version}"}}', "value": 1}]

    checks = {"1m": live("3"), "11m": [], "31m": [], "41m": live("4"), "45m": []}
    test = {"evaluation_interval": "1m", "rule_files": [], "tests": [{
        "interval": "1m",
        "input_series": [series("a", "3", 0, 30), series("b", "3", 10), series("c", "3", 30),
                         series("d", "4", 40)],
        "promql_expr_test": [{"expr": expr, "eval_time": t, "exp_samples": samples}
                             for t, samples in checks.items()]}]}
    path = tmp_path / "annotation_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
