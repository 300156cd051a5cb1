"""/metrics over HTTP: standalone thread, WSGI app or ASGI app.

These use prometheus_client's exposition (content negotiation, gzip, OpenMetrics) on the
registry the monitors were registered on. In multi-process mode every worker's /metrics already
shows the sum over all workers; a separate metrics-only process uses `multiprocess_registry()`.

    start_http_server(8000)                          # a daemon thread serving /metrics
    app.mount("/metrics", make_asgi_app())           # FastAPI / Starlette
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector

from mlmon.exporter.collector import MultiProcessCollector


def start_http_server(port: int = 8000, addr: str = "127.0.0.1",
                      registry: CollectorRegistry | None = None
                      ) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics from a daemon thread; returns (server, thread) so callers can shut down.

    Binds 127.0.0.1 by default (prometheus_client binds 0.0.0.0): expose deliberately.
    """
    server, thread = prometheus_client.start_http_server(
        port, addr=addr, registry=REGISTRY if registry is None else registry)
    return server, thread


def make_wsgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """A WSGI app answering with the exposition of `registry` (default REGISTRY)."""
    return prometheus_client.make_wsgi_app(REGISTRY if registry is None else registry)


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app answering with the exposition of `registry` (default REGISTRY)."""
    return prometheus_client.make_asgi_app(REGISTRY if registry is None else registry)


def multiprocess_registry(directory: str | None = None) -> CollectorRegistry:
    """A registry for a process that only serves /metrics for workers writing to `directory`
    (default $MLMON_MULTIPROC_DIR): their summed series plus this process's process_*."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    ProcessCollector(registry=registry)
    return registry
