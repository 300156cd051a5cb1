"""docker-compose.yml: valid for docker-compose, and every reference points at something real.

Validation uses Debian's docker-compose 1.29 (`config -q` needs no engine). The consistency checks
read the resolved file and follow every reference: scrape targets, the Alertmanager address,
webhook and datasource URLs, bind-mounted paths and the files Prometheus loads from them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from alerting import generate
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
    assert set(passwords) == {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
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
    assert len(passwords) == 3 and len(set(passwords)) == 3
    assert all(len(p) >= 24 and p != "change-me" for p in passwords)
    assert values["MLMON_HEALTHY_S"] == "180"  # non-secret settings are carried over
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # readable by the owner only


def test_images_are_pinned_to_exact_versions(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not an exact version"
        if image.startswith("docker.elastic.co/"):
            assert tag.startswith("8.14."), f"{name}: the Elastic stack must be 8.14.x"


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


def test_bind_mounts_exist_and_named_volumes_are_declared(resolved: dict[str, Any]) -> None:
    mounts = _bind_mounts(resolved)
    assert mounts
    for name, source, _target in mounts:
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


def test_alertmanager_webhooks_point_at_services(resolved: dict[str, Any]) -> None:
    command = resolved["services"]["alertmanager"]["command"]
    config = yaml.safe_load(
        _read(_host_path(resolved, "alertmanager", _flag(command, "--config.file"))))
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls
    for url in urls:
        _assert_service_url(resolved, "webhook", urlsplit(url).netloc)


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
