"""A real TCP proxy in front of a real server, adding faults the server cannot produce on demand.

The proxy is the fault, the server stays real: bytes pass through unchanged in `pass` mode.
Modes (switchable while connections are open):
- `pass`: forward both ways;
- `hang`: accept connections and read nothing more; forward nothing (a cluster that stopped
  answering, a black-holed route). Connections already open stall too;
- `slow`: forward, sleeping `delay_s` before every chunk of each direction;
- `reset`: close every connection, new and open, with a TCP RST (SO_LINGER 0);
- `garbage`: answer every new connection's request with HTTP 200 and a body that is not JSON
  (a misconfigured load balancer's error page), without reaching the server.

    >>> with FaultyProxy(upstream_port=9200) as proxy:   # doctest: +SKIP
    ...     url = proxy.url; proxy.mode = "hang"; ...; proxy.mode = "pass"
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from types import TracebackType

MODES = ("pass", "hang", "slow", "reset", "garbage")
GARBAGE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"
           b"Connection: close\r\n\r\n<html>not json</html>\n")
_POLL_S = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultyProxy:
    """Listens on a free 127.0.0.1 port and forwards to `127.0.0.1:upstream_port`."""

    def __init__(self, upstream_port: int, *, delay_s: float = 0.2) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self._mode = "pass"
        self.connections = 0  # accepted so far (tests check the client did reconnect)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self._mode = mode
        if mode == "reset":
            with self._lock:
                sockets, self._open = self._open, []
            for sock in sockets:
                _reset(sock)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            _reset(sock)
        self._thread.join(5)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self._mode == "reset":
                _reset(client)
                continue
            if self._mode == "garbage":
                threading.Thread(target=self._garbage, args=(client,), daemon=True).start()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _garbage(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client:
            client.settimeout(5)
            client.recv(65536)  # the request (its start is enough to answer)
            client.sendall(GARBAGE)

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._open += [client, upstream]
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                if self._mode == "hang":
                    time.sleep(_POLL_S)  # read nothing, send nothing: the peer waits
                    continue
                try:
                    ready, _, _ = select.select(list(peers), [], [], _POLL_S)
                except (OSError, ValueError):
                    return  # closed under us (reset mode)
                for sock in ready:
                    if self._mode == "hang":
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self._mode == "slow":
                        time.sleep(self.delay_s)
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open = [s for s in self._open if s not in (client, upstream)]
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
