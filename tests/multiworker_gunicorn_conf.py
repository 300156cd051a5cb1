"""gunicorn settings for tests/integration/test_multiworker.py (its `--preload` case): the
`child_exit` hook calling `mark_process_dead` that earlier versions of the docs asked gunicorn
deployments to install, so the test covers servers that have it as well as servers without."""

from __future__ import annotations

from typing import Any

from mlmon.exporter.multiprocess import mark_process_dead


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (recycled, terminated or killed)."""
    mark_process_dead(worker.pid)
