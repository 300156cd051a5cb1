"""alerting/amconfig.py: configs rendered from the environment pass Alertmanager's own checker,
and inputs it would reject fail early with one readable line and no file written."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlmon.alerting import amconfig
from tests.conftest import missing_server

REPO = Path(__file__).resolve().parents[2]

# Fake but well-formed values for every variable .env.example lists.
FAKE_ENV = {
    "MLMON_SINK_URL": "http://sink:9095/alerts",
    "MLMON_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/T000/B000/XXXX",
    "MLMON_SLACK_CHANNEL": "#ml-alerts",
    "MLMON_SMTP_SMARTHOST": "smtp.example.invalid:587",
    "MLMON_SMTP_FROM": "mlmon <mlmon@example.invalid>",
    "MLMON_ALERT_EMAIL_TO": "oncall@example.invalid",
    "MLMON_SMTP_USERNAME": "mlmon",
    "MLMON_SMTP_PASSWORD": "fake-password-4711",
}


def _amconfig(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.alerting.amconfig",
                           "--out", str(tmp_path / "am.yml")],
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def _amtool() -> str:
    binary = shutil.which("amtool")
    if binary is None:
        missing_server("amtool")
    return str(binary)


@pytest.mark.integration
def test_config_rendered_from_fake_values_passes_amtool(tmp_path: Path) -> None:
    result = _amconfig(tmp_path, FAKE_ENV)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "am.yml"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # holds the SMTP password
    check = subprocess.run([_amtool(), "check-config", str(out)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(out.read_text())["receivers"]}
    assert receivers["critical"]["email_configs"][0]["smarthost"] == "smtp.example.invalid:587"
    assert receivers["warning"]["slack_configs"][0]["channel"] == "#ml-alerts"


@pytest.mark.integration
def test_amtool_rejects_what_validation_catches(tmp_path: Path) -> None:
    """The check is needed: without it the portless smarthost gives a file amtool rejects."""
    env = {**FAKE_ENV, "MLMON_SMTP_SMARTHOST": "smtp.example.invalid"}
    config = amconfig.build(FAKE_ENV)
    config["receivers"][0]["email_configs"][0]["smarthost"] = env["MLMON_SMTP_SMARTHOST"]
    path = tmp_path / "unchecked.yml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run([_amtool(), "check-config", str(path)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode != 0
    assert "missing port" in check.stdout + check.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"MLMON_SMTP_SMARTHOST": "smtp.example.invalid", "MLMON_ALERT_EMAIL_TO": "a@b.c"},
     "MLMON_SMTP_SMARTHOST must be host:port"),
    ({"MLMON_SMTP_SMARTHOST": "smtp.example.invalid:port", "MLMON_ALERT_EMAIL_TO": "a@b.c"},
     "MLMON_SMTP_SMARTHOST must be host:port"),
    ({"MLMON_SMTP_SMARTHOST": "smtp.example.invalid:25"},
     "MLMON_ALERT_EMAIL_TO is required"),
    ({"MLMON_ALERT_EMAIL_TO": "a@b.c"}, "MLMON_SMTP_SMARTHOST is required"),
    ({"MLMON_SMTP_SMARTHOST": "h:25", "MLMON_ALERT_EMAIL_TO": "oncall"},
     "MLMON_ALERT_EMAIL_TO must be an e-mail address"),
    ({"MLMON_SMTP_SMARTHOST": "h:25", "MLMON_ALERT_EMAIL_TO": "a@b.c",
      "MLMON_SMTP_PASSWORD": "pw"}, "MLMON_SMTP_USERNAME is not"),
    ({"MLMON_SLACK_WEBHOOK_URL": "hooks.slack.invalid/secret"},
     "MLMON_SLACK_WEBHOOK_URL must be an http(s) URL"),
    ({"MLMON_SLACK_CHANNEL": "#x"}, "MLMON_SLACK_WEBHOOK_URL is not"),
    ({"MLMON_SINK_URL": "sink:9095"}, "MLMON_SINK_URL must be an http(s) URL"),
])
def test_bad_input_fails_with_one_line_and_writes_nothing(
        tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _amconfig(tmp_path, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "secret" not in result.stderr  # a Slack URL is a secret: never echoed
    assert not list(tmp_path.iterdir())


def test_empty_values_mean_unset() -> None:
    """compose passes `${MLMON_SLACK_WEBHOOK_URL:-}`: an empty variable is no channel."""
    empty = {name: "" for name in FAKE_ENV}
    assert amconfig.build(empty) == amconfig.build({})


def test_committed_default_is_the_empty_environment() -> None:
    assert amconfig.PATH.read_text() == amconfig.render({})
