"""Joining labels that arrive later to the prediction records stored in Elasticsearch.

A label is `(request_id, actual, arrived_at)`. `OutcomeJoiner.join(labels)` finds each record by
its `_id` (`stable_id(request_id)`, as the shipper wrote it), writes the outcome onto it, and
counts each outcome it wrote through the counter of the record's model version:

- lookup: `mget` on the data stream's backing indices, newest first (a data stream refuses `mget`
  and single-document writes; its backing indices take both). `mget` is real-time, so a record
  indexed a moment ago is found without waiting for a refresh;
- write: a partial `update` of the backing index holding the record, with `if_seq_no` /
  `if_primary_term` from the lookup, and only when the record has no outcome yet. A 409 means
  another writer got there first: the label is a `duplicate`. So the same label fed twice, or by
  two concurrent runs, is counted exactly once (no script: the partial document needs none);
- a 409 is read back: a write of ours whose answer was lost (the client retried it) finds its
  own token in `outcome.writer` and is counted; anything else is a `duplicate`.

Nothing here raises for a bad label: every label gets a verdict, `counted` or a rejection
reason, and every rejection is counted (`reject_outcome(reason)`) except `es_unavailable`:
when Elasticsearch cannot be asked (refused, timeouts, 429/5xx after the capped retries), the
labels not yet settled get that verdict and the caller decides (the CLI counts them and stops;
the service's worker tries them again later). Outcomes written before that are counted.
Should Elasticsearch apply a write whose answer never came back, the record holds the outcome
and the label was counted `es_unavailable`: feeding it again finds a `duplicate`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mlmon.exporter.layout import (
    BAD_ARRIVAL,
    DUPLICATE,
    ES_UNAVAILABLE,
    INVALID_PREDICTION,
    MISSING_ACTUAL,
    MISSING_PREDICTION,
    UNKNOWN_ID,
    UNKNOWN_MODEL,
    WRITE_ERROR,
)
from mlmon.exporter.profile import CLASSIFICATION, Profile
from mlmon.exporter.values import INF, MISSING, classify_label, classify_number
from mlmon.log_shipper.record import stable_id, utc_timestamp

log = logging.getLogger(__name__)

COUNTED = "counted"
# Rejection reasons (mlmon_outcome_rejected_total{reason}), the exporter's names; the label's
# own type reasons (nan, inf, wrong_type) come from mlmon.exporter.values.
# unknown_id: no record with this id (never shipped, or past retention); duplicate: the record
# has an outcome already; unknown_model: the record's model version has no counter here;
# missing_actual: an empty label; missing_prediction / invalid_prediction: the record holds no
# usable prediction to compare with; write_error: Elasticsearch refused the write (logged);
# bad_arrival: the arrival time is no time; es_unavailable: see the module's doc.

# Only these fields of a record are read: the rest (features) would cost bandwidth for nothing.
_SOURCE = ["@timestamp", "prediction", "model.version", "outcome"]
_RETRY_STATUSES = frozenset((429, 502, 503, 504))
# Arrival times a date can hold (years 1 to 9999, Unix seconds): beyond, no timestamp to write.
_EPOCH_MIN, _EPOCH_MAX = -62135596800.0, 253402300799.0


class OutcomeCounter(Protocol):
    """What the joiner counts into: `mlmon.exporter`'s outcome API."""

    def observe_outcome(self, prediction: Any, actual: Any, *,
                        predicted_at: float | None = None,
                        arrived_at: float | None = None) -> Any: ...

    def reject_outcome(self, reason: str, n: int = 1) -> None: ...




class _Unavailable(Exception):
    """Elasticsearch did not answer usefully within the retries."""


@dataclass(frozen=True)
class Label:
    """One label: the prediction's request id, the actual value, when it arrived (epoch s)."""

    request_id: str
    actual: Any
    arrived_at: float


@dataclass
class _Found:
    """A record found by the lookup: where it is, its version, and the fields read."""

    doc_id: str
    index: str
    seq_no: int
    primary_term: int
    source: dict[str, Any]
    label: Label = None  # type: ignore[assignment]  # set once matched to its label


def parse_timestamp(text: Any) -> float | None:
    """Epoch seconds of a record's `@timestamp` (`2026-11-22T10:00:00.123Z`), None if not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def backing_order(name: str) -> tuple[int, str]:
    """Sort key of a backing index, newest generation first (`.ds-<stream>-<date>-000007`)."""
    generation = name.rsplit("-", 1)[-1]
    return (-int(generation) if generation.isdigit() else 0, name)


class OutcomeJoiner:
    """Joins labels to one model's records and counts what it wrote.

    >>> joiner = OutcomeJoiner(client, profile, {"3": monitor})
    >>> joiner.join([Label("req-1", "churn", time.time())])
    ['counted']

    `counters`: model version -> its counter; records of another version are `unknown_model`.
    A rejection of a record (a duplicate, no usable prediction) is counted by the counter of
    the record's version; one without a record of a counted version (an unknown id, a bad
    label, an unknown model) by `rejects`, by default the counter of the profile's own version
    (else the first).
    """

    def __init__(self, client: Any, profile: Profile, counters: Mapping[str, OutcomeCounter], *,
                 data_stream: str | None = None, rejects: OutcomeCounter | None = None,
                 retries: int = 3, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep,
                 new_token: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        from mlmon.log_shipper.es_assets import data_stream_name

        if not counters:
            raise ValueError("OutcomeJoiner needs at least one counter (model version -> counter)")
        self.client = client
        self.data_stream = data_stream or data_stream_name(profile)
        self.classification = (profile.prediction is not None
                                and profile.prediction.kind == CLASSIFICATION)
        self.counters = dict(counters)
        self.rejects = rejects or self.counters.get(profile.model_version) or next(
            iter(self.counters.values()))
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._new_token = new_token
        self.last_error = ""  # why Elasticsearch was last unavailable

    # ---- the public step ------------------------------------------------------------------

    def join(self, labels: Sequence[Label], *, uncounted: Collection[str] = ()) -> list[str]:
        """The verdict of each label, in order: `counted` or the reason it was rejected.

        Never raises for a label or for Elasticsearch being away (see the module's doc).
        Rejections for the reasons in `uncounted`, and `es_unavailable`, are left to the caller
        to count (the service's worker tries an unknown id again before counting it).
        """
        verdicts: list[str] = [COUNTED] * len(labels)
        pending: dict[str, int] = {}  # _id -> position of its first label in this batch
        again: dict[int, str] = {}  # position -> _id of a label whose id came earlier
        for n, label in enumerate(labels):
            reason = self.label_reason(label)
            if reason is None and not label.request_id:
                reason = UNKNOWN_ID
            if reason is None:
                doc_id = stable_id(str(label.request_id))[0]
                if doc_id in pending:
                    reason = DUPLICATE  # the same id twice in one batch: the first one wins
                    again[n] = doc_id
                else:
                    pending[doc_id] = n
            if reason is not None:
                verdicts[n] = reason
        try:
            found = self._lookup(list(pending))
        except _Unavailable:
            for n in pending.values():
                verdicts[n] = ES_UNAVAILABLE
            found = {}
            pending = {}
        writes: list[tuple[int, _Found, dict[str, Any]]] = []
        for doc_id, n in pending.items():
            hit = found.get(doc_id)
            if hit is None:
                verdicts[n] = UNKNOWN_ID
                continue
            hit.label = labels[n]
            reason, outcome = self._outcome(hit)
            if reason is not None:
                verdicts[n] = reason
            else:
                writes.append((n, hit, outcome))
        for n, _hit, _outcome in writes:
            verdicts[n] = ES_UNAVAILABLE  # until the write's answer says otherwise
        for n, verdict in self._write(writes):
            verdicts[n] = verdict
        for n, hit, outcome in writes:
            if verdicts[n] == COUNTED:
                self._count(hit, outcome)
        # A record's rejection counts under the record's version (a challenger's duplicate
        # under the challenger's); a label without one under `rejects`.
        owners = {n: found[doc_id] for n, doc_id in again.items() if doc_id in found}
        owners |= {n: found[doc_id] for doc_id, n in pending.items() if doc_id in found}
        for n, verdict in enumerate(verdicts):
            if verdict not in (COUNTED, ES_UNAVAILABLE) and verdict not in uncounted:
                hit = owners.get(n)
                counter = self._counter(hit) if hit is not None else None
                (counter or self.rejects).reject_outcome(verdict)
        return verdicts

    # ---- steps ----------------------------------------------------------------------------

    def label_reason(self, label: Label) -> str | None:
        """Why `label` itself cannot be counted (its arrival time or actual value), else None."""
        arrived = label.arrived_at
        if (isinstance(arrived, bool) or not isinstance(arrived, (int, float))
                or not _EPOCH_MIN <= arrived <= _EPOCH_MAX):  # NaN fails too
            return BAD_ARRIVAL
        reason = (classify_label if self.classification else classify_number)(label.actual)[1]
        return MISSING_ACTUAL if reason == MISSING else reason

    def _backing_indices(self) -> list[str]:
        """Asked per batch: a rollover adds one at any time."""
        from elasticsearch import NotFoundError

        try:
            found = self._call(lambda: self.client.indices.get(
                index=self.data_stream, expand_wildcards="all", allow_no_indices=True))
        except NotFoundError:
            return []
        return sorted(found, key=backing_order)

    def _lookup(self, ids: list[str]) -> dict[str, _Found]:
        """The records of `ids`, searched in each backing index, newest first."""
        from elasticsearch import NotFoundError

        found: dict[str, _Found] = {}
        remaining = ids
        for index in self._backing_indices() if ids else []:
            try:
                answer = self._call(functools.partial(
                    self.client.mget, index=index, ids=remaining, source_includes=_SOURCE,
                    realtime=True))
            except NotFoundError:
                continue  # deleted since it was listed (retention): its records are gone

            for doc in answer["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = _Found(doc["_id"], doc["_index"], doc["_seq_no"],
                                               doc["_primary_term"], doc.get("_source") or {})
            remaining = [i for i in remaining if i not in found]
            if not remaining:
                break
        return found

    def _outcome(self, hit: _Found) -> tuple[str | None, dict[str, Any]]:
        """`(reason, {})` when the record cannot take its label, else `(None, outcome)`."""
        source, label = hit.source, hit.label
        if source.get("outcome"):
            return DUPLICATE, {}
        if self._counter(hit) is None:
            return UNKNOWN_MODEL, {}
        prediction = source.get("prediction") or {}
        arrived = float(label.arrived_at)
        outcome: dict[str, Any] = {"arrived_at": utc_timestamp(arrived)}
        predicted_at = parse_timestamp(source.get("@timestamp"))
        if predicted_at is not None:
            outcome["delay_s"] = round(arrived - predicted_at, 3)
        if self.classification:
            predicted = prediction.get("label")
            if predicted is None:
                return self._no_prediction(prediction), {}
            actual_class = classify_label(label.actual)[0]
            outcome.update(label=actual_class, correct=predicted == actual_class)
        else:
            predicted = prediction.get("value")
            if predicted is None:
                return self._no_prediction(prediction), {}
            actual_value = classify_number(label.actual)[0]
            assert actual_value is not None  # checked by label_reason
            error = float(predicted) - actual_value
            if not math.isfinite(error):  # overflows (1e308 - -1e308): JSON has no Inf
                return INF, {}
            outcome.update(value=actual_value, error=error, absolute_error=abs(error))
        outcome["writer"] = self._new_token()
        return None, outcome

    @staticmethod
    def _no_prediction(prediction: Mapping[str, Any]) -> str:
        return INVALID_PREDICTION if prediction.get("invalid") else MISSING_PREDICTION

    def _counter(self, hit: _Found) -> OutcomeCounter | None:
        """The counter of the record's model version (None: a version not counted here)."""
        return self.counters.get(str((hit.source.get("model") or {}).get("version")))

    def _count(self, hit: _Found, outcome: dict[str, Any]) -> None:
        source = hit.source
        prediction = source.get("prediction") or {}
        predicted = prediction.get("label" if self.classification else "value")
        counter = self._counter(hit)
        assert counter is not None  # _outcome wrote none for a version without a counter
        counter.observe_outcome(predicted, outcome["label" if self.classification else "value"],
                                predicted_at=parse_timestamp(source.get("@timestamp")),
                                arrived_at=float(hit.label.arrived_at))

    def _write(self, writes: Sequence[tuple[int, _Found, dict[str, Any]]]
               ) -> list[tuple[int, str]]:
        """One bulk request of conditional partial updates; `(position, verdict)` each.

        Documents answered with a retryable status are sent again (capped backoff); a 409 is
        read back, and counted when the outcome stored is the one this joiner wrote."""
        verdicts: list[tuple[int, str]] = []
        todo = list(writes)
        attempt = 0
        while todo:
            try:
                settled, todo = self._write_once(todo, attempt)
            except _Unavailable:
                break  # the rest stay es_unavailable
            verdicts += settled
            if todo:
                attempt += 1
                self._sleep(min(8.0, self.backoff_s * 2 ** (attempt - 1)))
        return verdicts

    def _write_once(self, todo: Sequence[tuple[int, _Found, dict[str, Any]]], attempt: int
                    ) -> tuple[list[tuple[int, str]], list[tuple[int, _Found, dict[str, Any]]]]:
        """One bulk request: the settled verdicts, and the writes to send again."""
        operations: list[dict[str, Any]] = []
        for _n, hit, outcome in todo:
            operations += [{"update": {"_index": hit.index, "_id": hit.doc_id,
                                       "if_seq_no": hit.seq_no,
                                       "if_primary_term": hit.primary_term}},
                           {"doc": {"outcome": outcome}}]
        answer = self._call(lambda: self.client.bulk(operations=operations))
        verdicts: list[tuple[int, str]] = []
        retry: list[tuple[int, _Found, dict[str, Any]]] = []
        conflicts: list[tuple[int, _Found, dict[str, Any]]] = []
        for (n, hit, outcome), item in zip(todo, answer["items"], strict=True):
            result = item["update"]
            status = result.get("status", 500)
            if status < 300:
                verdicts.append((n, COUNTED))
            elif status == 409:
                conflicts.append((n, hit, outcome))
            elif status in _RETRY_STATUSES and attempt < self.retries:
                retry.append((n, hit, outcome))
            else:
                log.warning("mlmon: outcome for %s not written to %s: HTTP %s %s",
                            hit.doc_id, hit.index, status, result.get("error"))
                verdicts.append((n, WRITE_ERROR))
        try:
            verdicts += self._conflicts(conflicts)
        except _Unavailable:
            pass  # the conflicts stay es_unavailable; the writes above are settled
        return verdicts, retry

    def _conflicts(self, conflicts: Sequence[tuple[int, _Found, dict[str, Any]]]
                   ) -> list[tuple[int, str]]:
        """409s, read back: our own write when the stored token is ours (the client resent a
        request whose answer was lost), else another writer's outcome: a duplicate."""
        if not conflicts:
            return []
        docs = [{"_index": hit.index, "_id": hit.doc_id} for _n, hit, _o in conflicts]
        answer = self._call(lambda: self.client.mget(docs=docs, source_includes=["outcome"],
                                                     realtime=True))
        out = []
        for (n, _hit, outcome), doc in zip(conflicts, answer["docs"], strict=True):
            stored = ((doc.get("_source") or {}).get("outcome") or {}).get("writer")
            out.append((n, COUNTED if stored == outcome["writer"] else DUPLICATE))
        return out

    def _call(self, request: Callable[[], Any]) -> Any:
        """`request()`, retried on a connection error or a retryable status (capped backoff),
        then `_Unavailable` (`last_error` says why); other errors (a 403) at once."""
        from elasticsearch import ApiError, TransportError

        attempt = 0
        while True:
            try:
                return request()
            except ApiError as exc:
                if exc.meta.status == 404 and "index_not_found" in str(exc.message):
                    raise
                if exc.meta.status not in _RETRY_STATUSES or attempt >= self.retries:
                    self.last_error = f"HTTP {exc.meta.status}: {exc.message}"
                    raise _Unavailable from exc
            except TransportError as exc:
                if attempt >= self.retries:
                    self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                    raise _Unavailable from exc
            attempt += 1
            self._sleep(min(8.0, self.backoff_s * 2 ** (attempt - 1)))
