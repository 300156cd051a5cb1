"""Kibana saved objects generated from a profile: a data view, red-flag searches, a dashboard.

Every saved search is a Lucene query over the record schema (docs/design.md section 4), so the
same string can be run by Elasticsearch's `query_string` (the tests do exactly that on a real
server). Objects are written in the format Kibana 8 exports (`_export` NDJSON): attributes with
JSON-encoded `searchSourceJSON` / `visState` / `panelsJSON`, and `references` by name, so
Kibana's `_import` migrates them from the stated `migrationVersion` like any exported file.
Ids are UUIDv5 of the model and the object's role: regenerating gives the same ids, and an
import with `overwrite=true` replaces the objects instead of duplicating them.

Red flags (one saved search each):
- per feature: missing (absent or null);
- numeric: out of range; NaN / Inf / wrong type;
- categorical: not allowed; unseen in training;
- text: no word from the reference vocabulary (the strongest OOV signal a record carries;
  Lucene has no "share of tokens" operator); wrong type;
- NaN / Inf predictions; slow requests (`event.duration` >= a threshold); this model version;
- classifiers, once labels are joined (`mlmon outcomes`, `PredictionLogger.record_outcome`):
  misclassified records, and confident-but-wrong ones (the predicted class's score at or above
  a threshold, and wrong).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, TEXT, Binned, Profile
from mlmon.exporter.values import (
    INF,
    MISSING,
    NAN,
    NOT_ALLOWED,
    OUT_OF_RANGE,
    UNSEEN,
    WRONG_TYPE,
)
from mlmon.log_shipper.es_assets import data_stream_name

DEFAULT_SLOW_MS = 1000.0
DEFAULT_CONFIDENT = 0.9  # a predicted class's score from which a wrong answer is "confident"
_NAMESPACE = uuid.UUID("5b0c6a8e-31f4-4f63-9a77-6f1f0f0d7c11")  # mlmon's, fixed forever
# Kibana migrates an imported object from these versions up (the versions its own sample
# data declares for the same shapes).
_MIGRATION = {"search": "7.9.3", "visualization": "7.14.0", "dashboard": "7.14.0"}
_LUCENE_SPECIAL = set('+-=&|><!(){}[]^"~*?:\\/ ')
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _json(value: Any) -> str:
    """Embedded JSON strings as Kibana writes them: compact, and here with sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def escape_field(name: str) -> str:
    """A field path for Lucene query syntax (backslash before reserved characters)."""
    return "".join("\\" + ch if ch in _LUCENE_SPECIAL else ch for ch in name)


def quote(value: str) -> str:
    """A Lucene phrase literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class RedFlagSearch:
    """One saved search: `key` is unique per profile, `query` is Lucene syntax."""

    key: str
    title: str
    query: str
    columns: tuple[str, ...]
    feature: str | None = None


def _flag_query(feature: str, *flags: str) -> str:
    field = "flags." + escape_field(feature)
    return f"{field}:{flags[0]}" if len(flags) == 1 else f"{field}:({' OR '.join(flags)})"


def red_flag_searches(profile: Profile, *, slow_ms: float = DEFAULT_SLOW_MS,
                      confident: float = DEFAULT_CONFIDENT) -> list[RedFlagSearch]:
    """The red-flag searches for this profile, in a stable order."""
    model = profile.model_name
    out: list[RedFlagSearch] = []
    for f in profile.features:
        cols = (f"features.{f.name}", f"flags.{f.name}", "model.version")

        def add(key: str, what: str, query: str, name: str = f.name,
                columns: tuple[str, ...] = cols) -> None:
            out.append(RedFlagSearch(f"{name}.{key}", f"[mlmon {model}] {name}: {what}",
                                     query, columns, name))

        # The flags are the exporter's reasons (mlmon.exporter.values), one search per reason
        # keyed by it, except numeric Inf and wrong type together.
        add(MISSING, "missing (absent or null)", _flag_query(f.name, MISSING))
        if f.kind == NUMERIC:
            add(OUT_OF_RANGE, "out of the allowed range", _flag_query(f.name, OUT_OF_RANGE))
            add("invalid", "Inf or wrong type", _flag_query(f.name, INF, WRONG_TYPE))
        elif f.kind == CATEGORICAL:
            add(NOT_ALLOWED, "category not allowed", _flag_query(f.name, NOT_ALLOWED))
            add(UNSEEN, "category unseen in training", _flag_query(f.name, UNSEEN))
        elif f.kind == TEXT:
            add(WRONG_TYPE, "not a string", _flag_query(f.name, WRONG_TYPE))
            if f.vocabulary:
                field = "features." + escape_field(f.name)
                words = " OR ".join(quote(w) for w in f.vocabulary)
                add("oov", "no word from the reference vocabulary",
                    f"{field}:* AND NOT {field}:({words})")
    pred_cols = ("prediction.value", "prediction.label", "prediction.invalid", "model.version")
    out.append(RedFlagSearch("prediction.nan_inf", f"[mlmon {model}] prediction: NaN or Inf",
                             f"prediction.invalid:({NAN} OR {INF})", pred_cols))
    threshold_ns = int(round(slow_ms * 1e6))
    out.append(RedFlagSearch("slow", f"[mlmon {model}] slow requests (>= {slow_ms:g} ms)",
                             f"event.duration:>={threshold_ns}",
                             ("event.duration", "service.name", "model.version")))
    out.append(RedFlagSearch("version", f"[mlmon {model}] model version {profile.model_version}",
                             f"model.version:{quote(profile.model_version)}",
                             ("model.version", "flagged", "prediction.value")))
    out.append(RedFlagSearch("flagged", f"[mlmon {model}] any flagged feature", "flagged:*",
                             ("flagged", "model.version")))
    if profile.prediction is not None and profile.prediction.kind == CLASSIFICATION:
        out += outcome_searches(model, confident)
    return out


def outcome_searches(model: str, confident: float) -> list[RedFlagSearch]:
    """A classifier's records whose joined label says the prediction was wrong."""
    columns = ("prediction.label", "outcome.label", "prediction.value", "outcome.delay_s",
               "model.version")
    return [
        RedFlagSearch("outcome.misclassified", f"[mlmon {model}] misclassified (label joined)",
                      "outcome.correct:false", columns),
        RedFlagSearch("outcome.confident_wrong",
                      f"[mlmon {model}] confident but wrong (score >= {confident:g})",
                      f"outcome.correct:false AND prediction.value:>={confident!r}", columns),
    ]


# ---- saved objects ------------------------------------------------------------------------

def _id(model: str, role: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{model}/{role}"))


def _search_source(query: str = "") -> str:
    return _json({"query": {"query": query, "language": "lucene"}, "filter": [],
                  "indexRefName": _INDEX_REF})


def _index_reference(data_view_id: str) -> list[dict[str, str]]:
    return [{"id": data_view_id, "name": _INDEX_REF, "type": "index-pattern"}]


def data_view(profile: Profile) -> dict[str, Any]:
    name = data_stream_name(profile)
    return {
        "id": _id(profile.model_name, "data-view"),
        "type": "index-pattern",
        "attributes": {"title": name, "name": f"mlmon {profile.model_name} predictions",
                       "timeFieldName": "@timestamp"},
        "references": [],
        "migrationVersion": {},
    }


def _saved_search(profile: Profile, search: RedFlagSearch, data_view_id: str) -> dict[str, Any]:
    return {
        "id": _id(profile.model_name, f"search/{search.key}"),
        "type": "search",
        "attributes": {
            "title": search.title,
            "description": f"mlmon red flag. Lucene: {search.query}",
            "columns": list(search.columns),
            "sort": [["@timestamp", "desc"]],
            "hits": 0,
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(search.query)},
        },
        "references": _index_reference(data_view_id),
        "migrationVersion": {"search": _MIGRATION["search"]},
    }


def _bar_params() -> dict[str, Any]:
    """A vertical bar chart's params, as Kibana's aggregation-based editor saves them."""
    return {
        "type": "histogram", "addTooltip": True, "addLegend": False, "legendPosition": "right",
        "times": [], "addTimeMarker": False, "grid": {"categoryLines": False},
        "labels": {"show": False},
        "thresholdLine": {"show": False, "value": 10, "width": 1, "style": "full",
                          "color": "#E7664C"},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom",
                          "show": True, "style": {}, "scale": {"type": "linear"},
                          "labels": {"show": True, "filter": True, "truncate": 100},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value",
                       "position": "left", "show": True, "style": {},
                       "scale": {"type": "linear", "mode": "normal"},
                       "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                       "title": {"text": "Count"}}],
        "seriesParams": [{"show": True, "type": "histogram", "mode": "stacked",
                          "data": {"label": "Count", "id": "1"}, "valueAxis": "ValueAxis-1",
                          "drawLinesBetweenPoints": True, "lineWidth": 2, "showCircles": True}],
    }


def terms_agg(field: str, size: int) -> dict[str, Any]:
    """Category frequencies, with an `Other` and a `Missing` bar."""
    return {"id": "2", "enabled": True, "type": "terms", "schema": "segment",
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1",
                       "otherBucket": True, "otherBucketLabel": "Other",
                       "missingBucket": True, "missingBucketLabel": "Missing"}}


def range_agg(field: str, binned: Binned) -> dict[str, Any]:
    """The distribution on the reference profile's own bin edges, open at both ends."""
    edges = list(binned.edges)
    ranges: list[dict[str, float]] = [{"to": edges[0]}] if edges else [{}]
    ranges += [{"from": lo, "to": hi} for lo, hi in zip(edges, edges[1:], strict=False)]
    if edges:
        ranges.append({"from": edges[-1]})
    return {"id": "2", "enabled": True, "type": "range", "schema": "segment",
            "params": {"field": field, "ranges": ranges}}


def _visualization(profile: Profile, role: str, title: str, segment: dict[str, Any],
                   data_view_id: str) -> dict[str, Any]:
    vis_state = {"title": title, "type": "histogram", "params": _bar_params(),
                 "aggs": [{"id": "1", "enabled": True, "type": "count", "schema": "metric",
                           "params": {}}, segment]}
    return {
        "id": _id(profile.model_name, f"vis/{role}"),
        "type": "visualization",
        "attributes": {
            "title": title, "description": "", "version": 1, "uiStateJSON": "{}",
            "visState": _json(vis_state),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
        },
        "references": _index_reference(data_view_id),
        "migrationVersion": {"visualization": _MIGRATION["visualization"]},
    }


def visualizations(profile: Profile, data_view_id: str) -> list[dict[str, Any]]:
    """Category frequencies for categorical features, distributions for numeric ones."""
    model = profile.model_name
    out = []
    for f in profile.features:
        field = f"features.{f.name}"
        if f.kind == CATEGORICAL:
            out.append(_visualization(profile, f"feature/{f.name}",
                                      f"[mlmon {model}] {f.name}: category frequency",
                                      terms_agg(field, len(f.top_categories) + 10), data_view_id))
        elif f.kind == NUMERIC:
            out.append(_visualization(profile, f"feature/{f.name}",
                                      f"[mlmon {model}] {f.name}: distribution (reference bins)",
                                      range_agg(field, f.binned), data_view_id))
    prediction = profile.prediction
    if prediction is not None and prediction.kind == CLASSIFICATION:
        out.append(_visualization(profile, "prediction", f"[mlmon {model}] predicted classes",
                                  terms_agg("prediction.label", len(prediction.classes) + 5),
                                  data_view_id))
    elif prediction is not None:
        out.append(_visualization(profile, "prediction",
                                  f"[mlmon {model}] predictions (reference bins)",
                                  range_agg("prediction.value", prediction.binned), data_view_id))
    out.append(_visualization(profile, "flagged", f"[mlmon {model}] flagged features",
                              terms_agg("flagged", len(profile.features) + 1), data_view_id))
    return out


def dashboard(profile: Profile, panels: list[dict[str, Any]]) -> dict[str, Any]:
    """Charts first, two per row, then the red-flag searches beside each other."""
    panel_json, references = [], []
    for n, obj in enumerate(panels):
        index = str(n + 1)
        panel_json.append({
            "version": "8.0.0", "type": obj["type"], "panelIndex": index,
            "gridData": {"x": 24 * (n % 2), "y": 12 * (n // 2), "w": 24, "h": 12, "i": index},
            "embeddableConfig": {"enhancements": {}}, "panelRefName": f"panel_{index}",
        })
        references.append({"id": obj["id"], "name": f"{index}:panel_{index}",
                           "type": obj["type"]})
    return {
        "id": _id(profile.model_name, "dashboard"),
        "type": "dashboard",
        "attributes": {
            "title": f"[mlmon {profile.model_name}] inputs and red flags",
            "description": "Feature distributions and saved searches for the red flags, "
                           "generated from the reference profile by `mlmon kibana-objects`.",
            "hits": 0, "version": 1, "timeRestore": True, "timeFrom": "now-24h",
            "timeTo": "now", "refreshInterval": {"pause": False, "value": 60000},
            "optionsJSON": _json({"hidePanelTitles": False, "useMargins": True}),
            "panelsJSON": _json(panel_json),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _json(
                {"query": {"query": "", "language": "lucene"}, "filter": []})},
        },
        "references": references,
        "migrationVersion": {"dashboard": _MIGRATION["dashboard"]},
    }


def saved_objects(profile: Profile, *, slow_ms: float = DEFAULT_SLOW_MS,
                  confident: float = DEFAULT_CONFIDENT) -> list[dict[str, Any]]:
    """Everything, dependencies first (the order `_export` writes them in)."""
    view = data_view(profile)
    searches = [_saved_search(profile, s, view["id"])
                for s in red_flag_searches(profile, slow_ms=slow_ms, confident=confident)]
    charts = visualizations(profile, view["id"])
    return [view, *searches, *charts, dashboard(profile, charts + searches)]


def to_ndjson(objects: list[dict[str, Any]]) -> str:
    """One object per line, keys sorted: a stable file for `git diff`."""
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n" for o in objects)
