"""The generated rule files: up to date, valid for promtool/amtool, and their unit tests pass."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from mlmon.alerting import amconfig, generate
from mlmon.alerting import config as cfg
from mlmon.exporter import drift
from tests.conftest import missing_server

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_TESTS = REPO / "prometheus" / "tests"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_server(name)
    return str(path)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_up_to_date() -> None:
    for path, text in generate.outputs(cfg.load()).items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run make generate-rules"


def test_generation_is_deterministic() -> None:
    config = cfg.load()
    assert generate.outputs(config) == generate.outputs(cfg.load())


@pytest.mark.parametrize("module", ["drift_cases.py", "alert_cases.py", "demo_alert_cases.py",
                                    "window_cases.py", "outcome_cases.py",
                                    "label_alert_cases.py", "batch_cases.py",
                                    "estimation_cases.py", "pipeline_cases.py",
                                    "challenger_cases.py"])
def test_promtool_test_files_match_their_builders(module: str) -> None:
    builder = _load(PROMETHEUS_TESTS / module)
    assert builder.PATH.read_text(encoding="utf-8") == builder.render()


def test_drift_epsilon_matches_the_rules_config() -> None:
    assert cfg.load().epsilon == drift.EPSILON


def test_every_alert_has_a_runbook_section_and_a_promtool_test() -> None:
    runbook = (REPO / "alerting" / "runbook.md").read_text(encoding="utf-8")
    tests = "".join(p.read_text(encoding="utf-8")
                    for p in sorted(PROMETHEUS_TESTS.glob("*_test.yml")))
    for name in cfg.ALERT_KEYS:
        assert f"\n## {name}\n" in runbook, name
        assert f'"alertname": "{name}"' in tests, name


def test_every_rule_carries_a_comment() -> None:
    for path in (generate.RECORDING_PATH, generate.ALERTS_PATH, generate.DEMO_ALERTS_PATH):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("- record:", "- alert:")):
                assert lines[i - 1].lstrip().startswith("#"), f"{path.name}:{i + 1} {line}"


def test_headline_names_exist() -> None:
    groups = yaml.safe_load(generate.RECORDING_PATH.read_text())["groups"]
    names = {r["record"] for g in groups for r in g["rules"]}
    for w in ("5m", "1h"):
        for stat in ("psi", "ks", "js"):
            assert f"model_feature:mlmon_feature_{stat}:{w}" in names
        for stat in ("psi", "ks"):
            assert f"model:mlmon_prediction_{stat}:{w}" in names


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("epsilon"), "missing key(s) epsilon"),
    (lambda d: d.update(typo=1), "unknown key(s) typo"),
    (lambda d: d["alerts"]["MlmonFeatureDrift"].update(window="2h"), "is not in windows"),
    (lambda d: d["alerts"]["MlmonFeatureDrift"].update(severity="page"), "severity"),
    (lambda d: d["alerts"]["MlmonFeatureDrift"].pop("for"), "missing key(s) for"),
    (lambda d: d.update(windows=["5 minutes"]), "bad duration"),
    (lambda d: d.pop("demo"), "missing key(s) demo"),
    (lambda d: d["demo"]["for"].update(MlmonFeatureDrfit="1m"), "demo.for: unknown alert(s)"),
    (lambda d: d["demo"]["for"].update(MlmonFeatureDrift="one minute"), "bad duration"),
    (lambda d: d["demo"].update(group_wait="10s"), "demo: unknown key(s) group_wait"),
    (lambda d: d["alerts"]["MlmonFeatureDrift"].update(keep_firing_for="10m"),
     "MlmonFeatureDrift.keep_firing_for: 10m is shorter than the `for:` of MlmonNotEnoughData"),
    (lambda d: d["alerts"]["MlmonNotEnoughData"].update(**{"for": "20m"}),
     "MlmonFeatureDrift.keep_firing_for: 15m is shorter"),
    (lambda d: d["alerts"]["MlmonPredictionDrift"].pop("keep_firing_for"),
     "missing key(s) keep_firing_for"),
    (lambda d: d.pop("outcome_windows"), "missing key(s) outcome_windows"),
    (lambda d: d["alerts"]["MlmonPerformanceBelowBaseline"].update(window="5m"),
     "MlmonPerformanceBelowBaseline.window: '5m' is not in outcome_windows"),
    (lambda d: d["alerts"]["MlmonLabelsStopped"].update(lookback="1h"),
     "MlmonLabelsStopped.lookback: must be longer than its window"),
    (lambda d: d["alerts"]["MlmonLabelsStopped"].update(lookback="30d"),
     "MlmonLabelsStopped.lookback: '30d' is not in outcome_windows"),
    (lambda d: d["alerts"]["MlmonPredictionOutOfRange"].update(window="1d"),
     "MlmonPredictionOutOfRange.window: '1d' is not in windows"),
    (lambda d: d["alerts"]["MlmonTrainingLate"]["schedules"].update(nightly="26 hours"),
     "bad duration '26 hours'"),
    (lambda d: d["alerts"]["MlmonTrainingLate"].update(schedules=["retrain"]),
     "MlmonTrainingLate.schedules: training job name -> duration"),
    (lambda d: d["alerts"]["MlmonHostDiskFilling"].update(lookback="6 hours"), "bad duration"),
])
def test_config_errors_are_loud(change, message: str) -> None:
    data = copy.deepcopy(yaml.safe_load(cfg.CONFIG_PATH.read_text()))
    change(data)
    with pytest.raises(cfg.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.parse(data)


@pytest.mark.parametrize("interval, job_interval, ok", [
    ("15s", None, True), ("30s", None, True), ("31s", None, False), ("15s", "45s", False)])
def test_scrape_interval_must_be_at_most_half_the_restart_grace(
        interval: str, job_interval: str | None, ok: bool) -> None:
    """restart_grace (1m) must cover a process loaded just before the window and first scraped
    one interval later; only the exporter's job counts."""
    prometheus = yaml.safe_load(generate.PROMETHEUS_PATH.read_text())
    prometheus["global"]["scrape_interval"] = interval
    mlmon = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "mlmon")
    if job_interval:
        mlmon["scrape_interval"] = job_interval
    other = next(j for j in prometheus["scrape_configs"] if j["job_name"] != "mlmon")
    other["scrape_interval"] = "5m"  # not the exporter: irrelevant
    text = yaml.safe_dump(prometheus)
    if ok:
        generate.outputs(cfg.load(), prometheus_text=text)
    else:
        with pytest.raises(cfg.ConfigError, match="less than twice the scrape interval"):
            generate.outputs(cfg.load(), prometheus_text=text)


def test_drift_alerts_keep_firing_until_the_no_data_alert_can_fire() -> None:
    alerts = _alerts(generate.ALERTS_PATH)
    needed = cfg.duration_seconds(alerts["MlmonNotEnoughData"]["for"])
    for name in ("MlmonFeatureDrift", "MlmonPredictionDrift"):
        assert cfg.duration_seconds(alerts[name]["keep_firing_for"]) >= needed, name


def test_thresholds_come_from_the_config() -> None:
    data = yaml.safe_load(cfg.CONFIG_PATH.read_text())
    data["alerts"]["MlmonFeatureDrift"]["psi_floor"] = 0.37
    data["alerts"]["MlmonFeatureDrift"]["for"] = "42m"
    text = generate.outputs(cfg.parse(data))[generate.ALERTS_PATH]
    drift_rule = next(r for g in yaml.safe_load(text)["groups"] for r in g["rules"]
                      if r["alert"] == "MlmonFeatureDrift")
    assert "> 0.37" in drift_rule["expr"] and drift_rule["for"] == "42m"


def _alerts(path: Path) -> dict[str, dict]:
    return {r["alert"]: r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]}


def test_demo_alerts_differ_from_production_only_in_the_configured_for() -> None:
    config = cfg.load()
    production, demo = _alerts(generate.ALERTS_PATH), _alerts(generate.DEMO_ALERTS_PATH)
    assert list(demo) == list(production)
    assert config.demo_for and set(config.demo_for) < set(production)
    for name, rule in production.items():
        expected = {**rule, "for": config.demo_for[name]} if name in config.demo_for else rule
        assert demo[name] == expected, name
    # The alerts that fire on a starting or empty stack keep their production timing, so the
    # demo's healthy period stays silent.
    for name in ("MlmonNotEnoughData", "MlmonThroughputZero", "MlmonExporterDown"):
        assert name not in config.demo_for


def test_demo_prometheus_config_is_production_with_the_demo_alerts() -> None:
    production = yaml.safe_load(generate.PROMETHEUS_PATH.read_text())
    demo = yaml.safe_load(generate.DEMO_PROMETHEUS_PATH.read_text())
    assert demo["rule_files"] == ["../recording_rules.yml", "alert_rules.yml"]
    assert {k: v for k, v in demo.items() if k != "rule_files"} == {
        k: v for k, v in production.items() if k != "rule_files"}
    base = generate.DEMO_PROMETHEUS_PATH.parent
    assert [(base / f).resolve() for f in demo["rule_files"]] == [
        generate.RECORDING_PATH, generate.DEMO_ALERTS_PATH]


def test_demo_prometheus_config_needs_the_production_alerts_to_swap() -> None:
    text = generate.PROMETHEUS_PATH.read_text().replace("../alerting/alert_rules.yml",
                                                        "../alerting/other.yml")
    with pytest.raises(ValueError, match="does not load alert_rules.yml"):
        generate.outputs(cfg.load(), prometheus_text=text)


def test_check_reports_a_stale_demo_file_without_writing(tmp_path: Path, capsys) -> None:
    data = yaml.safe_load(cfg.CONFIG_PATH.read_text())
    data["demo"]["for"]["MlmonFeatureDrift"] = "3m"
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(data))
    before = generate.DEMO_ALERTS_PATH.read_text()
    assert generate.main(["--config", str(changed), "--check"]) == 1
    assert "prometheus/demo/alert_rules.yml" in capsys.readouterr().err
    assert generate.DEMO_ALERTS_PATH.read_text() == before
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("config", ["prometheus/prometheus.yml", "prometheus/demo/prometheus.yml"])
def test_promtool_check_config(config: str) -> None:
    result = _run(_tool("promtool"), "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_promtool_check_rules() -> None:
    result = _run(_tool("promtool"), "check", "rules", str(generate.RECORDING_PATH),
                  str(generate.ALERTS_PATH), str(generate.DEMO_ALERTS_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "duplicate" not in result.stdout


@pytest.mark.parametrize("test_file", ["drift_recording_test.yml", "alerts_test.yml",
                                       "demo_alerts_test.yml", "window_counts_test.yml",
                                       "outcomes_recording_test.yml", "label_alerts_test.yml",
                                       "batch_test.yml", "estimation_test.yml",
                                       "pipeline_alerts_test.yml",
                                       "challenger_test.yml"])
def test_promtool_unit_tests(test_file: str) -> None:
    result = _run(_tool("promtool"), "test", "rules", str(PROMETHEUS_TESTS / test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_fail_when_a_threshold_changes(tmp_path: Path) -> None:
    """The alert tests are sensitive: a `for:` one minute shorter breaks them."""
    promtool = _tool("promtool")
    (tmp_path / "prometheus" / "tests").mkdir(parents=True)
    (tmp_path / "alerting").mkdir()
    shutil.copy(generate.RECORDING_PATH, tmp_path / "prometheus")
    text = generate.ALERTS_PATH.read_text().replace("\n        for: 15m", "\n        for: 14m")
    (tmp_path / "alerting" / "alert_rules.yml").write_text(text)
    shutil.copy(PROMETHEUS_TESTS / "alerts_test.yml", tmp_path / "prometheus" / "tests")
    result = _run(promtool, "test", "rules", str(tmp_path / "prometheus/tests/alerts_test.yml"))
    assert result.returncode != 0 and "MlmonFeatureDrift" in result.stdout + result.stderr


def test_amtool_checks_default_and_env_rendered_configs(tmp_path: Path) -> None:
    amtool = _tool("amtool")
    result = _run(amtool, "check-config", str(amconfig.PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    env = {"MLMON_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
           "MLMON_SLACK_CHANNEL": "#ml-alerts", "MLMON_SMTP_SMARTHOST": "smtp.example.com:587",
           "MLMON_ALERT_EMAIL_TO": "oncall@example.com", "MLMON_SMTP_USERNAME": "mlmon",
           "MLMON_SMTP_PASSWORD": "pw-4711"}
    rendered = tmp_path / "am.yml"
    rendered.write_text(amconfig.render(env))
    result = _run(amtool, "check-config", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(rendered.read_text())["receivers"]}
    assert receivers["critical"]["email_configs"][0]["auth_password"] == "pw-4711"
    assert "slack_configs" in receivers["warning"] and "email_configs" not in receivers["warning"]
    assert set(receivers["info"]) == {"name", "webhook_configs"}
    committed = amconfig.PATH.read_text()  # the committed default holds no secret
    assert "pw-4711" not in committed and "hooks.slack.com" not in committed
