"""The demo model service: FastAPI around the demo model, with the exporter and the shipper.

    POST /predict  {"features": {...}, "request_id": "optional"}
                   -> {"prediction": 151.2, "model": .., "model_version": .., "event_id": ..}
                   the classifier (`mlmon demo --model risk`) answers a class and its score:
                   -> {"prediction": "high", "score": 0.83, "model": .., ...}
    GET  /healthz  -> {"status": "ok", ...}
    GET  /metrics  Prometheus exposition (model series, shipper health, process)

Every request runs under `PredictionLogger.track_request()` (in-flight gauge, latency, outcome)
and every prediction goes through one `PredictionLogger.record()` call, which counts it in the
exporter and ships the ECS record to Elasticsearch (latency in `event.duration`; the histogram
counts it once, for the request). Monitoring never fails a prediction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.routing import Route

from mlmon.demo.model import DemoClassifier, DemoModel
from mlmon.exporter.server import make_asgi_app
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.logger_metrics import PredictionLoggerCollector


class _AsgiEndpoint:
    """Starlette runs a non-function endpoint as a raw ASGI app (prometheus_client's)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


class PredictRequest(BaseModel):
    features: dict[str, Any]
    request_id: str | None = None


def create_app(model: DemoModel | DemoClassifier, logger: PredictionLogger,
               registry: CollectorRegistry) -> FastAPI:
    """The app; `logger.monitor` must be registered on `registry` (it is what /metrics shows)."""
    if logger.monitor is None:
        raise ValueError("the demo service needs a PredictionLogger with a monitor")
    if logger.shipper is not None:
        registry.register(logger.shipper.collector())  # roles' up / restarts included
    registry.register(PredictionLoggerCollector(logger))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        logger.close()  # flush what is queued to Elasticsearch (or the spool)

    app = FastAPI(title="mlmon demo", lifespan=lifespan)
    # A route, not a mount: a mount answers /metrics with a redirect to /metrics/.
    app.router.routes.append(Route("/metrics", _AsgiEndpoint(make_asgi_app(registry))))

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": model.name, "model_version": model.version}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        # The HTTPException leaves the block raising, so a model failure counts as an error.
        with logger.track_request():
            scores: dict[str, float] | None = None
            try:
                if isinstance(model, DemoClassifier):
                    prediction: float | str
                    prediction, scores = model.predict_scored(request.features)
                else:
                    prediction = model.predict_one(request.features)
            except Exception as exc:
                raise HTTPException(status_code=500, detail="prediction failed") from exc
            # every class's probability goes to the record; the monitor scores the class's own
            event_id = logger.record(request.features, prediction, scores=scores,
                                     request_id=request.request_id)
        answer = {"prediction": prediction, "model": model.name,
                  "model_version": model.version, "event_id": event_id}
        if scores is not None:
            answer["score"] = scores[str(prediction)]
        return answer

    return app
