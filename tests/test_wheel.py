"""The built wheel, installed into a fresh venv: one `mlmon` package that works on its own.

Builds the wheel from the checkout (pip, PEP 517), installs it without its dependencies into
a new venv, and lends that venv this environment's third-party packages through a .pth path
entry: so the test needs no network and a few seconds, while every mlmon file comes from the
wheel. (.pth files inside a directory added that way are not processed, so the checkout's
editable-install finder stays out.) Runs from a temporary directory, away from the checkout.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.test_layout import FOLDERS, OLD_TOP_LEVEL, REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools reuses an in-tree build/ directory, and a stale one (e.g.
    # left by an older layout) would put files in the wheel that the checkout no longer has.
    source = tmp_path_factory.mktemp("source")
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--wheel-dir", str(out), str(source)], cwd=out, capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("mlmon-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    python = root / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", purelib], capture_output=True, text=True,
                          check=True).stdout.strip()
    (Path(site) / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "--quiet", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return root


def run(venv: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_the_wheel_holds_every_module_under_mlmon_only(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, module in FOLDERS.items():
        expected |= {f"{module.replace('.', '/')}/{p.relative_to(REPO / folder).as_posix()}"
                     for p in (REPO / folder).rglob("*.py")}
    assert expected - names == set()
    tops = {n.split("/")[0] for n in names if not n.startswith("mlmon-")}
    assert tops == {"mlmon"}
    # read at run time beside the modules (amconfig's routes, the rule config), and PEP 561
    assert {"mlmon/alerting/alertmanager.yml", "mlmon/alerting/config.yaml",
            "mlmon/py.typed"} <= names


def test_mlmon_imports_from_the_wheel_and_the_old_names_do_not(venv, tmp_path):
    code = ("import importlib.util, json, mlmon, mlmon.exporter\n"
            "print(json.dumps({'file': mlmon.exporter.__file__,\n"
            "  'monitor': repr(mlmon.ModelMonitor),\n"
            f"  'old': [n for n in {OLD_TOP_LEVEL!r} if importlib.util.find_spec(n)]}}))")
    out = run(venv, "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["file"].startswith(str(venv)) and found["file"].endswith(
        "site-packages/mlmon/exporter/__init__.py")
    assert found["monitor"] == "<class 'mlmon.exporter.monitor.ModelMonitor'>"
    assert found["old"] == []


def test_mlmon_version(venv, tmp_path):
    out = run(venv, "mlmon", "--version", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "mlmon 0.1.0\n"), out.stderr


def test_profile_then_serve_a_tiny_csv(venv, tmp_path):
    data = tmp_path / "train.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["age", "plan", "label"])
        for i in range(200):
            writer.writerow([20 + i % 50, ["basic", "pro"][i % 2], i % 3 == 0])
    profiled = run(venv, "mlmon", "profile", str(data), "-o", "profile.json", "--model", "tiny",
                   "--model-version", "1", "--prediction-column", "label", cwd=tmp_path)
    assert profiled.returncode == 0, profiled.stderr
    features = json.loads((tmp_path / "profile.json").read_text())["features"]
    assert sorted(f["name"] for f in features) == ["age", "plan"]

    serve = subprocess.Popen([str(venv / "bin" / "mlmon"), "serve", "--profile", "profile.json",
                              "--port", "0", "--synthetic-rps", "50", "--duration", "60"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().split()[1]  # "serving http://127.0.0.1:PORT/metrics ..."
        deadline, text = time.monotonic() + 30, ""
        while time.monotonic() < deadline and 'mlmon_observations_total{model="tiny"' not in text:
            time.sleep(0.5)
            text = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    assert url.startswith("http://127.0.0.1:")
    assert 'mlmon_observations_total{model="tiny",model_version="1"}' in text


def test_amconfig_runs_from_the_wheel(venv, tmp_path):
    """The docker-compose one-shot: it reads alertmanager.yml beside its module."""
    out = run(venv, "python", "-m", "mlmon.alerting.amconfig", "--default", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "receivers:" in out.stdout
