"""The `mlmon` entry point: a reader that closes the pipe early ends a command quietly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "kibana" / "example_profile.json"


@pytest.mark.parametrize("argv", [
    ["es-setup", "--profile", str(PROFILE), "--print"],
    ["kibana-objects", "--profile", str(PROFILE), "-o", "-"],
])
def test_a_closed_stdout_ends_the_command_like_sigpipe_without_an_error_line(argv):
    # The read end is closed before the child has written anything (its imports alone take
    # far longer than this close), so its first write meets a pipe without a reader, as
    # `mlmon es-setup --print | head` does once head has exited.
    proc = subprocess.Popen([sys.executable, "-m", "mlmon.cli", *argv], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert stderr.decode() == ""
    assert proc.returncode == 128 + signal.SIGPIPE


def test_the_whole_output_still_arrives_when_the_reader_reads_it():
    done = subprocess.run([sys.executable, "-m", "mlmon.cli", "es-setup", "--profile",
                           str(PROFILE), "--print"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("}") and '"index_patterns"' in done.stdout


def test_a_subcommand_whose_extra_is_missing_says_which_to_install(monkeypatch, capsys):
    """pandas absent (None in sys.modules makes its import fail) and mlmon.profiling not yet
    imported: `mlmon profile` prints one line naming the module and the extra."""
    from mlmon.cli import main

    for name in [m for m in sys.modules if m.startswith("mlmon.profiling")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pandas", None)
    assert main(["profile", "train.csv", "-o", "p.json", "--model", "m",
                 "--model-version", "1"]) == 2
    assert capsys.readouterr().err == (
        "mlmon profile: needs the module 'pandas', which is not installed; install it with: "
        "pip install 'mlmon[data]'\n")


def test_a_missing_mlmon_module_is_a_bug_and_raises(monkeypatch):
    from mlmon import cli

    monkeypatch.setitem(cli.SUBCOMMANDS, "serve", ("mlmon.no_such_module", "help"))
    with pytest.raises(ModuleNotFoundError, match="mlmon.no_such_module"):
        cli.main(["serve"])


@pytest.mark.parametrize("command", [
    ["outcomes", "labels.csv", "--id-column", "id", "--label-column", "y", "--profile", "p.json",
     "--es-url", "http://127.0.0.1:9", "--pushgateway", "http://127.0.0.1:9"],
    ["batch", "scored.csv", "--profile", "p.json", "--pushgateway", "http://127.0.0.1:9"],
])
@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_a_timeout_that_is_no_duration_is_an_argument_error_not_the_urls(
        command: list[str], timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mlmon.cli import main

    with pytest.raises(SystemExit) as exited:
        main([*command, "--timeout", timeout])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.splitlines()[-1] == (f"mlmon {command[0]}: error: argument --timeout: must be a "
                                    f"number of seconds > 0, got {timeout!r}"), err
