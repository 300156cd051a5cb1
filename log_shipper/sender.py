"""Send serialized documents with one bulk request and classify every document's outcome.

Each document is written with `op_type: create` and `_id` = its `event.id`, so re-sending a
delivered document is answered 409 (already exists), which counts as delivered: no retry or
replay can duplicate a record. Outcomes:
- `ok`: 2xx, or 409 version conflict on create;
- `retry`: 429, 5xx, or the request failed as a whole (connection refused, timeout, 429/5xx,
  and 401/403/404, which mean a misconfigured cluster or credentials: the records must wait
  in the spool for an operator, not be thrown away);
- `rejected`: any other per-document error (mapping / parse errors): the content is at fault,
  re-sending cannot help; the caller dead-letters these with `reason`.
Only documents that got `retry` are re-sent, after `backoff_delay(attempt)`.

A rejection of the whole request (400 `action_request_validation_exception` for an `_id` over
512 bytes, 413 for a body over `http.max_content_length`) is not a verdict on each document: the
batch is split in halves, recursively, until the offender is alone; the rest is indexed and only
the offender is `rejected`, with Elasticsearch's own error. What can be checked before sending is:
a batch whose body would exceed `max_request_bytes` is sent as several requests, and a document
that alone exceeds it is rejected without a request.

The bulk request's server-side `timeout` (how long Elasticsearch waits for an unavailable
primary shard) is kept below the client's request timeout, so a missing shard gives per-document
503s for its documents only, instead of a client timeout that re-sends the whole batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Statuses of a whole bulk request that say "try again later" rather than "bad document".
RETRYABLE_REQUEST_STATUS = RETRYABLE_STATUS | {401, 403, 404}
# Only what the outcome needs: the answer to 500 documents shrinks from ~100 KB to ~10 KB of
# JSON, parsed in the worker's thread (which shares the GIL with the service's requests).
_RESPONSE_FIELDS = ["items.*.status", "items.*.error"]
# Elasticsearch's default `http.max_content_length`: a larger request is answered 413.
DEFAULT_MAX_REQUEST_BYTES = 100 << 20


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Capped exponential backoff: `min(maximum, initial * 2 ** (attempt - 1))`, attempt >= 1."""
    return min(maximum, initial * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class Document:
    """One serialized record and its stable id."""

    id: str
    source: bytes  # the JSON document, one line


@dataclass
class SendResult:
    """Per-document outcome of `BulkSender.send`."""

    ok: list[Document] = field(default_factory=list)
    retry: list[Document] = field(default_factory=list)
    rejected: list[tuple[Document, int, Any]] = field(default_factory=list)  # doc, status, reason
    retries: int = 0  # documents re-sent inside this call
    first_conflicts: int = 0  # 409s on the first attempt: the id existed before this send
    error: str | None = None  # why the last attempt failed as a whole, if it did


class BulkSender:
    """Bulk-indexes documents into one index or data stream.

    >>> sender = BulkSender(Elasticsearch("http://127.0.0.1:9200"), "mlmon-predictions-churn")
    >>> result = sender.send([Document(id, source_bytes), ...])
    """

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        *,
        max_retries: int = 2,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        request_timeout_s: float = 30.0,
        bulk_timeout_s: float | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_request_bytes < 1:
            raise ValueError("max_request_bytes must be >= 1")
        # The client's own retries would re-send whole requests and hide failures from us.
        self._client = client.options(max_retries=0, retry_on_status=(), retry_on_timeout=False,
                                      request_timeout=request_timeout_s)
        self.index = index
        # Elasticsearch's default is 1m, longer than our request timeout: answer within it.
        wait_ms = int(1000 * (bulk_timeout_s if bulk_timeout_s is not None
                              else request_timeout_s / 2))
        self._bulk_timeout = f"{max(wait_ms, 1)}ms"
        self.max_retries = max_retries
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_request_bytes = max_request_bytes
        self._action_prefix = (b'{"create":{"_index":' + json.dumps(index).encode()
                               + b',"_id":')
        self._sleep = sleep

    def send(self, docs: Sequence[Document]) -> SendResult:
        """Send `docs`; re-send only retryable failures, up to `max_retries` times."""
        result = SendResult()
        pending = list(docs)
        attempt = 0
        while pending:
            outcome = self._attempt(pending)
            if attempt == 0:
                result.first_conflicts = outcome.first_conflicts
            result.ok.extend(outcome.ok)
            result.rejected.extend(outcome.rejected)
            result.error = outcome.error
            pending = outcome.retry
            if not pending or attempt >= self.max_retries:
                break
            attempt += 1
            result.retries += len(pending)
            self._sleep(backoff_delay(attempt, self.initial_backoff_s, self.max_backoff_s))
        result.retry = pending
        return result

    def _action(self, doc: Document) -> bytes:
        """The two bulk lines of one document: action and source."""
        return self._action_prefix + json.dumps(doc.id).encode() + b"}}\n" + doc.source + b"\n"

    def _attempt(self, docs: Sequence[Document]) -> SendResult:
        """One pass over `docs`: requests bounded by `max_request_bytes`, whole-request
        rejections split until the offender is alone."""
        result = SendResult()
        batch: list[Document] = []
        lines: list[bytes] = []
        size = 0
        for doc in docs:
            action = self._action(doc)
            if len(action) > self.max_request_bytes:
                result.rejected.append((doc, 413, _too_large(len(action), self.max_request_bytes)))
                continue
            if size + len(action) > self.max_request_bytes:
                _merge(result, self._request(batch, lines))
                batch, lines, size = [], [], 0
            batch.append(doc)
            lines.append(action)
            size += len(action)
        if batch:
            _merge(result, self._request(batch, lines))
        return result

    def _request(self, docs: list[Document], lines: list[bytes]) -> SendResult:
        """One bulk request; on a whole-request rejection, each half again."""
        result = SendResult()
        try:
            # The NDJSON body is serialized once, here, and the client sends bytes as they are;
            # its annotation names only the list-of-dicts form.
            response = self._client.bulk(operations=b"".join(lines),  # type: ignore[arg-type]
                                         timeout=self._bulk_timeout,
                                         filter_path=_RESPONSE_FIELDS)
        except ApiError as exc:
            if exc.meta.status in RETRYABLE_REQUEST_STATUS:
                result.retry = list(docs)
                result.error = f"bulk request failed with HTTP {exc.meta.status}: {exc.message}"
            elif len(docs) > 1:
                half = len(docs) // 2
                _merge(result, self._request(docs[:half], lines[:half]))
                _merge(result, self._request(docs[half:], lines[half:]))
            else:
                result.rejected = [(docs[0], exc.meta.status, _request_error(exc, len(lines[0])))]
            return result
        except TransportError as exc:  # connection refused / reset, timeout
            result.retry = list(docs)
            result.error = f"bulk request failed: {type(exc).__name__}: {exc}"
            return result
        items = response.body.get("items", [])
        if len(items) != len(docs):  # never seen; be safe rather than mis-attribute results
            result.retry = list(docs)
            result.error = f"bulk answered {len(items)} items for {len(docs)} documents"
            return result
        for doc, item in zip(docs, items, strict=True):
            outcome = next(iter(item.values()))
            status = int(outcome.get("status", 0))
            if 200 <= status < 300 or status == 409:
                result.ok.append(doc)
                result.first_conflicts += status == 409
            elif status in RETRYABLE_STATUS:
                result.retry.append(doc)
            else:
                result.rejected.append((doc, status, outcome.get("error")))
        return result


def _merge(into: SendResult, part: SendResult) -> None:
    """Add one request's outcome to a pass's."""
    into.ok.extend(part.ok)
    into.retry.extend(part.retry)
    into.rejected.extend(part.rejected)
    into.first_conflicts += part.first_conflicts
    into.error = part.error or into.error


def _request_error(exc: ApiError, request_bytes: int) -> Any:
    """Elasticsearch's own reason for rejecting a whole request: the `error` object of its
    answer, or when the body is empty (a 413 is) the status line it sent."""
    body = exc.body
    if isinstance(body, dict) and body.get("error"):
        return body["error"]
    status = exc.meta.status
    try:
        phrase = HTTPStatus(status).phrase  # what Elasticsearch's status line says
    except ValueError:
        phrase = f"HTTP {status}"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return {"type": phrase.lower().replace(" ", "_"), "status": status,
            "reason": f"{phrase}: {text}" if text else phrase, "request_bytes": request_bytes}


def _too_large(nbytes: int, limit: int) -> dict[str, Any]:
    """The reason for a document that alone exceeds the request limit (never sent)."""
    return {"type": "request_too_large", "status": 413,
            "reason": f"the document's bulk lines are {nbytes} bytes, over the request limit "
                      f"of {limit} bytes (Elasticsearch's http.max_content_length)"}
