"""A minimal ASGI model service for tests/integration/test_multiworker.py.

    POST /predict   body {"features": {...}, "prediction": y}: observed through ModelMonitor;
                    answers the worker's pid (so the test sees which worker served it)
    GET  /metrics   this worker's exposition: the sum over every worker file in the directory

The profile is $MLMON_TEST_PROFILE; $MLMON_MULTIPROC_DIR makes the monitor multi-process. The
monitor is created at import, like a service would at module level: gunicorn without
`--preload` (and uvicorn `--workers`) import this in every worker, gunicorn `--preload` imports
it once in the master and forks the workers from there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from mlmon.exporter import ModelMonitor
from mlmon.exporter.server import make_asgi_app

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

registry = CollectorRegistry()
monitor = ModelMonitor.from_profile(os.environ["MLMON_TEST_PROFILE"], registry=registry)
metrics_app = make_asgi_app(registry)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":  # nothing to set up; say so, or uvicorn logs a warning
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/metrics":
        await metrics_app(scope, receive, send)
    elif scope["path"] == "/predict" and scope["method"] == "POST":
        record = json.loads(await _body(receive))
        monitor.observe(record["features"], record["prediction"])
        await _answer(send, 200, str(os.getpid()))
    else:
        await _answer(send, 404, "not found")
