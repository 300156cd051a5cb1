"""gunicorn settings for tests/integration/test_multiworker.py: the hook that README.md
(multi-worker servers) asks a gunicorn deployment to install, nothing else."""

from __future__ import annotations

from typing import Any

from exporter.multiprocess import mark_process_dead


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (recycled, terminated or killed): zero its gauges in its files."""
    mark_process_dead(worker.pid)
