"""`make up` / `make down` (mk/stack.mk): which Compose they use, and one clear line without one.

Docker itself is not run here: `docker` and `docker-compose` are small scripts standing in for a
Docker CLI without the Compose plugin and for a standalone docker-compose, which is what decides
the target's behaviour.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _make(*args: str) -> subprocess.CompletedProcess:
    # -o .env: never (re)write the checkout's .env from a test.
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "-o", ".env", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def _docker_without_plugin(tmp_path: Path) -> str:
    # What Docker's CLI says when no compose plugin is installed.
    return _script(tmp_path / "docker", 'echo "docker: unknown command: docker $1" >&2; exit 1')


def test_without_any_compose_one_line_names_what_to_install(tmp_path: Path) -> None:
    result = _make("up", f"DOCKER={_docker_without_plugin(tmp_path)}",
                   f"DOCKER_COMPOSE={tmp_path / 'no-docker-compose'}")
    assert result.returncode != 0
    line = next(x for x in result.stderr.splitlines() if x.startswith("make: Docker Compose"))
    assert "docker-compose-plugin" in line and "make stack" in line
    assert "unknown shorthand flag" not in result.stderr + result.stdout


def test_a_standalone_docker_compose_is_used_when_the_plugin_is_missing(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    compose = _script(tmp_path / "docker-compose", f'echo "$@" >> {calls}')
    for target in ("up", "down"):
        result = _make(target, f"DOCKER={_docker_without_plugin(tmp_path)}",
                       f"DOCKER_COMPOSE={compose}")
        assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["up -d", "down"]


def test_the_plugin_is_preferred_when_it_answers(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    docker = _script(tmp_path / "docker", f'echo "$@" >> {calls}')
    result = _make("up", f"DOCKER={docker}", f"DOCKER_COMPOSE={tmp_path / 'unused'}")
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["compose version", "compose up -d"]
