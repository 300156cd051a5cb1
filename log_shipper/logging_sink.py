"""The second sink: the same record as one JSON line through Python logging.

For those who ship through Logstash (TCP `json_lines` input, or a file input tailing the log) or
any log collector reading stdout. Formatting uses python-json-logger; the line holds exactly the
record's fields (sorted keys), so Logstash indexes the same field names as the direct path.

The caller's thread only puts the record (a dict, or a `PendingRecord` not yet built) on a
bounded queue; a listener thread builds, redacts, formats and writes it, so a slow disk or a
down Logstash never delays a prediction. What is not written is counted by reason (`drops`:
queue full, record failed to build, format or write failed). Every sink has its own queue,
listener and handler: sinks never see each other's records.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import queue
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

from mlmon.log_shipper.redact import Redactor

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # the type SocketHandler.send declares


class RecordFormatter(JsonFormatter):
    """Formats a log call whose message is a record dict as that record, redacted."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__("", json_ensure_ascii=False, json_serializer=functools.partial(
            json.dumps, sort_keys=True, separators=(",", ":")))
        self._redactor = redactor

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        if log_data.get("message") == "":
            del log_data["message"]  # the record is the message; no empty field beside it
        return self._redactor(log_data) if self._redactor else log_data


class TcpJsonLinesHandler(logging.handlers.SocketHandler):
    """Sends each formatted record as one newline-terminated line (Logstash `json_lines`).

    Reconnection with backoff comes from `SocketHandler`; a line that cannot be sent is lost
    (it is a best-effort side channel: the direct Elasticsearch path is the one with a spool),
    but counted: `send` raises where `SocketHandler.send` returns quietly, so `emit` reports the
    line through `handleError` (the sink's `write_error`).
    """

    def makePickle(self, record: logging.LogRecord) -> bytes:  # noqa: N802 - stdlib name
        return self.format(record).encode("utf-8") + b"\n"

    def send(self, s: ReadableBuffer) -> None:
        if self.sock is None:
            self.createSocket()  # no-op during the reconnect backoff
        if self.sock is None:
            raise OSError(f"not connected to {self.host}:{self.port}")
        try:
            self.sock.sendall(s)
        except OSError:
            self.sock.close()
            self.sock = None  # reconnect on a later line
            raise


SINK_DROP_REASONS = ("queue_full", "build_error", "write_error")


class _RecordListener(logging.handlers.QueueListener):
    """Takes records (dicts or `PendingRecord`s) off the queue and logs each, in its thread.

    The request thread only enqueues: building the record, the `LogRecord`, formatting and
    writing all happen here. A record that fails to build is counted, never raised."""

    # The base class stops at `record is self._sentinel`; CPython's value, declared here because
    # typeshed leaves the private name out and enqueue_sentinel below puts it.
    _sentinel: Any = None

    def __init__(self, q: queue.Queue[Any], handler: logging.Handler, name: str,
                 drops: dict[str, int]) -> None:
        super().__init__(q, handler)
        self._queue = q  # typed as a Queue: the base class's `queue` is only get/put_nowait
        self._name = name
        self._drops = drops

    def enqueue_sentinel(self) -> None:
        # The base class's put_nowait raises on a full queue, so a close() at a busy moment
        # would fail: wait for the listener (which is draining it) to make room instead.
        self._queue.put(self._sentinel)

    def handle(self, item: Any) -> None:
        try:
            message = item if type(item) is dict else dict(item)
        except Exception:  # noqa: BLE001 - one bad record must not stop the listener
            self._drops["build_error"] += 1
            return
        record = logging.LogRecord(self._name, logging.INFO, __file__, 0, message, None, None)
        super().handle(record)


class JsonLinesSink:
    """Writes records as JSON lines to stdout, a file, or a TCP endpoint.

    >>> sink = JsonLinesSink.tcp("127.0.0.1", 5044, redactor=redactor)
    >>> sink.emit(record)
    >>> sink.close()
    """

    def __init__(self, handler: logging.Handler, *, redactor: Redactor | None = None,
                 queue_size: int = 10_000, logger_name: str = "mlmon.records") -> None:
        self._formatter = RecordFormatter(redactor)
        handler.setFormatter(self._formatter)
        # A failed format or write reaches handleError: count it instead of printing a traceback.
        handler.handleError = self._write_failed  # type: ignore[method-assign]
        self._handler = handler
        self.drops: dict[str, int] = dict.fromkeys(SINK_DROP_REASONS, 0)
        # Each sink has its own queue, listener and handler (no named, process-global logger):
        # two sinks never see each other's records, a redacting one's included.
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._listener = _RecordListener(self._queue, handler, logger_name, self.drops)
        self._closed = False
        self._listener.start()

    def _write_failed(self, record: logging.LogRecord) -> None:
        self.drops["write_error"] += 1

    @classmethod
    def stdout(cls, **options: Any) -> JsonLinesSink:
        return cls(logging.StreamHandler(sys.stdout), **options)

    @classmethod
    def file(cls, path: str, **options: Any) -> JsonLinesSink:
        return cls(logging.FileHandler(path, encoding="utf-8"), **options)

    @classmethod
    def tcp(cls, host: str, port: int, **options: Any) -> JsonLinesSink:
        return cls(TcpJsonLinesHandler(host, port), **options)

    def redact_with_if_unset(self, redactor: Redactor | None) -> None:
        """Use `redactor` unless the sink was built with its own (the facade's rules apply to
        every path a record leaves by, not only the Elasticsearch one)."""
        if self._formatter._redactor is None:
            self._formatter._redactor = redactor

    @property
    def dropped(self) -> int:
        """Records not written, for any reason (`drops` has them by reason)."""
        return sum(self.drops.values())

    def emit(self, record: Mapping[str, Any]) -> None:
        """Queue one record (a dict or a `PendingRecord`) for writing; never blocks or raises."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:  # the only error a put_nowait raises
            self.drops["queue_full"] += 1

    def close(self) -> None:
        """Write what is queued, then close the handler."""
        if self._closed:
            return
        self._closed = True
        self._listener.stop()
        self._handler.close()
