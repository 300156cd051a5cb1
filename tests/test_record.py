"""The ECS record builder: typing by profile, ids, timestamps, prediction shapes."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import datetime, timezone

import numpy as np

from mlmon.exporter.profile import Profile
from mlmon.log_shipper.record import (
    RecordBuilder,
    index_name,
    materialize,
    random_id,
    stable_id,
    utc_timestamp,
)
from tests.profiles import sample_profile_dict

NOW = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=timezone.utc).timestamp()


def _builder(profile: Profile | None = None, **kw: object) -> RecordBuilder:
    return RecordBuilder(model="churn", model_version="3", service_name="churn-api",
                         environment="prod", profile=profile, clock=lambda: NOW,
                         new_id=lambda: "fixed-id", **kw)


def test_record_matches_the_design_schema(sample_profile: Profile) -> None:
    doc = _builder(sample_profile).build(
        {"age": 42, "income": np.float64(1500.5), "city": "paris", "review": "the good",
         "colour": "red"},
        0.73, latency_s=0.012, flags={"age": ("out_of_range",), "city": ("unseen",)},
    )
    assert doc == {
        "@timestamp": "2026-11-22T10:00:00.123Z",
        "event": {"id": "fixed-id", "kind": "event", "dataset": "mlmon.prediction",
                  "duration": 12_000_000},
        "service": {"name": "churn-api", "environment": "prod"},
        "model": {"name": "churn", "version": "3"},
        "features": {"age": 42.0, "income": 1500.5, "city": "paris", "review": "the good"},
        "prediction": {"value": 0.73},
        "flags": {"age": ["out_of_range"], "city": ["unseen"]},
        "flagged": ["age", "city"],
        "unknown_features": ["colour"],
    }
    json.dumps(doc, allow_nan=False)  # JSON-safe


def test_values_elasticsearch_would_reject_become_null(sample_profile: Profile) -> None:
    doc = _builder(sample_profile).build(
        {"age": "forty", "income": math.nan, "city": 3.0, "review": 17}, math.inf)
    assert doc["features"] == {"age": None, "income": None, "city": "3", "review": None}
    assert doc["prediction"] == {"invalid": "inf"}
    assert "duration" not in doc["event"]


def test_request_id_is_the_stable_id() -> None:
    doc = _builder().build({"a": 1}, 1.0, request_id="req-7")
    assert doc["event"]["id"] == "req-7"


def test_default_ids_are_unique_uuids() -> None:
    builder = RecordBuilder(model="m", model_version="1", service_name="s", environment="e")
    ids = {builder.build({}, None)["event"]["id"] for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 36 for i in ids)


def test_classification_label_takes_the_score_of_its_class() -> None:
    profile = Profile.from_dict(sample_profile_dict(classification=True))
    doc = _builder(profile).build({}, "yes", scores={"yes": 0.8, "no": 0.2})
    assert doc["prediction"] == {"label": "yes", "value": 0.8,
                                 "scores": {"no": 0.2, "yes": 0.8}}
    assert _builder(profile).build({}, 1)["prediction"] == {"label": "1"}


def test_without_profile_only_json_scalars_pass() -> None:
    doc = _builder().build({"a": 1, "b": "x", "c": math.nan, "d": [1, 2]}, None)
    assert doc["features"] == {"a": 1, "b": "x", "c": None, "d": None}
    assert doc["prediction"] == {}


def test_timestamps_are_utc_milliseconds() -> None:
    assert utc_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(1.9999) == "1970-01-01T00:00:01.999Z"
    assert index_name("Churn") == "mlmon-predictions-churn"


# ---- the request id contract (Elasticsearch refuses an _id over 512 UTF-8 bytes) -------------

def test_an_id_elasticsearch_accepts_is_kept_as_is() -> None:
    for request_id in ("r" * 512, "é" * 256, "短" * 128):  # 512 bytes each, the limit
        doc = _builder().build({}, None, request_id=request_id)
        assert doc["event"]["id"] == request_id and "original_id" not in doc["event"]


def test_an_over_long_id_is_hashed_stably_and_the_original_kept() -> None:
    long_id = "é" * 257  # 514 bytes, 257 characters
    doc = _builder().build({}, None, request_id=long_id)
    assert doc["event"]["id"] == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    assert doc["event"]["original_id"] == long_id
    again = _builder().build({}, None, request_id=long_id)  # a retried request: same _id
    assert again["event"]["id"] == doc["event"]["id"]
    other = _builder().build({}, None, request_id="é" * 258)
    assert other["event"]["id"] != doc["event"]["id"]
    assert stable_id("x" * 644) == ("sha256:" + hashlib.sha256(b"x" * 644).hexdigest(),
                                    "x" * 644)


# ---- deferred build ------------------------------------------------------------------------

def test_a_deferred_record_builds_the_same_document_when_read(sample_profile: Profile) -> None:
    calls = iter([NOW, NOW + 5])  # capture reads the clock once; a build later must not
    builder = RecordBuilder(model="churn", model_version="3", service_name="churn-api",
                            environment="prod", profile=sample_profile,
                            clock=lambda: next(calls), new_id=lambda: "fixed-id")
    features = {"age": 42, "city": "paris", "colour": "red"}
    pending = builder.defer(features, 0.73, latency_s=0.012, flags={"age": ("out_of_range",)})
    assert pending.id == "fixed-id" and pending._built is None  # nothing built yet
    features["age"] = 99  # the caller reuses its dict after record() returned
    expected = _builder(sample_profile).build(
        {"age": 42, "city": "paris", "colour": "red"}, 0.73, latency_s=0.012,
        flags={"age": ("out_of_range",)})
    assert dict(pending) == expected
    assert pending["event"] is pending["event"]  # built once, then kept


def test_a_deferred_record_keeps_the_scores_it_was_given(sample_profile: Profile) -> None:
    builder = _builder(sample_profile)
    scores = {"no": 0.2, "yes": 0.8}
    pending = builder.defer({"age": 42}, "yes", scores=scores, request_id="req-1")
    scores["yes"] = 0.1  # the caller reuses its dict for the next prediction
    del scores["no"]
    assert dict(pending)["prediction"]["scores"] == {"no": 0.2, "yes": 0.8}
    assert dict(pending) == builder.build({"age": 42}, "yes", scores={"no": 0.2, "yes": 0.8},
                                          request_id="req-1", timestamp=NOW)


def test_a_deferred_record_with_an_over_long_id_reports_the_hashed_id() -> None:
    pending = _builder().defer({}, None, request_id="x" * 600)
    assert pending.id == dict(pending)["event"]["id"] == stable_id("x" * 600)[0]


def test_the_cached_second_timestamp_matches_datetime_formatting() -> None:
    # utc_timestamp caches the formatted second; the result must be what datetime gives,
    # across second boundaries and from several values within one second.
    def by_datetime(t: float) -> str:
        moment = datetime.fromtimestamp(t, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    moments = [NOW, NOW + 0.5, NOW + 0.876, NOW + 1, NOW - 1.25, 0.0, 86_399.999, 1.9995]
    for t in moments + moments[::-1]:
        assert utc_timestamp(t) == by_datetime(t), t


def test_materialize_builds_a_pending_record_and_passes_a_dict_through() -> None:
    pending = _builder().defer({"a": 1}, 1.0, request_id="req-9")
    assert materialize(pending) == _builder().build({"a": 1}, 1.0, request_id="req-9",
                                                    timestamp=NOW)
    record = {"event": {"id": "x"}}
    assert materialize(record) is record


def test_random_ids_are_version_4_uuids_in_their_text_form() -> None:
    ids = [random_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
               for u, i in zip(parsed, ids, strict=True))
    # every variant digit 8, 9, a, b occurs: the two random bits beside the variant are kept
    assert {i[19] for i in ids} == set("89ab")
