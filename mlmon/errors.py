"""Errors shared by every part's command line.

A leaf module: it imports nothing from mlmon, so any part may raise `CliError` without
depending on the umbrella CLI (`mlmon.cli`), which imports every part.
"""


class CliError(Exception):
    """An error the user can act on; printed as one line without a traceback."""


def cannot_listen(host: str, port: int, exc: OSError | OverflowError) -> CliError:
    """The one line for an address a server cannot bind: a port outside 0-65535 (bind raises
    OverflowError), a port in use, a host that does not resolve."""
    return CliError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}")
