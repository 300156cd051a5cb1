"""/metrics over real HTTP: standalone thread, WSGI (wsgiref) and ASGI (httpx transport)."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mlmon.exporter import ModelMonitor
from mlmon.exporter.server import make_asgi_app, make_wsgi_app, start_http_server

M = {"model": "churn", "model_version": "3"}


@pytest.fixture
def registry(sample_profile) -> CollectorRegistry:
    registry = CollectorRegistry()
    monitor = ModelMonitor.from_profile(sample_profile, registry, multiproc_directory=None)
    monitor.observe({"age": 30.0, "city": "paris"}, 0.5)
    return registry


def observations(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mlmon_observations_total" and s.labels == M:
                return s.value
    raise AssertionError("mlmon_observations_total missing")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_standalone_server(registry):
    server, thread = start_http_server(0, registry=registry)
    try:
        port = server.server_address[1]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert observations(text.decode()) == 1.0
        assert b"process_cpu_seconds_total" in text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_wsgi_app(registry):
    server = make_server("127.0.0.1", 0, make_wsgi_app(registry), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        response = urllib.request.urlopen(url, timeout=10)
        assert response.headers["Content-Type"].startswith("text/plain")
        assert observations(response.read().decode()) == 1.0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_asgi_app(registry):
    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_asgi_app(registry))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/metrics")

    response = asyncio.run(scrape())
    assert response.status_code == 200
    assert observations(response.text) == 1.0
