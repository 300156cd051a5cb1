"""Errors shared by every part's command line.

A leaf module: it imports nothing from mlmon, so any part may raise `CliError` without
depending on the umbrella CLI (`mlmon.cli`), which imports every part.
"""


class CliError(Exception):
    """An error the user can act on; printed as one line without a traceback."""


def positive_seconds(text: str) -> float:
    """An argparse `type` for a duration such as a request timeout: a number > 0, or the
    parser's one-line error naming the option (`argument --timeout: must be ...`)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def cannot_listen(host: str, port: int, exc: OSError | OverflowError) -> CliError:
    """The one line for an address a server cannot bind: a port outside 0-65535 (bind raises
    OverflowError), a port in use, a host that does not resolve."""
    return CliError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}")


PASSWORD_MASK = "***"  # a password's place in a printed URL (its length does not show either)


def printable_url(url: str) -> str:
    """`url` as a message may print it: the password of its `user:password@` as `***`. Also
    for a URL that does not parse: everything between the user and the last `@` is hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:{PASSWORD_MASK}@{host}"
