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
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Statuses of a whole bulk request that say "try again later" rather than "bad document".
RETRYABLE_REQUEST_STATUS = RETRYABLE_STATUS | {401, 403, 404}


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Capped exponential backoff: `min(maximum, initial * 2 ** (attempt - 1))`, attempt >= 1."""
    return min(maximum, initial * 2 ** (attempt - 1))


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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
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

    def _body(self, docs: Sequence[Document]) -> bytes:
        parts: list[bytes] = []
        prefix = b'{"create":{"_index":' + json.dumps(self.index).encode() + b',"_id":'
        for doc in docs:
            parts.append(prefix + json.dumps(doc.id).encode() + b"}}\n")
            parts.append(doc.source + b"\n")
        return b"".join(parts)

    def _attempt(self, docs: Sequence[Document]) -> SendResult:
        result = SendResult()
        try:
            response = self._client.bulk(operations=self._body(docs), timeout=self._bulk_timeout)
        except ApiError as exc:
            if exc.meta.status in RETRYABLE_REQUEST_STATUS:
                result.retry = list(docs)
                result.error = f"bulk request failed with HTTP {exc.meta.status}: {exc.message}"
            else:
                reason = {"type": "bulk_request_rejected", "status": exc.meta.status,
                          "reason": str(exc.body or exc.message)}
                result.rejected = [(doc, exc.meta.status, reason) for doc in docs]
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
