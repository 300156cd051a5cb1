"""Training runs on real servers: `mlmon training-run` and TrainingRun push to a Pushgateway,
Prometheus scrapes it with the committed job (honor_labels), and the alerts built on the pushed
series fire through Alertmanager to the notification sink.

The live model is a replica process exporting tests/profiles.py's profile (churn version 3,
trained 2026-10-01); the training runs report newer or equal models. `for:` is overridden to 0s
(the durations themselves are promtool-tested in prometheus/tests/pipeline_alerts_test.yml).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import mlmon.names as N
from mlmon.exporter.layout import trained_timestamp
from mlmon.exporter.profile import Profile
from mlmon.exporter.training import TrainingRun
from tests.integration import prom_servers
from tests.integration.prom_servers import Prometheus, start_replica, wait_until
from tests.profiles import sample_profile_dict

pytestmark = pytest.mark.integration

prometheus_factory = prom_servers.prometheus_factory
alertmanager_factory = prom_servers.alertmanager_factory
pushgateway_factory = prom_servers.pushgateway_factory
notification_sink = prom_servers.notification_sink

REPO = Path(__file__).resolve().parents[2]


def _training_run(pushgateway: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", "training-run", "--pushgateway",
                           pushgateway, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def _profile(tmp_path: Path, **model: Any) -> Path:
    data = sample_profile_dict()
    data["model"].update(model)
    path = tmp_path / f"profile-{data['model']['version']}.json"
    path.write_text(json.dumps(data))
    return path


def _labels(prom: Prometheus, expr: str) -> list[dict[str, str]]:
    return [r["metric"] for r in prom.query(expr)]


def _firing(sink: Any, alertname: str) -> list[dict[str, Any]]:
    return [alert for payload in sink.notifications() for alert in payload["alerts"]
            if alert["status"] == "firing" and alert["labels"]["alertname"] == alertname]


def test_runs_are_scraped_with_their_labels_and_a_failure_keeps_the_newest_model(
        tmp_path: Path, pushgateway_factory, prometheus_factory) -> None:
    gateway = pushgateway_factory()
    prom = prometheus_factory(targets={"pushgateway": [gateway.url.removeprefix("http://")]})
    profile = _profile(tmp_path, version="4", trained_at="2026-11-01T00:00:00Z")
    sha = Profile.load(profile).sha

    done = _training_run(gateway.url, "--job", "retrain", "--profile", str(profile),
                         "--rows", "120000", "--metric", "accuracy=0.91", "--", "true")
    assert done.returncode == 0, done.stderr
    assert "retrain/churn succeeded: version 4" in done.stdout
    trained = prom.wait_for(N.TRAINING_MODEL_TRAINED.name, timeout=30)
    # honor_labels: the pushed job and the grouping key's model, not the scrape target's.
    assert trained[0]["metric"] == {"__name__": N.TRAINING_MODEL_TRAINED.name, "job": "retrain",
                                    "model": "churn", "model_version": "4", "profile_sha": sha}
    # The profile's trained time, as the exporter exports it once the model is deployed.
    assert float(trained[0]["value"][1]) == trained_timestamp(Profile.load(profile))
    assert prom.values(N.TRAINING_MODEL_METRIC.name, "metric") == {"accuracy": 0.91}
    assert prom.values(N.TRAINING_RUN_ROWS.name, "model") == {"churn": 120000.0}
    assert 0 < prom.values(N.TRAINING_RUN_DURATION.name, "model")["churn"] < 30  # `true`, timed
    assert prom.values(N.TRAINING_RUN_SUCCESS.name, "job") == {"retrain": 1.0}
    success_at = prom.values(N.TRAINING_LAST_SUCCESS.name, "model")["churn"]

    # A successful run from the Python API, for another model: its own group.
    with TrainingRun("retrain", "fraud", pushgateway=gateway.url) as run:
        run.succeeded(version="9", rows=10, metrics={"auc": 0.75}, trained_at=1.0e9)
    prom.wait_for(f'{N.TRAINING_MODEL_TRAINED.name}{{model="fraud"}}', timeout=30)
    assert _labels(prom, f'{N.TRAINING_MODEL_TRAINED.name}{{model="fraud"}}')[0][
        "model_version"] == "9"
    assert prom.values(f'{N.TRAINING_MODEL_METRIC.name}{{model="fraud"}}', "metric") == {
        "auc": 0.75}

    # A failed run, from the Python API: an exception inside the block.
    with pytest.raises(RuntimeError, match="out of memory"), \
            TrainingRun("retrain", "churn", pushgateway=gateway.url):
        raise RuntimeError("out of memory")
    prom.wait_for(f"{N.TRAINING_RUN_SUCCESS.name}{{model=\"churn\"}} == 0", timeout=30)
    # The newest model and the last success are the successful run's, untouched.
    churn = '{model="churn"}'
    assert _labels(prom, N.TRAINING_MODEL_TRAINED.name + churn)[0]["model_version"] == "4"
    assert prom.values(N.TRAINING_LAST_SUCCESS.name + churn, "model") == {"churn": success_at}
    assert prom.values(N.TRAINING_MODEL_METRIC.name + churn, "metric") == {"accuracy": 0.91}
    # Each (job, model) is its own group: another job's run does not touch retrain's.
    other = _training_run(gateway.url, "--job", "manual", "--model", "churn", "--version", "5",
                          "--duration-s", "1")
    assert other.returncode == 0, other.stderr
    prom.wait_for(f'{N.TRAINING_RUN_SUCCESS.name}{{job="manual"}}', timeout=30)
    assert prom.values(N.TRAINING_RUN_SUCCESS.name + churn, "job") == {"retrain": 0.0,
                                                                        "manual": 1.0}


def test_failed_and_never_deployed_runs_notify_through_alertmanager(
        tmp_path: Path, pushgateway_factory, prometheus_factory, alertmanager_factory,
        notification_sink) -> None:
    live = start_replica(tmp_path, _profile(tmp_path), [], "live")  # churn 3, 2026-10-01
    try:
        gateway = pushgateway_factory()
        am = alertmanager_factory(webhook_url=notification_sink.url + "/alerts")
        prom = prometheus_factory(targets={"pushgateway": [gateway.url.removeprefix("http://")],
                                           "mlmon": [live.url.removeprefix("http://")]},
                                  alertmanager=am)
        # churn 4, trained 2026-11-01 (newer than the live 3, and more than 24h ago): never
        # deployed. fraud's retraining fails (a command exiting 3; the status is passed on).
        newer = _profile(tmp_path, version="4", trained_at="2026-11-01T00:00:00Z")
        done = _training_run(gateway.url, "--job", "retrain", "--profile", str(newer),
                             "--duration-s", "60")
        assert done.returncode == 0, done.stderr
        failed = _training_run(gateway.url, "--job", "retrain", "--model", "fraud",
                               "--version", "10", "--", sys.executable, "-c", "raise SystemExit(3)")
        assert failed.returncode == 3, failed.stderr
        assert "retrain/fraud failed" in failed.stdout

        undeployed = wait_until(lambda: _firing(notification_sink, "MlmonTrainedModelNotDeployed"),
                           90, "MlmonTrainedModelNotDeployed at the sink")
        assert undeployed[0]["labels"] == {
            "alertname": "MlmonTrainedModelNotDeployed", "severity": "warning",
            "job": "retrain", "model": "churn", "model_version": "4",
            "profile_sha": Profile.load(newer).sha}
        assert "trained 2026-11-01 00:00:00 +0000 UTC" in undeployed[0]["annotations"][
            "description"]
        failure = wait_until(lambda: _firing(notification_sink, "MlmonTrainingFailed"), 90,
                        "MlmonTrainingFailed at the sink")
        assert failure[0]["labels"] == {"alertname": "MlmonTrainingFailed",
                                        "severity": "warning", "job": "retrain",
                                        "model": "fraud"}

        # Deploying the new model ends it: the live target now exports version 4's profile.
        old = live.url.removeprefix("http://")
        live.stop()
        live = start_replica(tmp_path / "deployed", newer, [], "deployed")
        config = prom.log.parent / "prometheus.yml"
        config.write_text(config.read_text().replace(old, live.url.removeprefix("http://")))
        urllib.request.urlopen(urllib.request.Request(prom.url + "/-/reload", method="POST"),
                               timeout=30).close()
        prom.wait_for('mlmon_model_info{model_version="4"}', timeout=30)
        prom.wait_for('ALERTS{alertname="MlmonTrainedModelNotDeployed"}',
                      lambda result: not result, timeout=60)
    finally:
        live.stop()


def _pushed_success(gateway_url: str) -> dict[tuple[str, str], float]:
    """(job, model) -> the success gauge, as the Pushgateway holds it."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(gateway_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(s.labels["job"], s.labels["model"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == N.TRAINING_RUN_SUCCESS.name}


def test_a_wrong_line_fails_before_the_run_and_a_failure_is_pushed_whatever_is_missing(
        tmp_path: Path, pushgateway_factory) -> None:
    gateway = pushgateway_factory()
    ran = tmp_path / "ran"
    wrong = _training_run(gateway.url, "--job", "retrain", "--model", "churn", "--",
                          "touch", str(ran))
    assert wrong.returncode == 2
    assert wrong.stderr == ("mlmon training-run: error: a successful run needs --version or "
                            "--profile\n")
    assert not ran.exists()  # refused before the command ran

    # A failed command that wrote no profile, and no --model: reported under the job's name.
    missing = tmp_path / "missing.json"
    failed = _training_run(gateway.url, "--job", "retrain", "--profile", str(missing), "--",
                           sys.executable, "-c", "raise SystemExit(4)")
    assert failed.returncode == 4, failed.stderr
    # A command that exits 0 but leaves no profile produced no model: a failed run, exit 2.
    empty = _training_run(gateway.url, "--job", "nightly", "--profile", str(missing), "--", "true")
    assert empty.returncode == 2
    assert "reported as a failed run of nightly/nightly" in empty.stderr
    assert _pushed_success(gateway.url) == {("retrain", "retrain"): 0.0,
                                            ("nightly", "nightly"): 0.0}

    # The Pushgateway goes away during a run that then fails: the command's status is kept.
    port = int(gateway.url.rsplit(":", 1)[1])
    stop = (f"import os, signal, socket, time\nos.kill({gateway.process.pid}, signal.SIGTERM)\n"
            "while True:\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
            "    except OSError:\n"
            "        raise SystemExit(5)\n"
            "    time.sleep(0.1)\n")
    gone = _training_run(gateway.url, "--job", "retrain", "--model", "churn", "--version", "5",
                         "--", sys.executable, "-c", stop)
    assert gone.returncode == 5
    assert gone.stderr.startswith(f"mlmon training-run: error: cannot reach the Pushgateway "
                                  f"{gateway.url} to push job=retrain model=churn: ")
    assert gone.stderr.count("\n") == 1
