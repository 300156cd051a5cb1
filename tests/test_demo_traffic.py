"""The traffic schedule, the drift scenario and the generator loop (fake clock, no network)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mlmon.demo import scenario
from mlmon.demo.scenario import DRIFT, HEALTHY, Schedule, drifted
from mlmon.demo.traffic import check_target, drive
from mlmon.errors import CliError

RECORD = {"bmi": 25.0, "bp": 90.0, "clinic": "north", "channel": "web", "sex": "1",
          "note": "routine check"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_schedule_phases_and_end() -> None:
    schedule = Schedule(healthy_s=10, drift_s=5)
    assert [schedule.phase(t) for t in (0, 9.99, 10, 14.99, 15)] == [HEALTHY, HEALTHY, DRIFT,
                                                                     DRIFT, None]
    with pytest.raises(ValueError, match=">= 0"):
        Schedule(healthy_s=-1, drift_s=5)


def test_drift_applies_every_change_at_its_share() -> None:
    rng = random.Random(0)
    out = [drifted(RECORD, rng) for _ in range(4000)]
    assert all(r["bmi"] == 25.0 + scenario.BMI_SHIFT for r in out)
    share = {
        "rare": sum(r["clinic"] == scenario.RARE_CATEGORY for r in out) / len(out),
        "unseen": sum(r["channel"] in scenario.UNSEEN_CHANNELS for r in out) / len(out),
        "null": sum(r[scenario.NULL_FEATURE] is None for r in out) / len(out),
        "oov": sum(r["note"] in scenario.OOV_NOTES for r in out) / len(out),
    }
    assert share["oov"] == pytest.approx(scenario.OOV_SHARE, abs=0.03)
    assert share["rare"] == pytest.approx(scenario.RARE_SHARE, abs=0.03)
    assert share["unseen"] == pytest.approx(scenario.UNSEEN_SHARE, abs=0.03)
    assert share["null"] == pytest.approx(scenario.NULL_SHARE, abs=0.03)
    assert RECORD["bmi"] == 25.0  # the input is left alone


def test_drive_sends_at_the_rate_and_switches_phase_on_schedule() -> None:
    clock = FakeClock()
    sent: list[tuple[float, dict[str, Any]]] = []
    phases: list[str] = []

    def send(record: dict[str, Any]) -> bool:
        sent.append((clock.now - 100.0, record))
        return len(sent) % 10 != 0  # every tenth request fails, and is counted

    counts = drive(send, [RECORD], Schedule(healthy_s=2, drift_s=1), rate=10.0,
                   rng=random.Random(1), clock=clock, sleep=clock.sleep, on_phase=phases.append)
    assert phases == [HEALTHY, DRIFT]
    assert len(sent) == 30
    assert counts[f"{HEALTHY}_ok"] + counts[f"{HEALTHY}_failed"] == 20
    assert counts[f"{DRIFT}_failed"] + counts[f"{HEALTHY}_failed"] == 3
    assert all(r["bmi"] == 25.0 for t, r in sent if t < 2)
    assert all(r["bmi"] == 25.0 + scenario.BMI_SHIFT for t, r in sent if t >= 2)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:80"])
def test_loopback_targets_are_allowed(url: str) -> None:
    check_target(url, allow_remote=False)


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1:8000", "ftp://127.0.0.1"])
def test_other_targets_are_refused_without_allow_remote(url: str) -> None:
    with pytest.raises(CliError):
        check_target(url, allow_remote=False)
    if url.startswith("http"):
        check_target(url, allow_remote=True)


def test_labels_out_writes_the_target_of_each_answered_request(tmp_path: Any) -> None:
    import csv
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlmon.demo.traffic import TARGET, http_sender, with_labels

    bodies: list[dict[str, Any]] = []

    class Service(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            refused = body["features"]["bmi"] < 0  # the service fails this one
            self.send_response(500 if refused else 200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "labels.csv"
        send = with_labels(http_sender(f"http://127.0.0.1:{server.server_port}"), path, "run",
                           delay=iter([60.0, 90.0]).__next__, clock=lambda: 1000.0)
        assert send({**RECORD, TARGET: 151.0})
        assert not send({**RECORD, "bmi": -1.0, TARGET: 75.0})
        assert send({**RECORD, TARGET: 141.0})
        # A second run appends (one header), with its own prefix.
        assert with_labels(http_sender(f"http://127.0.0.1:{server.server_port}"), path,
                           "next", clock=lambda: 2000.0)({**RECORD, TARGET: 12.5})
    finally:
        server.shutdown()
    assert [b["request_id"] for b in bodies] == ["run-0", "run-1", "run-2", "next-0"]
    assert all(b["features"] == {**RECORD, **({"bmi": -1.0} if n == 1 else {})}
               for n, b in enumerate(bodies))  # the target never reaches the service
    with open(path, newline="", encoding="utf-8") as fh:
        # The arrival: the answer's time plus the delay (none drawn for the refused request).
        assert list(csv.reader(fh)) == [["request_id", "target", "arrived_at"],
                                        ["run-0", "151.0", "1060.000"],
                                        ["run-2", "141.0", "1090.000"],
                                        ["next-0", "12.5", "2000.000"]]


def test_labels_out_refuses_a_file_with_another_header(tmp_path: Any) -> None:
    from mlmon.demo.traffic import with_labels

    path = tmp_path / "labels.csv"
    path.write_text("request_id,target\nold-0,151.0\n")
    with pytest.raises(CliError, match="request_id,target,arrived_at"):
        with_labels(lambda record: True, path, "run")
    assert path.read_text() == "request_id,target\nold-0,151.0\n"  # left as it was


def test_the_truth_is_the_served_models_target_or_class() -> None:
    """--model progression writes the regression's target; --model risk the class the
    classifier was trained on (the same rule: its training labels, row for row)."""
    import argparse

    from mlmon.demo.cli import PROGRESSION, RISK
    from mlmon.demo.model import RISK_CLASSES, reference_frame, train_risk
    from mlmon.demo.traffic import add_arguments, truths

    frame = reference_frame()
    assert truths(frame, PROGRESSION) == frame["target"].tolist()
    classes = truths(frame, RISK)
    assert classes == train_risk().labels().tolist()
    assert set(classes) == set(RISK_CLASSES)
    # "high" is the top of the targets: every high row's target above every low row's
    high = [t for t, c in zip(frame["target"], classes, strict=True) if c == "high"]
    low = [t for t, c in zip(frame["target"], classes, strict=True) if c == "low"]
    assert min(high) > max(low) and 0.1 < len(high) / len(frame) < 0.2
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).model == PROGRESSION  # the regression demo, as before
    assert parser.parse_args(["--model", RISK]).model == RISK


def test_a_labels_out_that_cannot_be_written_is_one_line_before_waiting_for_the_service(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from mlmon.cli import main

    with socket.socket() as s:  # a port nobody listens on: the service would never be ready
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    labels = tmp_path / "no-such-folder" / "labels.csv"
    assert main(["traffic", "--url", f"http://127.0.0.1:{port}", "--labels-out", str(labels),
                 "--wait-ready-s", "3"]) == 2
    err = capsys.readouterr().err
    assert err == (f"mlmon traffic: error: --labels-out {labels}: No such file or "
                   "directory\n"), err


def test_a_service_serving_another_model_than_model_is_refused_in_one_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlmon.cli import main
    from mlmon.demo.model import RISK_MODEL_NAME

    posts: list[str] = []

    class Classifier(BaseHTTPRequestHandler):  # the classifier demo's /healthz, as it answers
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps({"status": "ok", "model": RISK_MODEL_NAME}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            posts.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Classifier)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    labels = tmp_path / "labels.csv"
    run = ["traffic", "--url", url, "--labels-out", str(labels), "--healthy-s", "0.3",
           "--drift-s", "0", "--rate", "10"]
    try:
        assert main(run) == 2  # --model progression (the default)
        err = capsys.readouterr().err
        assert err == (f"mlmon traffic: error: --model progression: the service at {url} "
                       f"serves model '{RISK_MODEL_NAME}', not 'diabetes'; pass --model "
                       "risk\n"), err
        assert posts == [] and labels.read_text() == "request_id,target,arrived_at\n"
        assert main([*run, "--model", "risk"]) == 0
    finally:
        server.shutdown()
    assert posts and labels.read_text().splitlines()[1].split(",")[1] in ("high", "low")
