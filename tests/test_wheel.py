"""The built wheel, installed the way a user installs it: `pip install mlmon` and
`pip install 'mlmon[data,demo]'`, each into a fresh venv with its dependencies from the package
index. Nothing is lent from this environment, so a dependency missing from the wheel's metadata,
or a module that imports a package no extra declares, fails here instead of on a user's machine.
A third venv installs the extras with every declared dependency pinned at its lower bound (`>=`),
so a bound older than the code needs fails here too (the dev venv tests the newest versions).

The venvs are installed concurrently, with `--no-compile` (Python compiles only what the tests
import, instead of pip compiling all of pandas, scipy and scikit-learn: about 4x less install
time) and `--only-binary :all:` (every dependency has wheels: a missing one fails here instead of
building from source for minutes). Everything runs from temporary directories, away from the
checkout.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from mlmon.cli import EXTRAS, SUBCOMMANDS
from tests.test_layout import FOLDERS, OLD_TOP_LEVEL, REPO

pytestmark = pytest.mark.integration

# The extras a user of the CLI adds (mlmon.cli.EXTRAS names them per subcommand).
EXTRAS_INSTALLED = ("data", "demo")


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


def read_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(z.read(name).decode())


def lower_bounds(wheel: Path, extras: tuple[str, ...]) -> list[str]:
    """`name==X` for each `name>=X` the wheel requires with these extras: pip then installs the
    oldest versions the metadata claims to work with (and their own dependencies' newest)."""
    pins = []
    for line in read_metadata(wheel).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        low = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(low) == 1, f"{line}: a dependency needs one lower bound (>=), the tested one"
        pins.append(f"{requirement.name}=={low[0]}")
    return pins


@pytest.fixture(scope="module")
def venvs(wheel, tmp_path_factory) -> dict[str, Path]:
    """Fresh venvs, one per module, where pip installed from the index (concurrently):
    core: `pip install mlmon`; latest: `pip install 'mlmon[data,demo]'`; lowest: the same
    with every declared dependency at its lower bound (a user whose environment already has
    an older version that the bound admits keeps it)."""
    extras = f"[{','.join(EXTRAS_INSTALLED)}]"
    roots: dict[str, Path] = {}
    installs: dict[str, subprocess.Popen[str]] = {}
    for name, requirement in (("core", f"{wheel}"), ("latest", f"{wheel}{extras}"),
                              ("lowest", f"{wheel}{extras}")):
        root = roots[name] = tmp_path_factory.mktemp(f"venv-{name}")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                       timeout=120)
        pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install",
               "--quiet", "--no-compile", "--only-binary", ":all:", requirement]
        if name == "lowest":
            constraints = root / "lower-bounds.txt"
            constraints.write_text("\n".join(lower_bounds(wheel, EXTRAS_INSTALLED)) + "\n")
            pip += ["--constraint", str(constraints)]
        installs[name] = subprocess.Popen(pip, cwd=root, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True)
    outputs = {name: install.communicate(timeout=600)[0] for name, install in installs.items()}
    for name, install in installs.items():  # all finished first: no pip is left running
        assert install.returncode == 0, f"{name}: {' '.join(install.args)}\n{outputs[name]}"
    return roots


@pytest.fixture(scope="module")
def core(venvs) -> Path:
    return venvs["core"]


@pytest.fixture(scope="module", params=["latest", "lowest"])
def full(venvs, request) -> Path:
    """A venv with the extras, at the newest and at the oldest versions the metadata allows."""
    return venvs[request.param]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(venv: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120, **kwargs)


def run_all(commands: list[tuple[Path, list[str]]], cwd: Path) -> list[tuple[int, str, str]]:
    """(returncode, stdout, stderr) of each command, run concurrently: each is mostly imports."""
    procs = [subprocess.Popen([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for venv, args in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    return results


def write_training_csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["age", "plan", "label"])
        for i in range(200):
            writer.writerow([20 + i % 50, ["basic", "pro"][i % 2], i % 3 == 0])
    return path


@pytest.fixture(scope="module")
def profile(venvs, tmp_path_factory) -> Path:
    """A profile of a tiny CSV, written by `mlmon profile` from the venv with the extras."""
    where = tmp_path_factory.mktemp("profile")
    write_training_csv(where / "train.csv")
    profiled = run(venvs["latest"], "mlmon", "profile", "train.csv", "-o", "profile.json",
                   "--model", "tiny", "--model-version", "1", "--prediction-column", "label",
                   cwd=where)
    assert profiled.returncode == 0, profiled.stderr
    return where / "profile.json"


# Run once in each venv (one interpreter, so pandas and scikit-learn are imported once): every
# module of the package imported, every subcommand's --help through the `mlmon` entry point's
# main(), and the top-level modules the venv's distributions provide.
INSPECT = """
import contextlib, importlib, io, json, pkgutil
import importlib.metadata
import mlmon
from mlmon.cli import SUBCOMMANDS, main

failed = {}
for info in pkgutil.walk_packages(mlmon.__path__, "mlmon."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs the CLI
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        failed[info.name] = exc.name
helps = {}
for name in SUBCOMMANDS:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([name, "--help"])
        except SystemExit as exc:
            code = exc.code
    helps[name] = [code, out.getvalue(), err.getvalue()]
tops = sorted(importlib.metadata.packages_distributions())
print(json.dumps({"failed": failed, "help": helps, "top_level": tops}))
"""


@pytest.fixture(scope="module")
def inspected(venvs, tmp_path_factory) -> dict[Path, dict]:
    """venv -> what INSPECT found there."""
    roots = list(venvs.values())
    results = run_all([(venv, ["python", "-c", INSPECT]) for venv in roots],
                      cwd=tmp_path_factory.mktemp("inspect"))
    for code, _, err in results:
        assert code == 0, err
    return {venv: json.loads(out) for venv, (_, out, _) in zip(roots, results, strict=True)}


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


def test_the_extras_the_cli_names_are_declared(wheel):
    declared = set(read_metadata(wheel).get_all("Provides-Extra") or [])
    assert set(EXTRAS.values()) == set(EXTRAS_INSTALLED) and set(EXTRAS_INSTALLED) <= declared
    assert set(EXTRAS) <= set(SUBCOMMANDS)


def test_every_module_imports_with_the_extras(full, inspected):
    assert inspected[full]["failed"] == {}


def test_the_core_alone_imports_the_serving_path(core, venvs, inspected):
    """Without extras, a module may miss only what an extra installs; the serving path, the
    log shipper and the rule generators miss nothing."""
    failed: dict[str, str] = inspected[core]["failed"]
    core_tops = set(inspected[core]["top_level"])
    from_extras = set(inspected[venvs["latest"]]["top_level"]) - core_tops
    assert {missing.partition(".")[0] for missing in failed.values()} <= from_extras, failed
    serving = ("mlmon.exporter", "mlmon.log_shipper", "mlmon.alerting")
    assert [m for m in failed if m == "mlmon" or m.startswith(serving)] == []
    assert "pandas" in from_extras and "pandas" not in core_tops


def test_mlmon_imports_from_the_wheel_and_the_old_names_do_not(core, tmp_path):
    code = ("import importlib.util, json, mlmon, mlmon.exporter\n"
            "print(json.dumps({'file': mlmon.exporter.__file__,\n"
            "  'monitor': repr(mlmon.ModelMonitor),\n"
            f"  'old': [n for n in {OLD_TOP_LEVEL!r} if importlib.util.find_spec(n)]}}))")
    out = run(core, "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["file"].startswith(str(core)) and found["file"].endswith(
        "site-packages/mlmon/exporter/__init__.py")
    assert found["monitor"] == "<class 'mlmon.exporter.monitor.ModelMonitor'>"
    assert found["old"] == []


def test_mlmon_version_and_help(core, tmp_path):
    version, top_help = run_all([(core, ["mlmon", "--version"]), (core, ["mlmon", "--help"])],
                                cwd=tmp_path)
    assert version[:2] == (0, "mlmon 0.1.0\n"), version[2]
    assert top_help[0] == 0, top_help[2]
    assert top_help[1].startswith("usage: mlmon ")
    listed = {line.split()[0] for line in top_help[1].splitlines() if line.startswith("    ")}
    assert set(SUBCOMMANDS) <= listed, top_help[1]


def test_every_subcommand_help_with_the_extras(full, inspected):
    assert set(inspected[full]["help"]) == set(SUBCOMMANDS)
    for name, (code, out, err) in inspected[full]["help"].items():
        assert (code, err) == (0, ""), name
        assert out.startswith(f"usage: mlmon {name} "), out


def test_without_its_extra_a_subcommand_helps_or_names_the_extra(core, inspected):
    """The core subcommands' --help; the others show theirs or name the extra in one line."""
    assert set(inspected[core]["help"]) == set(SUBCOMMANDS)
    for name, (code, out, err) in inspected[core]["help"].items():
        if code == 0 or name not in EXTRAS:
            assert (code, err) == (0, ""), f"{name}: {err}"
            assert out.startswith(f"usage: mlmon {name} "), out
        else:
            assert code == 2 and err.count("\n") == 1, f"{name}: {err}"
            assert err.startswith(f"mlmon {name}: needs the module ")
            assert err.endswith(f"pip install 'mlmon[{EXTRAS[name]}]'\n"), err


def test_the_lowest_venv_has_the_lower_bounds(venvs, wheel, tmp_path):
    """The constraints took: each declared dependency is at its lower bound (so the tests on
    the `lowest` venv test the bounds)."""
    code = ("import json, importlib.metadata as m\n"
            "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version"
            " for d in m.distributions()}))")
    out = run(venvs["lowest"], "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    installed = json.loads(out.stdout)
    for pin in lower_bounds(wheel, EXTRAS_INSTALLED):
        name, _, version = pin.partition("==")
        assert Version(installed[name.lower().replace("_", "-")]) == Version(version), pin


def test_a_command_whose_extra_is_missing_names_it_in_one_line(core, tmp_path):
    """The demo's and the profiler's dependencies are imported where they are used, inside the
    command: still one line, not a traceback."""
    write_training_csv(tmp_path / "train.csv")
    profile, demo = run_all(
        [(core, ["mlmon", "profile", "train.csv", "-o", "p.json", "--model", "m",
                 "--model-version", "1"]),
         (core, ["mlmon", "demo", "--write-profile", "demo.json"])], cwd=tmp_path)
    assert profile[0] == 2 and profile[2] == (
        "mlmon profile: needs the module 'pandas', which is not installed; install it with: "
        "pip install 'mlmon[data]'\n")
    assert demo[0] == 2 and demo[2].count("\n") == 1, demo[2]
    assert demo[2].endswith("pip install 'mlmon[demo]'\n"), demo[2]
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "demo.json").exists()


def test_profile_a_csv_and_a_parquet_file(full, profile, tmp_path):
    features = json.loads(profile.read_text())["features"]
    assert sorted(f["name"] for f in features) == ["age", "plan"]
    convert = ("import pandas; pandas.read_csv('train.csv')"
               ".to_parquet('train.parquet')")  # pyarrow, from the data extra
    write_training_csv(tmp_path / "train.csv")
    out = run(full, "python", "-c", convert, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    profiled = run(full, "mlmon", "profile", "train.parquet", "-o", "profile.json", "--model",
                   "tiny", "--model-version", "1", "--prediction-column", "label", cwd=tmp_path)
    assert profiled.returncode == 0, profiled.stderr
    assert json.loads((tmp_path / "profile.json").read_text())["features"] == features


def test_the_core_alone_observes_with_the_exporter(core, profile, tmp_path):
    code = ("import sys\n"
            "from prometheus_client import CollectorRegistry, generate_latest\n"
            "from mlmon import ModelMonitor\n"
            "registry = CollectorRegistry()\n"
            "monitor = ModelMonitor.from_profile(sys.argv[1], registry=registry)\n"
            "print(monitor.observe({'age': 30, 'plan': 'gold'}, True).flags)\n"
            "monitor.observe({'age': 31, 'plan': 'pro'}, False)\n"
            "print(generate_latest(registry).decode())\n")
    out = run(core, "python", "-c", code, str(profile), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    flags, _, text = out.stdout.partition("\n")
    assert "'plan': ('unseen'" in flags, flags
    assert 'mlmon_observations_total{model="tiny",model_version="1"} 2.0' in text


def test_serve_a_profile_from_the_core_alone(core, profile, tmp_path):
    serve = subprocess.Popen([str(core / "bin" / "mlmon"), "serve", "--profile", str(profile),
                              "--port", "0", "--synthetic-rps", "50", "--duration", "60"],
                             cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
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


def test_the_core_alone_writes_the_elasticsearch_and_kibana_assets(core, profile, tmp_path):
    """The log shipper's offline commands (Elasticsearch client, JSON logger imported)."""
    template, kibana = run_all(
        [(core, ["mlmon", "es-setup", "--profile", str(profile), "--print"]),
         (core, ["mlmon", "kibana-objects", "--profile", str(profile), "-o", "kibana.ndjson"])],
        cwd=tmp_path)
    assert template[0] == 0, template[2]
    assert json.loads(template[1])["index_patterns"] == ["mlmon-predictions-tiny"]
    assert kibana[0] == 0, kibana[2]
    objects = [json.loads(line) for line in (tmp_path / "kibana.ndjson").read_text().splitlines()]
    assert objects and all("type" in o for o in objects)


def test_amconfig_runs_from_the_core_alone(core, tmp_path):
    """The docker-compose one-shot: it reads alertmanager.yml beside its module."""
    out = run(core, "python", "-m", "mlmon.alerting.amconfig", "--default", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "receivers:" in out.stdout


def test_the_demo_trains_its_model_from_the_extras(full, tmp_path):
    out = run(full, "mlmon", "demo", "--write-profile", "demo.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    demo = json.loads((tmp_path / "demo.json").read_text())
    assert demo["features"] and demo["model"], demo.keys()
