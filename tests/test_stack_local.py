"""stack/local.py: the compose configuration rewritten for local processes (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerting import generate
from stack.fast_rules import fast_config
from stack.local import (
    PROMETHEUS_CONFIG,
    SERVICE_PORTS,
    Settings,
    alertmanager_config,
    commands,
    prometheus_config,
    rendered_alertmanager,
    rewrite_address,
    rewrite_url,
    rule_files,
)

PORTS = {name: 20000 + i for i, name in enumerate(SERVICE_PORTS)}
REPO = Path(__file__).resolve().parent.parent


def test_only_compose_service_addresses_are_rewritten() -> None:
    assert rewrite_address("demo:8000", PORTS) == f"127.0.0.1:{PORTS['demo']}"
    assert rewrite_address("localhost:9090", PORTS) == f"127.0.0.1:{PORTS['prometheus']}"
    assert rewrite_address("example.com:80", PORTS) == "example.com:80"
    assert (rewrite_url("http://sink:9095/alerts", PORTS)
            == f"http://127.0.0.1:{PORTS['sink']}/alerts")
    assert rewrite_url("https://hooks.slack.com/x", PORTS) == "https://hooks.slack.com/x"


def test_prometheus_config_keeps_everything_but_addresses_and_timing() -> None:
    original = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    local = prometheus_config(original, PORTS, ["/abs/rules.yml"], scrape_interval="1s")
    targets = [t for job in local["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert targets and all(t.startswith("127.0.0.1:") for t in targets)
    assert [j["job_name"] for j in local["scrape_configs"]] == [
        j["job_name"] for j in original["scrape_configs"]]
    assert local["global"]["scrape_interval"] == "1s"
    assert local["global"]["evaluation_interval"] == original["global"]["evaluation_interval"]
    assert local["rule_files"] == ["/abs/rules.yml"]
    assert original["scrape_configs"][-1]["static_configs"][0]["targets"] == ["demo:8000"]


def test_alertmanager_config_rewrites_webhooks_and_grouping() -> None:
    original = rendered_alertmanager({})
    assert original == yaml.safe_load((REPO / "alerting" / "alertmanager.yml").read_text())
    local = alertmanager_config(original, PORTS, group_wait="1s", group_interval="5s")
    urls = [w["url"] for r in local["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith(f"http://127.0.0.1:{PORTS['sink']}/") for u in urls)
    assert local["route"]["group_wait"] == "1s"
    assert all(r.get("group_wait", "1s") == "1s" for r in local["route"].get("routes", []))
    assert local["route"]["receiver"] == original["route"]["receiver"]


def test_the_stack_runs_the_demo_timing_profile() -> None:
    original = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    paths = [Path(p) for p in rule_files(Settings(), original)]
    assert paths == [generate.RECORDING_PATH, generate.DEMO_ALERTS_PATH]
    assert all(p.is_file() for p in paths)


def test_fast_rules_shorten_only_the_demo_alerts(tmp_path: Path) -> None:
    committed = yaml.safe_load((REPO / "alerting" / "config.yaml").read_text())
    fast = fast_config("10s")
    assert fast["demo"]["for"] == {name: "10s" for name in committed["demo"]["for"]}
    assert fast["alerts"] == committed["alerts"]  # the production timing is untouched
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump(fast))
    paths = rule_files(Settings(run_dir=tmp_path, rules_config=config), yaml.safe_load(
        PROMETHEUS_CONFIG.read_text()))
    assert [Path(p).name for p in paths] == ["recording_rules.yml", "alert_rules.yml"]
    alerts = {r["alert"]: r["for"] for g in yaml.safe_load(Path(paths[1]).read_text())["groups"]
              for r in g["rules"]}
    for name, duration in alerts.items():
        expected = "10s" if name in committed["demo"]["for"] else committed["alerts"][name]["for"]
        assert duration == expected, name
    assert Path(paths[0]).read_text() == generate.RECORDING_PATH.read_text()


def test_a_bad_rules_config_is_one_readable_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("windows: [5m]\n")
    with pytest.raises(RuntimeError, match="missing key"):
        rule_files(Settings(run_dir=tmp_path, rules_config=config),
                   yaml.safe_load(PROMETHEUS_CONFIG.read_text()))


def test_a_relative_run_dir_becomes_absolute() -> None:
    # Prometheus resolves rule files against its config's directory, inside the run dir.
    assert Settings(run_dir=Path(".run/x")).run_dir.is_absolute()


def test_alertmanager_gets_slack_and_email_from_the_environment(tmp_path: Path) -> None:
    """As compose's am-config: rendered at start-up, written owner-only, the sink on loopback."""
    environment = {"MLMON_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/T/B/X",
                   "MLMON_SMTP_SMARTHOST": "smtp.example.invalid:587",
                   "MLMON_ALERT_EMAIL_TO": "oncall@example.invalid"}
    settings = Settings(run_dir=tmp_path, ports=PORTS, environment=environment)
    command = commands(settings)["alertmanager"]
    written = tmp_path / "alertmanager.yml"
    assert f"--config.file={written}" in command
    assert written.stat().st_mode & 0o077 == 0
    receivers = {r["name"]: r for r in yaml.safe_load(written.read_text())["receivers"]}
    assert receivers["warning"]["slack_configs"][0]["api_url"] == environment[
        "MLMON_SLACK_WEBHOOK_URL"]  # not an address of the stack: not rewritten
    assert receivers["critical"]["email_configs"][0]["smarthost"] == "smtp.example.invalid:587"
    assert receivers["info"]["webhook_configs"][0]["url"] == (
        f"http://127.0.0.1:{PORTS['sink']}/alerts")


def test_a_bad_notification_setting_is_one_readable_error(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path, ports=PORTS, environment={
        "MLMON_SMTP_SMARTHOST": "smtp.example.invalid", "MLMON_ALERT_EMAIL_TO": "a@b.c"})
    with pytest.raises(RuntimeError, match="MLMON_SMTP_SMARTHOST must be host:port"):
        commands(settings)
    assert not (tmp_path / "alertmanager.yml").exists()
