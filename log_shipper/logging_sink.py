"""The second sink: the same record as one JSON line through Python logging.

For those who ship through Logstash (TCP `json_lines` input, or a file input tailing the log) or
any log collector reading stdout. Formatting uses python-json-logger; the line holds exactly the
record's fields (sorted keys), so Logstash indexes the same field names as the direct path.

The caller's thread only puts the record on a bounded queue (`QueueHandler`); a listener thread
redacts, formats and writes it, so a slow disk or a down Logstash never delays a prediction.
A full queue drops the line and counts it (`dropped`). Every sink has its own logger, queue and
listener: sinks never see each other's records.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import queue
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from log_shipper.redact import Redactor


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
    (it is a best-effort side channel: the direct Elasticsearch path is the one with a spool).
    """

    def makePickle(self, record: logging.LogRecord) -> bytes:  # noqa: N802 - stdlib name
        return self.format(record).encode("utf-8") + b"\n"


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that never blocks, never prints a traceback, and formats nothing itself."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        super().__init__(q)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatting happens in the listener thread

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


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
        self._handler = handler
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._front = _DroppingQueueHandler(self._queue)
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        # A private logger, not `logging.getLogger(name)`: a named logger is process-global, so
        # two sinks sharing it would each receive the other's records (a record meant for a
        # redacting sink would reach a sink without a redactor, raw). This one is registered
        # nowhere, has no parent and only this sink's handler.
        self._logger = logging.Logger(logger_name, logging.INFO)
        self._logger.propagate = False  # records are data, not the application's log
        self._logger.addHandler(self._front)
        self._listener.start()

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
        """Lines dropped because the queue was full."""
        return self._front.dropped

    def emit(self, record: dict[str, Any]) -> None:
        """Queue one record for writing; never blocks, never raises."""
        try:
            self._logger.info(record)
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            self._front.dropped += 1

    def close(self) -> None:
        """Write what is queued, then close the handler."""
        self._logger.removeHandler(self._front)
        self._listener.stop()
        self._handler.close()
