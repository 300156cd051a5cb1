"""The Pushgateway as the CLIs that push to it see it: is it there, before the job's work starts."""

from __future__ import annotations

import urllib.request

from mlmon.errors import CliError


def check_reachable(url: str, timeout: float) -> None:
    """GET the Pushgateway's /-/ready: a wrong URL fails before the job's work, as one line."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout):  # noqa: S310
            pass
    except ValueError as exc:  # not a URL
        raise CliError(f"--pushgateway {url!r}: {exc}") from exc
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CliError(f"cannot reach the Pushgateway {url}: {reason}") from exc
