"""docker-compose.yml: valid for docker-compose, and every reference points at something real.

Validation uses Debian's docker-compose 1.29 (`config -q` needs no engine). The consistency checks
read the resolved file and follow every reference: scrape targets, the Alertmanager address,
webhook and datasource URLs, bind-mounted paths and the files Prometheus loads from them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mlmon.alerting import amconfig, generate
from tests.conftest import missing_server

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"


def _compose(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_server("docker-compose")
    command = [binary] + (["--env-file", str(env_file)] if env_file else [])
    # --project-directory: relative paths resolve against the repository, wherever pytest runs.
    command += ["--project-directory", str(REPO), "-f", str(COMPOSE), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as docker-compose resolves it (.env.example values, absolute bind paths)."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_config_is_valid_for_docker_compose() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_passwords_have_no_default(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr


def test_env_example_holds_placeholders_only() -> None:
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#"))
    passwords = {k: v for k, v in values.items() if k.endswith("PASSWORD")}
    assert set(passwords) == {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
                              "GRAFANA_ES_PASSWORD"}
    assert set(passwords.values()) == {"change-me"}


def test_make_writes_env_with_random_passwords(tmp_path: Path) -> None:
    for name in ("Makefile", ".env.example", "mk/stack.mk"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    run = subprocess.run(["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    values = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines()
                  if line and not line.startswith("#"))
    passwords = [v for k, v in values.items() if k.endswith("PASSWORD")]
    assert len(passwords) == 4 and len(set(passwords)) == 4
    assert all(len(p) >= 24 and p != "change-me" for p in passwords)
    assert values["MLMON_HEALTHY_S"] == "180"  # non-secret settings are carried over
    assert "MLMON_SMTP_PASSWORD" not in values  # optional ones stay commented out
    assert "# MLMON_SMTP_PASSWORD=" in (tmp_path / ".env").read_text()
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # readable by the owner only


def test_images_are_pinned_to_exact_versions(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not an exact version"
        if image.startswith("docker.elastic.co/"):
            assert tag.startswith("8.14."), f"{name}: the Elastic stack must be 8.14.x"


def test_pushgateway_and_node_exporter_match_the_tested_debian_versions(
        resolved: dict[str, Any]) -> None:
    """The images are the versions `make stack` and the tests run (Debian bookworm), the
    Pushgateway persists into a named volume, and Prometheus keeps what jobs pushed."""
    services = resolved["services"]
    assert services["pushgateway"]["image"] == "prom/pushgateway:v1.5.1"
    assert services["node-exporter"]["image"] == "prom/node-exporter:v1.5.0"
    persistence = _flag(services["pushgateway"]["command"], "--persistence.file")
    volumes = dict((target, source) for source, target in _volumes(services["pushgateway"]))
    source = volumes[str(Path(persistence).parent)]
    assert not source.startswith("/") and source in resolved["volumes"]
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == ["pushgateway:9091"]
    assert jobs["node"]["static_configs"][0]["targets"] == ["node-exporter:9100"]


def test_long_running_services_have_healthchecks(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        if service.get("restart") != "no":
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_dependencies_name_services_with_conditions(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if services[dependency].get("restart") == "no":
                assert condition == "service_completed_successfully", (name, dependency)
            else:
                assert condition == "service_healthy", (name, dependency)


def test_published_ports_bind_loopback_only(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for ip, port in _ports(service):
            assert ip == "127.0.0.1", f"{name}: {port} is published on {ip}"


def _ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host ip, container port) of each published port; 1.29 prints `ip:host:container/tcp`."""
    out = []
    for port in service.get("ports", []):
        ip, _host, container = str(port).split("/")[0].rsplit(":", 2)
        out.append((ip, int(container)))
    return out


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {port for _ip, port in _ports(service)}


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of each volume; a source starting with / is a bind mount."""
    return [tuple(str(v).split(":")[:2]) for v in service.get("volumes", [])]


def _bind_mounts(resolved: dict[str, Any]) -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount."""
    return [(name, Path(source), target) for name, service in resolved["services"].items()
            for source, target in _volumes(service) if source.startswith("/")]


# The one bind mount from outside the repository: the node exporter reads the host's root
# filesystem (read-only) to report the host's disks, not its container's.
HOST_MOUNTS = {("node-exporter", Path("/"), "/host")}


def test_bind_mounts_exist_and_named_volumes_are_declared(resolved: dict[str, Any]) -> None:
    mounts = _bind_mounts(resolved)
    assert mounts
    for name, source, target in mounts:
        if (name, source, target) in HOST_MOUNTS:
            continue
        assert source.is_relative_to(REPO), f"{name}: {source} is outside the repository"
        assert source.exists(), f"{name}: {source.relative_to(REPO)} does not exist"
    declared = set(resolved.get("volumes", {}))
    for name, service in resolved["services"].items():
        for source, _target in _volumes(service):
            if not source.startswith("/"):
                assert source in declared, f"{name}: volume {source} is not declared"


def _host_path(resolved: dict[str, Any], service: str, container_path: str) -> Path:
    """Map a path inside a service's container to the repository file mounted there."""
    for name, source, target in _bind_mounts(resolved):
        if name == service and (container_path + "/").startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target):].lstrip("/")
    raise AssertionError(f"{service}: nothing is mounted at {container_path}")


def _read(path: Path) -> str:
    """A mounted file; a missing one is a failure (the container would not start)."""
    assert path.is_file(), f"{path.relative_to(REPO)} does not exist"
    return path.read_text()


def _flag(command: list[str], flag: str) -> str:
    values = [c.split("=", 1)[1] for c in command if c.startswith(flag + "=")]
    assert values, f"{flag} not in {command}"
    return values[0]


def _assert_service_url(resolved: dict[str, Any], where: str, address: str) -> None:
    host, _, port = address.partition(":")
    services = resolved["services"]
    assert host in services, f"{where}: {address} is not a compose service"
    exposed = _container_ports(services[host])
    if port and exposed:
        assert int(port) in exposed, f"{where}: {host} does not serve port {port}"


def test_prometheus_config_targets_and_rule_files(resolved: dict[str, Any]) -> None:
    command = resolved["services"]["prometheus"]["command"]
    config_path = _host_path(resolved, "prometheus", _flag(command, "--config.file"))
    config = yaml.safe_load(_read(config_path))
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]]
    assert targets
    for target in targets:
        if target == "localhost:9090":  # Prometheus scraping itself, inside its container
            continue
        _assert_service_url(resolved, "scrape target", target)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "mlmon" in jobs  # the exporter job the alert rules select (alerting/config.yaml)
    for am in config["alerting"]["alertmanagers"]:
        for sc in am["static_configs"]:
            for target in sc["targets"]:
                _assert_service_url(resolved, "alertmanager", target)
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        inside = os.path.normpath(Path(_flag(command, "--config.file")).parent / rule_file)
        matches = list(_host_path(resolved, "prometheus", inside).parent.glob(Path(inside).name))
        assert matches, f"rule file {rule_file} does not resolve to a mounted file"


def test_prometheus_runs_the_generated_demo_timing_profile(resolved: dict[str, Any]) -> None:
    command = resolved["services"]["prometheus"]["command"]
    config_path = _host_path(resolved, "prometheus", _flag(command, "--config.file"))
    assert config_path.resolve() == generate.DEMO_PROMETHEUS_PATH
    config = yaml.safe_load(_read(config_path))
    loaded = {(config_path.parent / f).resolve() for f in config["rule_files"]}
    assert loaded == {generate.RECORDING_PATH, generate.DEMO_ALERTS_PATH}
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"prometheus", "alertmanager", "mlmon"} <= jobs


def test_env_switches_prometheus_to_the_production_timing(tmp_path: Path) -> None:
    env_file = tmp_path / "production.env"
    env_file.write_text(re.sub(r"(?m)^MLMON_PROMETHEUS_CONFIG=.*$",
                               "MLMON_PROMETHEUS_CONFIG=prometheus.yml", ENV_EXAMPLE.read_text()))
    result = _compose("config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    production = yaml.safe_load(result.stdout)
    command = production["services"]["prometheus"]["command"]
    config_path = _host_path(production, "prometheus", _flag(command, "--config.file"))
    assert config_path.resolve() == generate.PROMETHEUS_PATH
    config = yaml.safe_load(_read(config_path))
    inside = Path(_flag(command, "--config.file")).parent
    loaded = {_host_path(production, "prometheus", os.path.normpath(inside / f)).resolve()
              for f in config["rule_files"]}
    assert loaded == {generate.RECORDING_PATH, generate.ALERTS_PATH}


def _needs(services: dict[str, Any], name: str) -> set[str]:
    """Every service `name` waits for, directly or through others."""
    direct = set(services[name].get("depends_on", {}))
    return direct.union(*(_needs(services, d) for d in direct))


def test_traffic_waits_for_elasticsearch_setup_but_not_for_kibana(
        resolved: dict[str, Any]) -> None:
    """Kibana's start is not on the path to the first prediction (the 10-minute budget)."""
    services = resolved["services"]
    needs = _needs(services, "traffic")
    assert {"demo", "setup", "elasticsearch"} <= needs
    assert not needs & {"kibana", "kibana-setup", "es-users"}
    assert "kibana" in _needs(services, "kibana-setup")


def _am_config_env(resolved: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in resolved["services"]["am-config"]["environment"].items()}


def test_alertmanager_reads_the_config_am_config_renders(resolved: dict[str, Any]) -> None:
    """Slack / e-mail need Python to render; the Alertmanager image has none (issue 3 section 4)."""
    services = resolved["services"]
    am_config, alertmanager = services["am-config"], services["alertmanager"]
    command = am_config["command"]
    assert command[:3] == ["python", "-m", "mlmon.alerting.amconfig"]
    written = command[command.index("--out") + 1]
    read = _flag(alertmanager["command"], "--config.file")
    assert read == written
    volume = {target: source for source, target in _volumes(am_config)}[str(Path(written).parent)]
    assert not volume.startswith("/"), "a named volume shared with Alertmanager"
    assert (volume, str(Path(read).parent)) in _volumes(alertmanager)
    assert alertmanager["depends_on"]["am-config"]["condition"] == "service_completed_successfully"
    assert am_config["restart"] == "no"
    # The file is owner-only (secrets): am-config runs as Alertmanager's user, and the image
    # hands the mount point (so the new volume) to that user.
    assert am_config["user"] == "65534:65534"
    dockerfile = (REPO / "demo" / "Dockerfile").read_text()
    assert re.search(rf"chown 65534:65534 {re.escape(str(Path(written).parent))}\b", dockerfile)


def test_am_config_gets_every_amconfig_variable_and_env_example_lists_them(
        resolved: dict[str, Any]) -> None:
    assert set(_am_config_env(resolved)) == set(amconfig.VARIABLES)
    example = ENV_EXAMPLE.read_text()
    for name in amconfig.VARIABLES:
        if name != "MLMON_SINK_URL":  # the compose file sets it (the sink service)
            assert re.search(rf"(?m)^# {name}=", example), f"{name} is not in .env.example"


def test_alertmanager_webhooks_point_at_services(resolved: dict[str, Any]) -> None:
    config = amconfig.build(_am_config_env(resolved))
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls
    for url in urls:
        _assert_service_url(resolved, "webhook", urlsplit(url).netloc)


def test_slack_and_email_from_env_file_reach_a_config_amtool_accepts(tmp_path: Path) -> None:
    """.env.example with its commented notification lines filled in, through compose's own
    interpolation, to the file am-config would write, checked by Alertmanager's amtool."""
    amtool = shutil.which("amtool")
    if amtool is None:
        missing_server("amtool")
    env_file = tmp_path / "filled.env"
    env_file.write_text(re.sub(r"(?m)^# (MLMON_[A-Z_]+)=(.*)$",
                               lambda m: f"{m[1]}={m[2] or 'fake-secret'}",
                               ENV_EXAMPLE.read_text()))
    result = _compose("config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    env = _am_config_env(yaml.safe_load(result.stdout))
    config = tmp_path / "alertmanager.yml"
    config.write_text(amconfig.render(env))
    receivers = {r["name"]: r for r in yaml.safe_load(config.read_text())["receivers"]}
    assert receivers["warning"]["slack_configs"] and receivers["critical"]["email_configs"]
    assert receivers["critical"]["email_configs"][0]["auth_password"] == "fake-secret"
    check = subprocess.run([amtool, "check-config", str(config)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_datasources_point_at_services(resolved: dict[str, Any]) -> None:
    path = _host_path(resolved, "grafana", "/etc/grafana/provisioning/datasources/mlmon.yml")
    datasources = yaml.safe_load(path.read_text())["datasources"]
    assert {d["type"] for d in datasources} == {"prometheus", "alertmanager", "elasticsearch"}
    for datasource in datasources:
        _assert_service_url(resolved, datasource["name"], urlsplit(datasource["url"]).netloc)
    dashboards = _host_path(resolved, "grafana", "/var/lib/grafana/dashboards")
    assert sorted(p.name for p in dashboards.glob("*.json"))


def test_service_urls_in_environments_point_at_services(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith("_URL") and str(value).startswith("http"):
                _assert_service_url(resolved, f"{name} {key}", urlsplit(value).netloc)
        command = " ".join(service.get("command") or [])
        for url in re.findall(r"https?://[^\s\"',/]+", command):
            _assert_service_url(resolved, f"{name} command", urlsplit(url).netloc)


def _dockerignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    return any(fnmatch.fnmatch("/".join(parts[:i]), pattern)
               for pattern in patterns for i in range(1, len(parts) + 1))


def test_docker_build_context_is_small() -> None:
    """The demo image's context (demo/Dockerfile.dockerignore) leaves out the ~100 MB
    Elasticsearch distribution `make install-elasticsearch` unpacks, and the venv."""
    ignore = (REPO / "demo" / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    total = 0
    for root, dirs, files in os.walk(REPO):
        here = Path(root).relative_to(REPO).as_posix()
        prefix = "" if here == "." else here + "/"
        dirs[:] = [d for d in dirs if not _dockerignored(prefix + d, patterns)]
        total += sum((Path(root) / f).lstat().st_size for f in files
                     if not _dockerignored(prefix + f, patterns))
    assert total < 20_000_000, f"build context is {total / 1e6:.0f} MB"


def _demo_model(command: list[str]) -> str:
    """The `--model` of an `mlmon demo`, `traffic` or `demo-labels` command line (the
    default: the regression)."""
    from mlmon.demo.cli import PROGRESSION

    words = " ".join(command).split()
    return words[words.index("--model") + 1] if "--model" in words else PROGRESSION


def test_every_demo_model_has_its_data_stream_kibana_objects_and_scrape_target(
        resolved: dict[str, Any]) -> None:
    """Each demo service (the regression, the classifier) waits for a setup of its own model's
    data stream, has Kibana objects imported for that model, and is scraped by Prometheus."""
    from mlmon.demo.cli import PROGRESSION, RISK

    services = resolved["services"]

    def one_shots(tool: str) -> dict[str, str]:
        """model -> the one-shot service running `mlmon <tool>` on that model's profile."""
        found = {}
        for name, service in services.items():
            command = " ".join(service.get("command") or [])
            if f"mlmon {tool} " in command and "--write-profile" in command:
                found[_demo_model(service["command"])] = name
        return found

    setups, kibana = one_shots("es-setup"), one_shots("kibana-objects")
    demos = {name: _demo_model(s["command"]) for name, s in services.items()
             if s.get("command", [None, None])[:2] == ["mlmon", "demo"]}
    assert sorted(demos.values()) == sorted([PROGRESSION, RISK])
    assert set(setups) == set(kibana) == {PROGRESSION, RISK}
    prometheus = yaml.safe_load(_read(_host_path(
        resolved, "prometheus", _flag(services["prometheus"]["command"], "--config.file"))))
    mlmon_targets = {t for job in prometheus["scrape_configs"] if job["job_name"] == "mlmon"
                     for sc in job["static_configs"] for t in sc["targets"]}
    for name, model in demos.items():
        assert services[name]["depends_on"][setups[model]]["condition"] == \
            "service_completed_successfully"
        command = services[name]["command"]
        port = command[command.index("--port") + 1]
        assert f"{name}:{port}" in mlmon_targets
@pytest.mark.parametrize(("demo", "traffic_name", "labelling_name", "setup"), [
    ("demo", "traffic", "demo-labels", "setup"),
    ("demo-risk", "traffic-risk", "demo-labels-risk", "setup-risk")])
def test_the_labelling_job_reads_the_labels_the_traffic_writes(
        resolved: dict[str, Any], demo: str, traffic_name: str, labelling_name: str,
        setup: str) -> None:
    """Each demo's labelling job feeds the file its traffic appends to: the same path, on a
    volume both mount, for the model that demo serves (its truth and its profiles), with
    Elasticsearch's credentials and the Pushgateway to write and count the labels."""
    services = resolved["services"]
    traffic, labelling = services[traffic_name], services[labelling_name]
    model = _demo_model(services[demo]["command"])
    assert _demo_model(traffic["command"]) == _demo_model(labelling["command"]) == model
    assert traffic["command"][traffic["command"].index("--url") + 1].startswith(
        f"http://{demo}:")
    written = traffic["command"][traffic["command"].index("--labels-out") + 1]
    fed = labelling["command"][labelling["command"].index("--labels") + 1]
    assert written == fed

    def volume_of(service: dict[str, Any]) -> str:
        mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]]
                  for v in service["volumes"]]  # short syntax (compose 1.29) or long
        (source,) = [source for source, target in mounts
                     if written.startswith(target.rstrip("/") + "/")]
        return str(source)

    assert volume_of(traffic) == volume_of(labelling) in resolved["volumes"]
    assert labelling["environment"]["MLMON_ES_URL"] == "http://elasticsearch:9200"
    assert "MLMON_ES_PASSWORD" in labelling["environment"]
    assert {setup, "pushgateway"} <= set(labelling["depends_on"])
