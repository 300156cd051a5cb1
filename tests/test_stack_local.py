"""stack/local.py: the compose configuration rewritten for local processes (pure functions), the
run directory a new run inherits, and what `down` may stop."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from mlmon.alerting import generate
from stack import local, processes
from stack.fast_rules import fast_config
from stack.local import (
    PIDS,
    PROMETHEUS_CONFIG,
    SERVICE_PORTS,
    Settings,
    alertmanager_config,
    commands,
    down,
    prepare_run_dir,
    prometheus_config,
    rendered_alertmanager,
    rewrite_address,
    rewrite_url,
    rule_files,
    spool_note,
    up,
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
    jobs = {j["job_name"]: j for j in original["scrape_configs"]}
    # a copy was changed
    assert jobs["mlmon"]["static_configs"][0]["targets"] == ["demo:8000", "demo-risk:8001"]
    local_jobs = {j["job_name"]: j for j in local["scrape_configs"]}
    assert local_jobs["mlmon"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{PORTS['demo']}", f"127.0.0.1:{PORTS['demo-risk']}"]
    assert local_jobs["pushgateway"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{PORTS['pushgateway']}"]
    assert local_jobs["pushgateway"]["honor_labels"] is True
    assert local_jobs["node"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{PORTS['node-exporter']}"]


def test_pushgateway_and_node_exporter_run_as_compose_runs_them(tmp_path: Path) -> None:
    """Loopback ports, the Pushgateway's persistence file in the run directory (kept by a new
    run, like compose's named volume), the node exporter with compose's collectors."""
    settings = Settings(run_dir=tmp_path, ports=PORTS)
    every = commands(settings)
    names = list(every)
    assert names.index("pushgateway") < names.index("prometheus")
    assert names.index("node-exporter") < names.index("prometheus")
    pushgateway = every["pushgateway"]
    assert pushgateway[0] == "prometheus-pushgateway"
    assert f"--web.listen-address=127.0.0.1:{PORTS['pushgateway']}" in pushgateway
    assert f"--persistence.file={tmp_path / 'pushgateway.data'}" in pushgateway
    node = every["node-exporter"]
    assert node[0] == "prometheus-node-exporter"
    assert f"--web.listen-address=127.0.0.1:{PORTS['node-exporter']}" in node
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    collectors = [f for f in compose["services"]["node-exporter"]["command"]
                  if f.startswith("--collector.")]
    assert "--collector.filesystem" in collectors and "--collector.diskstats" in collectors
    assert node[2:] == collectors
    jobs = every["demo-jobs"]
    assert jobs[jobs.index("--pushgateway") + 1] == f"http://127.0.0.1:{PORTS['pushgateway']}"
    assert jobs[jobs.index("--drift-s") + 1] == every["traffic"][
        every["traffic"].index("--drift-s") + 1]  # the batch drifts on the traffic's schedule
    (tmp_path / "pushgateway.data").write_bytes(b"pushed")
    prepare_run_dir(settings)
    assert (tmp_path / "pushgateway.data").read_bytes() == b"pushed"


def test_the_demo_feeds_its_labels_when_records_go_to_elasticsearch(tmp_path: Path) -> None:
    """As compose: the traffic writes each truth with its delay, the labelling job feeds that
    file to Elasticsearch and the stack's Pushgateway. Without Elasticsearch, no labels."""
    es = "http://127.0.0.1:9200"
    every = commands(Settings(run_dir=tmp_path, ports=PORTS, es_url=es, label_delay_s=30,
                              labels_every_s=20))
    traffic, labelling = every["traffic"], every["demo-labels"]
    labels = traffic[traffic.index("--labels-out") + 1]
    assert labels == str(tmp_path / "labels.csv")
    assert traffic[traffic.index("--label-delay-s") + 1] == "30"
    assert labelling[labelling.index("--labels") + 1] == labels
    assert labelling[labelling.index("--es-url") + 1] == es
    assert labelling[labelling.index("--pushgateway") + 1] == (
        f"http://127.0.0.1:{PORTS['pushgateway']}")
    assert labelling[labelling.index("--every-s") + 1] == "20"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert compose["demo-labels"]["command"][1] == "demo-labels"
    assert "--labels-out" in compose["traffic"]["command"]
    # The classifier's truth (its class) in a file of its own, fed with its own profiles.
    traffic, labelling = every["traffic-risk"], every["demo-labels-risk"]
    labels = traffic[traffic.index("--labels-out") + 1]
    assert labels == str(tmp_path / "labels-risk.csv")
    assert labelling[labelling.index("--labels") + 1] == labels
    assert traffic[traffic.index("--model") + 1] == "risk"
    assert labelling[labelling.index("--model") + 1] == "risk"
    assert every["demo-risk"][every["demo-risk"].index("--model") + 1] == "risk"
    assert compose["demo-labels-risk"]["command"][1] == "demo-labels"
    without = commands(Settings(run_dir=tmp_path, ports=PORTS))
    assert "demo-labels" not in without and "--labels-out" not in without["traffic"]
    assert "demo-labels-risk" not in without and "--labels-out" not in without["traffic-risk"]


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


def test_both_demo_services_run_as_compose_runs_them(tmp_path: Path) -> None:
    """The regression and the classifier demo, each on its port with its own spool and a
    traffic generator on the same schedule; compose runs the same pairs."""
    settings = Settings(run_dir=tmp_path, ports=PORTS, es_url="http://127.0.0.1:9200")
    every = commands(settings)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    spools = set()
    for demo, traffic, model in (("demo", "traffic", "progression"),
                                 ("demo-risk", "traffic-risk", "risk")):
        command = every[demo]
        assert command[command.index("--model") + 1] == model
        assert command[command.index("--port") + 1] == str(PORTS[demo])
        spools.add(command[command.index("--spool-dir") + 1])
        assert every[traffic][every[traffic].index("--url") + 1] == settings.url(demo)
        for flag in ("--healthy-s", "--drift-s", "--rate"):
            assert every[traffic][every[traffic].index(flag) + 1] == every["traffic"][
                every["traffic"].index(flag) + 1]
        # compose: the same model, and the traffic pointed at that service
        if model != "progression":
            assert compose[demo]["command"][compose[demo]["command"].index("--model") + 1] \
                == model
        url = compose[traffic]["command"][compose[traffic]["command"].index("--url") + 1]
        assert url == f"http://{demo}:{SERVICE_PORTS[demo]}"
    assert len(spools) == 2  # a spool adopts orphans under it: one per model
    names = list(every)
    assert max(names.index("demo"), names.index("demo-risk")) < names.index("traffic")


def test_the_classifier_demo_spool_is_kept_or_discarded_too(tmp_path: Path) -> None:
    segment = tmp_path / "spool-risk" / "p1" / "00000001.seg"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"x" * 10)
    note = spool_note(Settings(run_dir=tmp_path, es_url="http://127.0.0.1:9200"))
    assert note is not None and str(tmp_path / "spool-risk") in note and "1 files" in note
    prepare_run_dir(Settings(run_dir=tmp_path, discard_spool=True))
    assert not segment.exists()


def _previous_run(run: Path) -> Path:
    """A run directory as a stopped stack leaves it: data, notifications, an undelivered spool."""
    for data in ("prometheus-data", "alertmanager-data", "rules"):
        (run / data).mkdir(parents=True)
        (run / data / "x").write_text("old")
    (run / "notifications.jsonl").write_text("{}\n")
    segment = run / "spool" / "p1" / "00000001.seg"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"x" * 1000)
    return segment


def test_a_new_run_keeps_the_previous_spool_and_says_so(tmp_path: Path) -> None:
    segment = _previous_run(tmp_path)
    settings = Settings(run_dir=tmp_path, es_url="http://127.0.0.1:9200")
    note = spool_note(settings)
    assert note is not None and note.startswith("keeping the previous run's spool")
    assert "1 files, 1,000 bytes" in note and "--discard-spool" in note
    prepare_run_dir(settings)
    assert segment.read_bytes() == b"x" * 1000
    assert not (tmp_path / "prometheus-data").exists()
    assert not (tmp_path / "notifications.jsonl").exists()


def test_discard_spool_drops_it_and_says_so(tmp_path: Path) -> None:
    _previous_run(tmp_path)
    settings = Settings(run_dir=tmp_path, es_url="http://127.0.0.1:9200", discard_spool=True)
    note = spool_note(settings)
    assert note is not None and note.startswith("discarding the previous run's spool")
    prepare_run_dir(settings)
    assert not (tmp_path / "spool").exists()


def test_no_spool_no_note(tmp_path: Path) -> None:
    assert spool_note(Settings(run_dir=tmp_path)) is None
    (tmp_path / "spool").mkdir()
    assert spool_note(Settings(run_dir=tmp_path)) is None  # an empty one holds nothing


def test_down_stops_what_is_still_ours_and_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    ours = subprocess.Popen(["sleep", "300"], start_new_session=True)
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        # `other` stands for a process that got the pid of a recorded one after it ended.
        reused = dataclasses.replace(processes.identify("sink", other.pid), start_ticks=1)
        processes.save(tmp_path / PIDS, [reused, processes.identify("demo", ours.pid)])
        outcomes = down(Settings(run_dir=tmp_path), timeout_s=10)
        assert outcomes[0] == f"demo: stopped (pid {ours.pid})"
        assert "sink: not running" in outcomes[1] and "left alone" in outcomes[1]
        assert ours.poll() is not None and other.poll() is None
        assert not (tmp_path / PIDS).exists()
    finally:
        for process in (ours, other):
            process.kill()
            process.wait(timeout=10)


def test_up_refuses_to_start_beside_a_running_stack_and_forgets_a_dead_one(
        tmp_path: Path) -> None:
    running = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        processes.save(tmp_path / PIDS, [processes.identify("prometheus", running.pid)])
        with pytest.raises(RuntimeError, match=rf"running stack \(prometheus \(pid {running.pid}"):
            up(Settings(run_dir=tmp_path))
    finally:
        running.kill()
        running.wait(timeout=10)
    # Now every recorded process has ended (as after a crash): the record is dropped, and `up`
    # goes on to its next check, which a port held here makes fail before anything starts.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        ports = {**PORTS, "sink": holder.getsockname()[1]}
        with pytest.raises(RuntimeError, match="ports in use: sink"):
            up(Settings(run_dir=tmp_path, ports=ports))
    assert not (tmp_path / PIDS).exists()


@pytest.mark.parametrize(("option", "value", "rule"), [
    ("--labels-every-s", "0", "> 0"), ("--labels-every-s", "-5", "> 0"),
    ("--label-delay-s", "-1", ">= 0"), ("--jobs-every-s", "0", "> 0"), ("--rate", "nan", "> 0"),
])
def test_a_timing_its_processes_would_refuse_is_one_line_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str,
        rule: str) -> None:
    assert local.main(["up", "--run-dir", str(tmp_path / "run"), option, value]) == 2
    err = capsys.readouterr().err
    assert err == f"stack: error: {option} {float(value):g}: must be a number {rule}\n", err
    assert not (tmp_path / "run").exists()  # nothing started
