"""`mlmon sink`: receive Alertmanager webhooks, print one line per alert, record the payloads.

- `POST /<anything>`: an Alertmanager webhook payload (JSON). One line per alert on stdout, the
  payload appended as one JSON line to `--out` (when given), and kept in memory.
- `GET /notifications`: every payload received so far, as a JSON list (for tests and demos).
- `GET /healthz`: `ok`.

>>> sink = Sink("127.0.0.1", 0).start()   # port 0: a free port, see sink.url
>>> sink.notifications()                  # [] until Alertmanager posts
>>> sink.stop()
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

# A webhook payload above this is not from Alertmanager (its max_alerts keeps payloads small).
MAX_BODY_BYTES = 10 * 1024 * 1024


def alert_line(payload: dict[str, Any], alert: dict[str, Any]) -> str:
    """One human line for one alert of a payload."""
    labels = alert.get("labels") or {}
    status = str(alert.get("status") or payload.get("status") or "?").upper()
    where = " ".join(f"{k}={labels[k]}" for k in sorted(labels) if k != "alertname")
    summary = (alert.get("annotations") or {}).get("summary", "")
    return f"[{status}] {labels.get('alertname', '?')} {where} | {summary}".rstrip(" |")


class Sink:
    """An HTTP server recording webhook payloads; thread-safe, stoppable."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9095, out: str | None = None,
                 stream: TextIO | None = None) -> None:
        self._lock = threading.Lock()
        self._payloads: list[Any] = []
        self._out = out
        self._stream = stream if stream is not None else sys.stdout
        self.rejected = 0  # bodies that were not JSON objects
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        # typeshed allows a bytes host (AF_UNIX addresses); an AF_INET server's is a str
        return f"http://{host}:{port}"  # type: ignore[str-bytes-safe]

    def record(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._payloads.append(payload)
            if self._out:
                with open(self._out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(payload, sort_keys=True) + "\n")
            for alert in payload.get("alerts") or []:
                print(alert_line(payload, alert), file=self._stream, flush=True)

    def notifications(self) -> list[Any]:
        with self._lock:
            return list(self._payloads)

    def start(self) -> Sink:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mlmon-sink",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                self._reply(200, b"ok\n", "text/plain")
            elif self.path == "/notifications":
                self._reply(200, json.dumps(sink.notifications()).encode())
            else:
                self._reply(404, b'{"error": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                sink.rejected += 1
                self._reply(413, b'{"error": "payload too large"}')
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                sink.rejected += 1
                self._reply(400, b'{"error": "expected a JSON object"}')
                return
            sink.record(payload)
            self._reply(200, b'{"status": "ok"}')

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per alert is the output; access logs would drown it

    return Handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9095, help="port (0 = any free port)")
    parser.add_argument("--out", default=None,
                        help="append each payload as one JSON line to this file")


def run(args: argparse.Namespace) -> int:
    from mlmon.errors import CliError, cannot_listen

    try:
        sink = Sink(args.host, args.port, args.out)
    except (OSError, OverflowError) as exc:
        raise cannot_listen(args.host, args.port, exc) from exc
    if args.out:
        try:
            open(args.out, "a", encoding="utf-8").close()
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    # SIGTERM (docker stop) ends the loop like Ctrl-C, with exit status 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=sink.stop).start())
    print(f"mlmon sink listening on {sink.url}", flush=True)
    try:
        sink.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
