"""The input record: one ECS-named JSON document per prediction (docs/design.md section 4).

`RecordBuilder` is made once per service and called per prediction. It types each feature as
the profile says (numeric -> float, categorical -> canonical string, text -> str), so a value
Elasticsearch would reject for its mapping never leaves the process: such a value becomes
`null` and the exporter's flag (`wrong_type`, `nan`, ...) says why.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT, Profile
from exporter.values import (
    MISSING,
    classify_category,
    classify_label,
    classify_number,
    classify_text,
    python_scalar,
)

DATASET = "mlmon.prediction"


def index_name(model: str) -> str:
    """The data stream a model's records go to: `mlmon-predictions-<model>` (lower case)."""
    return f"mlmon-predictions-{model.lower()}"


def utc_timestamp(epoch_s: float) -> str:
    """`2026-11-22T10:00:00.123Z`: ECS `@timestamp`, UTC, millisecond precision."""
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _finite_number(value: Any) -> float | None:
    number, reason = classify_number(value)
    return number if reason is None else None


def _json_scalar(value: Any) -> Any:
    """A value JSON (and Elasticsearch) can hold, or None; used when there is no profile."""
    value = python_scalar(value)
    if value is None or isinstance(value, (str, bool)):
        return value
    number = _finite_number(value)
    return value if number is not None and type(value) is int else number


class RecordBuilder:
    """Builds the ECS document for one prediction.

    >>> builder = RecordBuilder(model="churn", model_version="3", service_name="churn-api",
    ...                         environment="prod", profile=profile)
    >>> doc = builder.build({"age": 42, "city": "paris"}, 0.73, latency_s=0.012,
    ...                     flags={"age": ("out_of_range",)})
    """

    def __init__(
        self,
        *,
        model: str,
        model_version: str,
        service_name: str,
        environment: str,
        profile: Profile | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._service = {"name": service_name, "environment": environment}
        self._model = {"name": model, "version": model_version}
        # Chosen once: the typing function per known feature.
        self._kinds: dict[str, str] | None = None
        self._prediction_kind: str | None = None  # None: typed by the value itself
        if profile is not None:
            self._kinds = {f.name: f.kind for f in profile.features}
            if profile.prediction is not None:
                self._prediction_kind = profile.prediction.kind
        self._clock = clock
        self._new_id = new_id

    def build(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        latency_s: float | None = None,
        scores: Mapping[str, float] | float | None = None,
        request_id: str | None = None,
        flags: Mapping[str, Iterable[str]] | None = None,
        unknown_features: Iterable[str] | None = None,
        timestamp: float | None = None,
    ) -> dict[str, Any]:
        """The record as a plain dict (key order fixed, JSON-safe)."""
        event: dict[str, Any] = {
            "id": str(request_id) if request_id is not None else self._new_id(),
            "kind": "event",
            "dataset": DATASET,
        }
        latency = _finite_number(latency_s)
        if latency is not None and latency >= 0:
            event["duration"] = int(round(latency * 1e9))  # ECS: nanoseconds
        typed, unknown = self._features(features)
        if unknown_features is not None:
            unknown = sorted(set(unknown_features))
        flag_map = {str(name): list(values) for name, values in (flags or {}).items()}
        return {
            "@timestamp": utc_timestamp(self._clock() if timestamp is None else timestamp),
            "event": event,
            "service": dict(self._service),
            "model": dict(self._model),
            "features": typed,
            "prediction": self._prediction(prediction, scores),
            "flags": flag_map,
            "flagged": sorted(flag_map),
            "unknown_features": unknown,
        }

    def _features(self, features: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        if self._kinds is None:
            return {str(k): _json_scalar(v) for k, v in features.items()}, []
        typed: dict[str, Any] = {}
        unknown: list[str] = []
        for name, value in features.items():
            kind = self._kinds.get(name)
            if kind is None:
                # Unknown names are listed, their values never indexed: an attacker-controlled
                # key must not grow the mapping.
                unknown.append(str(name))
            elif kind == NUMERIC:
                typed[name] = _finite_number(value)
            elif kind == CATEGORICAL:
                typed[name] = classify_category(value)[0]
            elif kind == TEXT:
                typed[name] = classify_text(value)[0]
        return typed, sorted(unknown)

    def _prediction(self, prediction: Any,
                    scores: Mapping[str, float] | float | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kind = self._prediction_kind
        if kind is None:  # no profile to say: a str or bool is a label, anything else a number
            kind = (CLASSIFICATION if isinstance(python_scalar(prediction), (str, bool))
                    else REGRESSION)
        if kind == CLASSIFICATION:
            label, reason = classify_label(prediction)
            if label is not None:
                out["label"] = label
        else:
            number, reason = classify_number(prediction)
            if reason is None:
                out["value"] = number
        if reason is not None and reason != MISSING:  # a null is no prediction
            out["invalid"] = reason
        if scores is not None and not isinstance(scores, Mapping):
            # A bare number: the predicted class's probability (as the exporter accepts it).
            score = _finite_number(scores)
            if score is not None and "value" not in out:
                out["value"] = score
        elif scores:
            clean = {str(k): _finite_number(v) for k, v in scores.items()}
            out["scores"] = {k: v for k, v in sorted(clean.items()) if v is not None}
            label = out.get("label")
            if label in out["scores"] and "value" not in out:
                # The score of the predicted class: what the exporter's score histogram sees.
                out["value"] = out["scores"][label]
        return out
