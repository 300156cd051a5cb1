"""The demo service: predictions, one observation per request, /metrics, and the CLI."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from mlmon.cli import main
from mlmon.demo.cli import es_url_with_credentials
from mlmon.demo.model import build_profile, train
from mlmon.demo.scenario import drifted
from mlmon.demo.service import create_app
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.logging_sink import JsonLinesSink
from tests.integration.prom_servers import wait_until

MODEL = train()
PROFILE = build_profile(MODEL)


@pytest.fixture
def service() -> tuple[TestClient, CollectorRegistry]:
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(PROFILE, service_name="diabetes-api",
                                           environment="test", registry=registry)
    with TestClient(create_app(MODEL, logger, registry)) as client:
        yield client, registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"model": "diabetes", "model_version": "1", **labels})
    assert value is not None, (name, labels)
    return value


def test_predict_answers_and_counts_one_observation(service) -> None:
    client, registry = service
    record = MODEL.records()[0]
    answer = client.post("/predict", json={"features": record, "request_id": "r-1"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["prediction"] == pytest.approx(MODEL.predict_one(record))
    assert (body["model"], body["model_version"]) == ("diabetes", "1")
    assert body["event_id"]
    assert _value(registry, "mlmon_observations_total") == 1
    assert _value(registry, "mlmon_requests_total", outcome="ok") == 1
    assert _value(registry, "mlmon_inference_latency_seconds_count") == 1  # counted once
    assert _value(registry, "mlmon_prediction_value_count") == 1


class _SpyModel:
    """The demo model, reading the in-flight gauge while it predicts (or failing)."""

    def __init__(self, registry: CollectorRegistry, fail: bool = False) -> None:
        self.name, self.version = MODEL.name, MODEL.version
        self.registry, self.fail, self.in_flight = registry, fail, []

    def predict_one(self, record: dict) -> float:
        self.in_flight.append(_value(self.registry, "mlmon_requests_in_flight"))
        if self.fail:
            raise RuntimeError("model broke")
        return MODEL.predict_one(record)


@pytest.mark.parametrize("fail", [False, True])
def test_each_request_is_in_flight_once_and_the_record_keeps_its_latency(
        tmp_path: Path, fail: bool) -> None:
    registry = CollectorRegistry()
    log = tmp_path / "records.log"
    logger = PredictionLogger.from_profile(
        PROFILE, service_name="diabetes-api", environment="test", registry=registry,
        log_sink=JsonLinesSink.file(str(log), logger_name=f"mlmon.test.demo.{fail}"))
    model = _SpyModel(registry, fail=fail)
    with TestClient(create_app(model, logger, registry)) as client:  # type: ignore[arg-type]
        for _ in range(3):
            answer = client.post("/predict", json={"features": MODEL.records()[0]})
            assert answer.status_code == (500 if fail else 200)
    assert model.in_flight == [1.0, 1.0, 1.0]
    assert _value(registry, "mlmon_requests_in_flight") == 0
    assert _value(registry, "mlmon_inference_latency_seconds_count") == 3  # once per request
    assert _value(registry, "mlmon_requests_total", outcome="error" if fail else "ok") == 3
    assert _value(registry, "mlmon_requests_total", outcome="ok" if fail else "error") == 0
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert len(records) == (0 if fail else 3)
    assert all(r["event"]["duration"] > 0 for r in records)


def test_drifted_records_show_up_in_the_series(service) -> None:
    client, registry = service
    rng = random.Random(3)
    for record in MODEL.records()[:50]:
        assert client.post("/predict", json={"features": drifted(record, rng)}).status_code == 200
    unseen = _value(registry, "mlmon_feature_category_total", feature="channel",
                    category="__unseen__")
    missing = _value(registry, "mlmon_feature_missing_total", feature="bp")
    oov = _value(registry, "mlmon_feature_text_oov_tokens_total", feature="note")
    assert unseen > 5 and missing > 5 and oov > 5


def test_metrics_endpoint_serves_the_registry_without_redirect(service) -> None:
    client, _registry = service
    answer = client.get("/metrics", follow_redirects=False)
    assert answer.status_code == 200
    assert 'mlmon_model_info{model="diabetes"' in answer.text
    assert client.get("/healthz").json()["status"] == "ok"


def test_bad_requests_are_refused_by_validation(service) -> None:
    client, registry = service
    assert client.post("/predict", json={"rows": []}).status_code == 422
    assert _value(registry, "mlmon_observations_total") == 0


def test_write_profile(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    assert main(["demo", "--write-profile", str(out)]) == 0
    profile = Profile.load(out)
    assert profile.model_name == "diabetes"
    assert out.read_text() == PROFILE.dumps()  # deterministic: same data, same bytes
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds["clinic"] == "categorical" and kinds["note"] == "text"
    assert kinds["bmi"] == "numeric"


def test_credentials_go_into_the_url_quoted() -> None:
    assert es_url_with_credentials("http://es:9200", None, "x") == "http://es:9200"
    assert (es_url_with_credentials("http://es:9200", "elastic", "p@ss:w/rd")
            == "http://elastic:p%40ss%3Aw%2Frd@es:9200")


def test_mlmon_demo_says_where_it_listens_once_it_answers() -> None:
    # --port 0: the line must carry the port actually bound, not the one asked for.
    proc = subprocess.Popen([sys.executable, "-m", "mlmon.cli", "demo", "--port", "0"],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(90, proc.kill)  # a demo that never says it listens fails
    watchdog.start()
    try:
        line = proc.stdout.readline()  # blocks until the line (or exit); the demo trains first
        match = re.match(r"mlmon demo: listening on (http://127\.0\.0\.1:(\d+)) ", line)
        assert match and match[2] != "0", (line, proc.poll())
        assert "records not shipped (no --es-url)" in line
        with urllib.request.urlopen(f"{match[1]}/healthz", timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.communicate(timeout=30)


def _demo_failing_on(port: int) -> str:
    """stderr of `mlmon demo --port PORT`, which must exit 2 with one line and print nothing."""
    out = subprocess.run([sys.executable, "-m", "mlmon.cli", "demo", "--port", str(port)],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                         timeout=90)
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def test_mlmon_demo_port_out_of_range_is_one_line() -> None:
    assert _demo_failing_on(99999).startswith(
        "mlmon demo: error: cannot listen on 127.0.0.1:99999: ")


def test_mlmon_demo_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _demo_failing_on(port) == (
            f"mlmon demo: error: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_the_challenger_answers_in_shadow_under_its_own_version() -> None:
    from mlmon.demo.model import train_challenger

    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(PROFILE, service_name="diabetes-api",
                                           environment="test", registry=registry)
    challenger = train_challenger()
    logger.add_challenger(build_profile(challenger), challenger.predict_one)
    records = MODEL.records()[:20]
    at = {"model": "diabetes", "model_version": "2", "champion_version": "1"}

    def compared() -> float:
        return sum(registry.get_sample_value("mlmon_challenger_compared_total",
                                             at | {"agreement": a}) or 0.0
                   for a in ("agree", "disagree"))

    with TestClient(create_app(MODEL, logger, registry)) as client:
        for record in records:
            body = client.post("/predict", json={"features": record}).json()
            assert body["model_version"] == "1"  # the champion answers
        # The challenger's child process starts with the first request, at a lower priority:
        # on a loaded machine it can take longer than close()'s drain (then counted `closed`,
        # tests/test_shadow_process.py), so the test waits for it here, generously.
        wait_until(lambda: compared() >= len(records), 120, "the challenger's comparisons",
                   interval_s=0.2)
    assert compared() == len(records)
    assert registry.get_sample_value("mlmon_observations_total",
                                     {"model": "diabetes", "model_version": "2"}) == len(records)
    diff_sum = registry.get_sample_value("mlmon_challenger_difference_sum", at)
    expected = sum(challenger.predict_one(r) - MODEL.predict_one(r) for r in records)
    assert diff_sum == pytest.approx(expected, rel=1e-9, abs=1e-9)
