"""Elasticsearch assets generated from a profile: one composable index template per model.

The template `mlmon-predictions-<model>` matches exactly the data stream of the same name
(docs/design.md section 4). Its mappings are explicit and come from the profile alone:

- numeric features and prediction values/scores -> `double`;
- categorical features, flags, ids and names -> `keyword`;
- text features -> `text` (standard analyzer) with a `keyword` subfield for exact match / terms;
- `dynamic: false` everywhere: a field the profile does not know stays in `_source` but is never
  mapped, so an unknown key in a request (or a Logstash-added field) cannot explode the mapping;
  `index.mapping.total_fields.limit` is a second guard should someone turn dynamic mapping on.

Retention is the data stream lifecycle (`lifecycle.data_retention`), not ILM: Elasticsearch 8.14
accepts it in a composable template, and it needs no separate policy object. (The test server,
Elastic's minimal distribution, stores it but has no ILM at all: `index.lifecycle.name` would be
rejected there as an unknown setting.)

`install()` is idempotent: it writes the template only when it differs from the one stored,
and adds new fields to an existing data stream's current backing index, so a profile with a new
feature takes effect without a rollover. A template's lifecycle reaches only data streams
created after it, so `install()` also puts the retention on an existing data stream
(`PUT _data_stream/<name>/_lifecycle`, or DELETE for `none`); a server without that API (the
test distribution) is told apart, logged, and reported as `retention="unsupported"`. The data
stream itself is created by the first document written with `op_type: create`, as
Elasticsearch does for any matching template.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, TEXT, Profile
from mlmon.log_shipper.record import index_name

log = logging.getLogger(__name__)

DEFAULT_RETENTION = "30d"
# Above the built-in templates (`logs-*-*` has 100) so a future overlap cannot shadow ours.
TEMPLATE_PRIORITY = 200
KEYWORD_IGNORE_ABOVE = 1024
TEXT_KEYWORD_IGNORE_ABOVE = 256
# Characters Elasticsearch forbids in index and data stream names.
_FORBIDDEN = set('\\/*?"<>|,# :')


class AssetError(ValueError):
    """The profile cannot be turned into Elasticsearch assets (e.g. an invalid index name)."""


def data_stream_name(profile: Profile) -> str:
    """`mlmon-predictions-<model>`; raises `AssetError` for a name Elasticsearch would refuse."""
    name = index_name(profile.model_name)
    bad = sorted(set(name) & _FORBIDDEN)
    if bad or len(name.encode("utf-8")) > 255:
        raise AssetError(f"model name {profile.model_name!r} gives the data stream name "
                         f"{name!r}, which Elasticsearch refuses (characters {bad} or > 255 bytes)")
    return name


def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "dynamic": False, "properties": properties}


def _feature_field(kind: str) -> dict[str, Any]:
    if kind == NUMERIC:
        return {"type": "double"}
    if kind == CATEGORICAL:
        return _keyword()
    if kind == TEXT:
        return {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                       "ignore_above": TEXT_KEYWORD_IGNORE_ABOVE}}}
    raise AssetError(f"unknown feature kind {kind!r}")


def _prediction_field(profile: Profile) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "value": {"type": "double"},   # regression value, or the predicted class's score
        "label": _keyword(),           # classification label
        "invalid": _keyword(),         # nan / inf / wrong_type / out_of_range
    }
    prediction = profile.prediction
    if prediction is not None and prediction.kind == CLASSIFICATION:
        properties["scores"] = _object({c: {"type": "double"} for c in prediction.classes})
    return _object(properties)


def _outcome_field() -> dict[str, Any]:
    """The label joined to the record later (mlmon.log_shipper.join): written once, never
    changed, so Kibana can search misclassified and confident-but-wrong records."""
    return _object({
        "label": _keyword(),                   # classification: the actual class
        "value": {"type": "double"},           # regression: the actual value
        "correct": {"type": "boolean"},        # classification: prediction.label == label
        "error": {"type": "double"},           # regression: prediction.value - value
        "absolute_error": {"type": "double"},  # regression: |error|
        "arrived_at": {"type": "date"},        # when the label arrived
        "delay_s": {"type": "double"},         # arrived_at - @timestamp, seconds
        "writer": _keyword(),                  # the join attempt that wrote it (retry check)
    })


def mappings(profile: Profile) -> dict[str, Any]:
    """The explicit mapping of the record schema (docs/design.md section 4) for this profile."""
    return {
        "dynamic": False,
        "_meta": {"managed_by": "mlmon", "model": profile.model_name},
        "properties": {
            "@timestamp": {"type": "date"},
            "event": _object({"id": _keyword(), "kind": _keyword(), "dataset": _keyword(),
                              "duration": {"type": "long"}}),
            "service": _object({"name": _keyword(), "environment": _keyword()}),
            # role and trace.id: champion / challenger records of one request (shadow.py)
            "model": _object({"name": _keyword(), "version": _keyword(), "role": _keyword()}),
            "trace": _object({"id": _keyword()}),
            "features": _object({f.name: _feature_field(f.kind) for f in profile.features}),
            "prediction": _prediction_field(profile),
            "flags": _object({f.name: _keyword() for f in profile.features}),
            "flagged": _keyword(),
            "unknown_features": _keyword(),
            "outcome": _outcome_field(),
        },
    }


def count_fields(mapping: dict[str, Any]) -> int:
    """Mapped fields as Elasticsearch counts them for the total-fields limit (objects included)."""
    total = 0
    for field in mapping.get("properties", {}).values():
        total += 1 + count_fields(field) + len(field.get("fields", {}))
    return total


def total_fields_limit(mapping: dict[str, Any]) -> int:
    """Room for twice the profile's fields, never below Elasticsearch's own default of 1000."""
    return max(1000, 2 * count_fields(mapping))


def index_template(profile: Profile, *,
                   retention: str | None = DEFAULT_RETENTION) -> dict[str, Any]:
    """The body of `PUT _index_template/<data stream name>`."""
    name = data_stream_name(profile)
    mapping = mappings(profile)
    template: dict[str, Any] = {
        "settings": {
            "index.number_of_shards": 1,
            # One replica where there is a second node, none on a single node (stays green).
            "index.auto_expand_replicas": "0-1",
            "index.mapping.total_fields.limit": total_fields_limit(mapping),
        },
        "mappings": mapping,
    }
    if retention is not None:
        template["lifecycle"] = {"data_retention": retention}
    body: dict[str, Any] = {
        "index_patterns": [name],
        "data_stream": {},
        "priority": TEMPLATE_PRIORITY,
        "template": template,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    body["_meta"] = {"managed_by": "mlmon", "model": profile.model_name, "body_sha": digest}
    return body


@dataclass(frozen=True)
class InstallReport:
    """What `install()` did; `template` is "created", "updated" or "unchanged"; `retention`
    on an existing data stream is "applied", "removed", "unsupported" (the server has no
    `_data_stream` lifecycle API) or None (no data stream yet: it gets the template's)."""

    template_name: str
    data_stream: str
    template: str
    data_stream_exists: bool
    mapping_updated: bool
    retention: str | None = None

    def summary(self) -> str:
        stream = ("exists; current mapping " + ("updated" if self.mapping_updated else "unchanged")
                  if self.data_stream_exists else "created by the first record")
        if self.retention == "unsupported":
            stream += ("; retention NOT applied to it (this Elasticsearch has no _data_stream "
                       "lifecycle API; only new data streams get the template's)")
        elif self.retention is not None:
            stream += f"; retention {self.retention}"
        return (f"index template {self.template_name}: {self.template}; "
                f"data stream {self.data_stream}: {stream}")


def install(client: Any, profile: Profile, *,
            retention: str | None = DEFAULT_RETENTION) -> InstallReport:
    """Install (or update) the template; safe to run any number of times.

    `client` is an `elasticsearch.Elasticsearch`. Raises `AssetError` when a plain index
    already holds the data stream's name (writes would bypass the template), and lets the
    client's errors (connection, auth, a mapping conflict) propagate for the caller to report.
    """
    name = data_stream_name(profile)
    body = index_template(profile, retention=retention)
    existing = _stored_template(client, name)
    if existing is None:
        status = "created"
    elif _same_template(existing, body):
        status = "unchanged"
    else:
        status = "updated"
    if status != "unchanged":
        client.indices.put_index_template(name=name, **body)

    backing = _backing_indices(client, name)
    if backing is None:
        return InstallReport(name, name, status, False, False)
    mapping_updated = False
    if status != "unchanged":
        # New fields reach the current backing index now, not only after the next rollover.
        mapping = body["template"]["mappings"]
        client.indices.put_mapping(index=name, dynamic=False, properties=mapping["properties"])
        client.indices.put_settings(index=name, settings={
            "index.mapping.total_fields.limit": body["template"]["settings"][
                "index.mapping.total_fields.limit"]})
        mapping_updated = True
    applied = _apply_retention(client, name, retention)
    return InstallReport(name, name, status, True, mapping_updated, applied)


def _apply_retention(client: Any, name: str, retention: str | None) -> str:
    """Put (or, for None, remove) the lifecycle retention of an existing data stream."""
    from elasticsearch import ApiError

    try:
        if retention is None:
            client.indices.delete_data_lifecycle(name=name)
            return "removed"
        client.indices.put_data_lifecycle(name=name, data_retention=retention)
        return "applied"
    except ApiError as exc:
        message = str(exc.message)
        if exc.meta.status in (400, 405) and ("no handler found" in message
                                              or "Incorrect HTTP method" in message):
            log.warning("retention %s not applied to the existing data stream %s: this "
                        "Elasticsearch has no _data_stream lifecycle API (%s)",
                        retention or "none", name, message)
            return "unsupported"
        raise


def _stored_template(client: Any, name: str) -> dict[str, Any] | None:
    from elasticsearch import NotFoundError

    try:
        found = client.indices.get_index_template(name=name)
    except NotFoundError:
        return None
    templates = found.get("index_templates", [])
    return templates[0]["index_template"] if templates else None


def _same_template(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when the stored template was written from the same generated body.

    Elasticsearch stores templates in its own normal form (settings as nested strings, object
    types dropped), so the body's digest in `_meta` is compared instead of the body itself.
    """
    return bool(stored.get("_meta", {}).get("body_sha") == wanted["_meta"]["body_sha"])


def _backing_indices(client: Any, name: str) -> list[str] | None:
    """The data stream's backing indices, or None when it does not exist yet."""
    from elasticsearch import NotFoundError

    try:
        found = client.indices.get(index=name, allow_no_indices=True, expand_wildcards="all")
    except NotFoundError:
        return None
    if not found:
        return None
    plain = [index for index, info in found.items() if info.get("data_stream") != name]
    if plain:
        raise AssetError(f"{name} exists as a plain index, not a data stream; records would "
                         f"bypass the template: reindex or delete {', '.join(sorted(plain))}")
    return sorted(found)
