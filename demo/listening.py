"""A uvicorn server that says where it listens, once its socket is bound.

The demo runs uvicorn with log_level="warning" so that its output stays about alerts and
errors; that also silences uvicorn's own "running on" line, so this prints one of its own.
"""

from __future__ import annotations

import socket

import uvicorn

from mlmon.errors import cannot_listen


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, for `AnnouncingServer.run(sockets=[...])`; raises CliError
    (one line) when it cannot be bound. uvicorn binds inside its event loop, where a port out
    of range becomes a traceback and a port in use a log line and exit status 1."""
    # uvicorn's own choice of family; not socket.create_server, whose errors repeat the address
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        raise cannot_listen(host, port, exc) from exc
    return sock


class AnnouncingServer(uvicorn.Server):
    """`uvicorn.Server` that prints `<name>: listening on http://host:port ...` after binding."""

    def __init__(self, config: uvicorn.Config, name: str, details: str) -> None:
        super().__init__(config)
        self._name, self._details = name, details

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # bound; uvicorn exits on its own when it cannot bind
            # The bound address, not the configured one: right for `--port 0` too.
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"{self._name}: listening on http://{host}:{port} {self._details}", flush=True)
