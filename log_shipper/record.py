"""The input record: one ECS-named JSON document per prediction (docs/design.md section 4).

`RecordBuilder` is made once per service and called per prediction. It types each feature as
the profile says (numeric -> float, categorical -> canonical string, text -> str), so a value
Elasticsearch would reject for its mapping never leaves the process: such a value becomes
`null` and the exporter's flag (`wrong_type`, `inf`, ...) says why.

The request id contract: the record's `event.id` is its Elasticsearch `_id`, which Elasticsearch
refuses over 512 bytes (UTF-8). A longer `request_id` is replaced by `stable_id()`, a SHA-256 of
it (the same request id always gives the same `_id`, so a retried request is still indexed
once), and the original is kept in `event.original_id` (in `_source`, not indexed).

`RecordBuilder.defer(...)` captures what a record needs (O(1) plus a copy of the features and
of the scores) and returns a `PendingRecord`, a read-only Mapping that builds the document the
first time it is read: in the shipper's or the log sink's thread, not the request's.

Champion and challenger (log_shipper/shadow.py): a builder with a `role` writes `model.role`
and the request id, shared by both records of a request, in `trace.id`; the challenger's own
`event.id` is `<request id>.challenger` (`role_record_id`), so the two records of one request
never collide on `_id` while one search on `trace.id` finds both. A label for the request finds
the challenger's record under `challenger_record_id(request id)`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT, Profile
from mlmon.exporter.values import (
    MISSING,
    OUT_OF_RANGE,
    classify_category,
    classify_label,
    classify_number,
    classify_text,
    python_scalar,
)
from mlmon.names import CHALLENGER_ROLE, CHAMPION_ROLE

DATASET = "mlmon.prediction"
MAX_ID_BYTES = 512  # Elasticsearch's limit on a document `_id`, in UTF-8 bytes
_HASHED_ID_PREFIX = "sha256:"


def stable_id(request_id: str) -> tuple[str, str | None]:
    """`(id, original)`: the id itself when Elasticsearch accepts it, else `sha256:<hex>` of
    its UTF-8 bytes and the original (kept in `event.original_id`)."""
    # No encoding for the usual short id: 128 characters are at most 512 bytes in UTF-8.
    if len(request_id) <= MAX_ID_BYTES // 4:
        return request_id, None
    raw = request_id.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_ID_BYTES:
        return request_id, None
    return _HASHED_ID_PREFIX + hashlib.sha256(raw).hexdigest(), request_id


def role_record_id(request_id: str, role: str | None) -> str:
    """The record id (before `stable_id`) of a request's record in `role`: the request id for
    the champion (or no role), `<request id>.<role>` otherwise."""
    return request_id if role is None or role == CHAMPION_ROLE else f"{request_id}.{role}"


def challenger_record_id(request_id: str, role: str = CHALLENGER_ROLE) -> str:
    """The record id (before `stable_id`) of the challenger's record of request `request_id`,
    for joining a label to it: the shadow code hands the challenger the champion's `event.id`
    (`stable_id(request_id)`), so the role goes on that, e.g. `sha256:<hex>.challenger` for a
    request id over 512 bytes."""
    return role_record_id(stable_id(request_id)[0], role)


def random_id() -> str:
    """A random UUID (version 4) as text, e.g. `6c27f591-a0cf-49b2-a4e6-c993ee49fb6e`.

    What `str(uuid.uuid4())` gives, from the same 16 bytes of `os.urandom`, formatted without
    the `UUID` object: this runs on the request thread, once per record, at a third of the
    cost. Fork-safe as uuid4 is: no state in the process."""
    h = os.urandom(16).hex()
    # version 4 in the 13th digit; variant 10xx (RFC 4122) in the 17th
    return (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-"
            f"{h[20:]}")


_VARIANT = "89ab"


def index_name(model: str) -> str:
    """The data stream a model's records go to: `mlmon-predictions-<model>` (lower case)."""
    return f"mlmon-predictions-{model.lower()}"


# (whole second, its "YYYY-MM-DDTHH:MM:SS." text): records come many per second, and formatting
# the date is most of a timestamp's cost. One tuple, swapped whole, so threads never mix parts.
_last_second: tuple[int, str] = (-1, "")


def utc_timestamp(epoch_s: float) -> str:
    """`2026-11-22T10:00:00.123Z`: ECS `@timestamp`, UTC, millisecond precision."""
    global _last_second
    # Rounded to the microsecond first, as datetime does, then truncated to the millisecond.
    second, ms = divmod(round(epoch_s * 1e6) // 1000, 1000)
    cached = _last_second
    if cached[0] != second:
        moment = datetime.fromtimestamp(second, tz=timezone.utc)
        cached = _last_second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{cached[1]}{ms:03d}Z"


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
        new_id: Callable[[], str] = random_id,
        role: str | None = None,
    ) -> None:
        self.role = role
        self._service = {"name": service_name, "environment": environment}
        self._model = {"name": model, "version": model_version}
        # Chosen once: the typing function per known feature.
        self._kinds: dict[str, str] | None = None
        self._prediction_kind: str | None = None  # None: typed by the value itself
        # a regression's allowed range: a value outside is kept and marked out_of_range
        self._range = (-math.inf, math.inf)
        if profile is not None:
            self._kinds = {f.name: f.kind for f in profile.features}
            if profile.prediction is not None:
                self._prediction_kind = profile.prediction.kind
                self._range = profile.prediction_range() or self._range
        self._clock = clock
        self._new_id = new_id

    def with_role(self, role: str) -> RecordBuilder:
        """A copy of this builder whose records carry `role` (`champion`, `challenger`)."""
        other = copy.copy(self)
        other.role = role
        return other

    def for_model(self, model: str, model_version: str, profile: Profile | None,
                  role: str) -> RecordBuilder:
        """A builder for another model version of the same service (a challenger)."""
        service = self._service
        return RecordBuilder(model=model, model_version=model_version,
                             service_name=service["name"], environment=service["environment"],
                             profile=profile, clock=self._clock, new_id=self._new_id, role=role)

    def new_id(self) -> str:
        """A fresh record id (a random UUID unless the builder was given `new_id`)."""
        return self._new_id()

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
        """The record as a plain dict (key order fixed, JSON-safe).

        With a role, `request_id` is the request's id (a fresh one when None): `trace.id`,
        shared by the champion's and the challenger's records; `event.id` is the role's."""
        role = self.role
        if role is not None and request_id is None:
            request_id = self._new_id()
        trace = None
        if request_id is None:
            ident, original = self._new_id(), None
        else:
            if role is not None:
                trace = stable_id(str(request_id))[0]
                request_id = role_record_id(str(request_id), role)
            ident, original = stable_id(str(request_id))
        event: dict[str, Any] = {"id": ident, "kind": "event", "dataset": DATASET}
        if original is not None:
            event["original_id"] = original
        if latency_s is not None:
            latency = _finite_number(latency_s)
            if latency is not None and latency >= 0:
                event["duration"] = int(round(latency * 1e9))  # ECS: nanoseconds
        typed, unknown = self._features(features)
        if unknown_features is not None:
            unknown = sorted(set(unknown_features))
        # built once per record in the shipper's thread: the common empty cases cost nothing
        flag_map = {str(name): list(values) for name, values in flags.items()} if flags else {}
        stamp = utc_timestamp(self._clock() if timestamp is None else timestamp)
        model: dict[str, Any] = dict(self._model)
        if trace is None:
            doc: dict[str, Any] = {"@timestamp": stamp, "event": event}
        else:
            doc = {"@timestamp": stamp, "event": event, "trace": {"id": trace}}
            model["role"] = role
        doc["service"] = dict(self._service)
        doc["model"] = model
        doc["features"] = typed
        doc["prediction"] = self._prediction(prediction, scores)
        doc["flags"] = flag_map
        doc["flagged"] = sorted(flag_map) if flag_map else []
        doc["unknown_features"] = unknown
        return doc

    def defer(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        latency_s: float | None = None,
        scores: Mapping[str, float] | float | None = None,
        request_id: str | None = None,
        flags: Mapping[str, Iterable[str]] | None = None,
        unknown_features: Iterable[str] | None = None,
    ) -> PendingRecord:
        """What `build()` needs, captured now (id and timestamp included); built when read."""
        ident = self._new_id() if request_id is None else str(request_id)
        if scores is not None and type(scores) is not float and isinstance(scores, Mapping):
            scores = dict(scores)  # the caller may reuse its dict once record() has returned
        return PendingRecord(self, ident, self._clock(), dict(features), prediction, latency_s,
                             scores, flags, unknown_features)

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
                if type(value) is float:  # the common case, without the general checks
                    typed[name] = value if math.isfinite(value) else None
                    continue
                typed[name] = _finite_number(value)
            elif kind == CATEGORICAL:
                typed[name] = value if type(value) is str else classify_category(value)[0]
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
                assert number is not None  # no reason: a finite float
                out["value"] = number
                if not self._range[0] <= number <= self._range[1]:  # observe()'s verdict too
                    reason = OUT_OF_RANGE
        if reason is not None and reason != MISSING:  # a null is no prediction
            out["invalid"] = reason
        # `type() is float` first: a bare score is the common case, and a negative isinstance
        # against the Mapping ABC is slow
        if scores is not None and (type(scores) is float or not isinstance(scores, Mapping)):
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


class PendingRecord(Mapping[str, Any]):
    """A record captured on the request thread and built on first read (then kept).

    `id` is known at once (it is what `PredictionLogger.record()` returns); everything else
    waits for the reader, the shipper's or the log sink's thread. Two readers racing build it
    twice and get equal documents: the id and the timestamp were fixed at capture.

    >>> pending = builder.defer({"age": 42}, 0.73)
    >>> pending.id                 # no build yet
    >>> dict(pending)              # built here
    """

    __slots__ = ("_builder", "_request_id", "_timestamp", "_args", "_built")

    def __init__(self, builder: RecordBuilder, request_id: str, timestamp: float,
                 *args: Any) -> None:
        self._builder = builder
        self._request_id = request_id
        self._timestamp = timestamp
        self._args = args
        self._built: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """The record's `event.id` (the `_id` it will have in Elasticsearch)."""
        return stable_id(role_record_id(self._request_id, self._builder.role))[0]

    def build(self) -> dict[str, Any]:
        """The document (built once)."""
        built = self._built
        if built is None:
            features, prediction, latency_s, scores, flags, unknown = self._args
            built = self._builder.build(features, prediction, latency_s=latency_s,
                                        scores=scores, request_id=self._request_id,
                                        flags=flags, unknown_features=unknown,
                                        timestamp=self._timestamp)
            self._built = built
        return built

    def __getitem__(self, key: str) -> Any:
        return self.build()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.build())

    def __len__(self) -> int:
        return len(self.build())


def materialize(item: Any) -> Mapping[str, Any]:
    """The record a queued item stands for: a `PendingRecord` built, anything else as is.
    Meant as the shipper's `prepare`, so a record that fails to build is counted as such."""
    return item.build() if isinstance(item, PendingRecord) else item
