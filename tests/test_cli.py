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
