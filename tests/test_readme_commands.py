"""The README stays true: every command in it is run here or checked against what covers it.

Each shell command of the README's fenced blocks (and each inline `make ...` or `.venv/bin/...`
command) must match one of the checks below, or `test_every_readme_command_is_checked` fails
naming it: a new command in the README needs a check here. The cheap ones run (`mlmon --help`,
`mlmon profile` on a generated training file, `mlmon serve` scraped over HTTP, the Python
example as a service that answers a request); a make target is checked to exist with
`make -n`, and the two first-screen commands to be exactly what CI runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The README's commands call `.venv/bin/...`; here they run with the interpreter's own scripts.
BIN = Path(sys.executable).parent
# The first screen promises these; .ci/run must run them, in this order.
CI_COMMANDS = ("make install-servers", "make install", "make test")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
INLINE = re.compile(r"`((?:make |\.venv/bin/\w)[^`]*)`")
# Which check covers a command; every README command must match exactly one.
CHECKS = {
    "make": re.compile(r"^make( [a-z][\w-]*)+$"),
    "mlmon --help": re.compile(r"^\.venv/bin/mlmon --help$"),
    "mlmon profile": re.compile(r"^\.venv/bin/mlmon profile "),
    "mlmon serve": re.compile(r"^\.venv/bin/mlmon serve "),
    # Needs Elasticsearch and a Pushgateway: run as written, against real ones, by
    # tests/integration/test_outcomes_cli.py::test_the_readme_outcomes_command_runs.
    "mlmon outcomes": re.compile(r"^\.venv/bin/mlmon outcomes (?!.*--profile demo-profile\.json)"),
    # The demo's labels recipe (docs/delayed-labels.md, "Try it on the demo"): the same text as
    # that page's; the traffic and the profile run here against the real demo service.
    "demo traffic": re.compile(r"^\.venv/bin/mlmon traffic "),
    "demo profile": re.compile(r"^\.venv/bin/mlmon demo --write-profile "),
    "demo outcomes": re.compile(r"^\.venv/bin/mlmon outcomes .*--profile demo-profile\.json"),
}
DEMO_RECIPE = ("demo traffic", "demo profile", "demo outcomes")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def fenced(languages: set[str]) -> list[str]:
    return [body for lang, body in FENCE.findall(readme()) if lang in languages]


def shell_commands() -> list[str]:
    """Every simple command of the README: fenced shell lines split on `&&`, inline ones."""
    lines: list[str] = []
    for block in fenced(SHELL_LANGUAGES):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                lines.append(line)
    lines += INLINE.findall(FENCE.sub("", readme()))
    return [" ".join(part.split()) for line in lines for part in line.split("&&")]


def commands_for(check: str) -> list[str]:
    found = [c for c in shell_commands() if CHECKS[check].match(c)]
    assert found, f"the README has no command for the check {check!r}: drop the check"
    return found


def test_every_readme_command_is_checked() -> None:
    unchecked = [c for c in shell_commands()
                 if sum(bool(p.match(c)) for p in CHECKS.values()) != 1]
    assert not unchecked, f"README commands that nothing here checks: {unchecked}"


def test_readme_is_a_front_page() -> None:
    lines = readme().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    first_screen = "\n".join(lines[:25])
    for command in ("make install install-servers && make stack",
                    "make install install-servers && make test"):
        assert command in first_screen, f"{command!r} is not on the README's first screen"


def test_the_first_screen_commands_are_what_ci_runs() -> None:
    ci = [line.split("#")[0].strip()
          for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    positions = [ci.index(command) for command in CI_COMMANDS]
    assert positions == sorted(positions), f".ci/run runs {CI_COMMANDS} out of order"


def test_every_make_target_in_the_readme_exists() -> None:
    targets = sorted({t for c in commands_for("make") for t in c.split()[1:]})
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=False)
        assert dry.returncode == 0, f"`make {target}` (in README.md): {dry.stderr.strip()}"


def test_readme_links_point_at_files_or_at_pages_of_the_site() -> None:
    """A link to docs/X.md needs X.md in mkdocs.yml's nav (`make docs --strict` checks the
    page exists); any other relative link must exist; and every nav page is on the README's map."""
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    pages = {page for entry in nav for page in entry.values()}
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme())
    relative = [link for link in links if "://" not in link]
    for link in relative:
        if link.startswith("docs/") and link.endswith(".md"):
            assert link.removeprefix("docs/") in pages, f"{link} is not in mkdocs.yml's nav"
        else:
            assert (REPO / link).exists(), f"README.md links to {link}, which does not exist"
    mapped = {link.removeprefix("docs/") for link in relative if link.startswith("docs/")}
    assert pages - {"index.md"} <= mapped, f"not on the README's map: {pages - mapped}"


def test_mlmon_help_lists_the_commands_the_readme_names() -> None:
    (command,) = commands_for("mlmon --help")
    done = subprocess.run(argv(command), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("profile", "serve", "demo", "traffic", "demo-jobs", "demo-labels", "es-setup",
                 "kibana-objects", "outcomes", "sink", "training-run", "batch"):
        assert name in done.stdout


def argv(command: str) -> list[str]:
    words = command.split()
    return [str(BIN / words[0].removeprefix(".venv/bin/")), *words[1:]]


def write_training_file(path: Path, rows: int = 400) -> None:
    """A churn-like training file with the columns the README's profile command names."""
    rng = np.random.default_rng(7)
    churned = rng.random(rows) < 0.3
    score = 0.5 + rng.random(rows) / 2
    pd.DataFrame({
        "age": rng.normal(40, 12, rows).round(1),
        "city": rng.choice(["paris", "rome", "berlin"], rows),
        "churn_pred": np.where(rng.random(rows) < 0.8, churned, ~churned).astype(str),
        "churn_score": score.round(4),
        "churned": churned.astype(str),
    }).to_csv(path, index=False)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs the README's `mlmon profile` command on a generated train.csv; the directory."""
    workdir = tmp_path_factory.mktemp("readme")
    write_training_file(workdir / "train.csv")
    (command,) = commands_for("mlmon profile")
    done = subprocess.run(argv(command), cwd=workdir, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return workdir


def test_the_profile_command_keeps_label_score_and_prediction_out_of_the_features(
        profiled: Path) -> None:
    profile = json.loads((profiled / "profile.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in profile["features"]] == ["age", "city"]
    assert profile["prediction"]["kind"] == "classification"
    assert profile["prediction"]["score"] is not None
    assert "accuracy" in profile["model"]["baseline_metrics"]  # from --target-column


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_serve_command_serves_live_series(profiled: Path) -> None:
    (command,) = commands_for("mlmon serve")
    assert "--port 8000" in command
    port = free_port()  # 8000 may be taken on this machine; everything else as written
    server = subprocess.Popen(argv(command.replace("--port 8000", f"--port {port}")),
                              cwd=profiled, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        observed = 0.0
        deadline = time.monotonic() + 60
        while observed == 0 and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
                continue
            found = re.search(r'^mlmon_observations_total\{model="churn",model_version="3"\} '
                              r"(\S+)$", body, re.M)
            observed = float(found.group(1)) if found else 0.0
            time.sleep(0.5)
        assert observed > 0, "no synthetic observation reached /metrics within 60 s"
    finally:
        server.terminate()
        server.wait(timeout=30)


def without_es_url() -> dict[str, str]:
    """The environment, less MLMON_ES_URL: the example then ships no record anywhere."""
    return {k: v for k, v in os.environ.items() if k != "MLMON_ES_URL"}


HARNESS = """
from fastapi.testclient import TestClient

client = TestClient(app)
answer = client.post("/predict", json={"age": 41.0, "city": "paris"})
assert answer.status_code == 200, answer.text
print("PREDICTION", answer.json()["prediction"])
print(client.get("/metrics").text)
"""


def test_the_python_example_runs_as_a_service(profiled: Path) -> None:
    (example,) = fenced({"python"})
    # `model` is the reader's own; here, a classifier that always answers "True".
    prelude = textwrap.dedent("""
        import numpy as np

        class _Model:
            def predict(self, frame):
                return np.array(["True"] * len(frame))

        model = _Model()
    """)
    script = profiled / "readme_example.py"
    script.write_text(prelude + example + HARNESS, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=profiled, capture_output=True,
                          text=True, timeout=120, check=False, env=without_es_url())
    assert done.returncode == 0, done.stderr
    assert "PREDICTION True" in done.stdout
    labels = 'model="churn",model_version="3"'
    assert f"mlmon_observations_total{{{labels}}} 1.0" in done.stdout
    assert f'mlmon_requests_total{{{labels},outcome="ok"}} 1.0' in done.stdout


def test_the_demo_labels_recipe_is_the_one_the_delayed_labels_page_documents() -> None:
    page = (REPO / "docs" / "delayed-labels.md").read_text(encoding="utf-8")
    documented = [" ".join(line.split()) for lang, body in FENCE.findall(page)
                  if lang in SHELL_LANGUAGES
                  for line in body.replace("\\\n", " ").splitlines()
                  if line.startswith("mlmon ")]
    for check in DEMO_RECIPE:
        (command,) = commands_for(check)
        assert command.removeprefix(".venv/bin/") in documented, (
            f"{command!r} (README.md) differs from docs/delayed-labels.md's demo recipe")


def test_the_demo_labels_recipe_writes_labels_and_the_demo_profile(tmp_path: Path) -> None:
    """The README's traffic command against the real demo service (its healthy phase cut to
    3 s, the service on a free port), then its profile command: a labels file whose ids the
    service answered, and the regression profile `mlmon outcomes` reads it with."""
    port = free_port()
    service = subprocess.Popen([str(BIN / "mlmon"), "demo", "--port", str(port)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=without_es_url())
    try:
        (traffic,) = commands_for("demo traffic")
        assert "--healthy-s 120" in traffic
        quick = traffic.replace("--healthy-s 120", "--healthy-s 3")
        done = subprocess.run([*argv(quick), "--url", f"http://127.0.0.1:{port}"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr or (service.stderr.read()
                                                     if service.poll() is not None
                                                     and service.stderr else "")
    finally:
        service.terminate()
        service.wait(timeout=30)
    (write_profile,) = commands_for("demo profile")
    done = subprocess.run(argv(write_profile), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (outcomes,) = commands_for("demo outcomes")
    labels = pd.read_csv(tmp_path / "labels.csv", dtype=str)
    # what --id/--label-column name, and when each truth arrives (--arrived-column)
    assert list(labels.columns) == ["request_id", "target", "arrived_at"]
    assert "--id-column request_id --label-column target" in outcomes
    assert len(labels) >= 10 and labels["request_id"].is_unique
    assert pd.to_numeric(labels["target"]).notna().all()
    profile = json.loads((tmp_path / "demo-profile.json").read_text(encoding="utf-8"))
    assert profile["prediction"]["kind"] == "regression"
