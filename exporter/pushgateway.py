"""The one Pushgateway client: every request mlmon makes to a Pushgateway goes through it.

    gateway = Pushgateway("http://127.0.0.1:9091", timeout_s=10)
    gateway.push("mlmon_batch", registry, {"batch_job": "nightly"}, replace=True)   # PUT
    gateway.push("retrain", registry, {"model": "churn"}, replace=False)            # POST

Batch runs (mlmon.batch.run), training reports (mlmon.exporter.training) and `mlmon outcomes`
(mlmon.outcomes.push) push through it, and the CLIs ask it whether the Pushgateway is ready
before their work starts (`check_reachable`).

Retries: a request that gets no answer (refused, reset, timed out after `timeout_s`) or a 5xx
answer is sent again, up to `attempts` requests in all, `backoff_s` apart and twice as long each
time (at most `max_backoff_s`): a Pushgateway restarting, or behind a proxy that lost it for a
moment, takes the push a second later. Sending a push again is safe: a PUT replaces the whole
group and a POST the families it carries, so a push that arrived twice leaves what one would.
A TLS error is not retried (https to an http port, a certificate not trusted): the handshake
would fail again. Nor is a 4xx: the Pushgateway understood the request and refused it (a URL
whose path is wrong, series whose type conflicts with what another group holds), so the same
request would be refused again; the error says so. The longest a request can take is
`attempts * timeout_s` plus the backoffs.

Whatever fails is one `PushError`, whose message is one line naming the URL.

Basic auth: a URL with `user:password@` (as Prometheus's own clients accept it; percent-encode
`@`, `:` or `/` in either) sends them in an Authorization header; every message and log line
names the URL with the password as `***` (`http://user:***@pgw:9091`).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from mlmon.errors import PASSWORD_MASK, CliError, printable_url

PUSHGATEWAY_ENV = "MLMON_PUSHGATEWAY_URL"  # every CLI's --pushgateway default
TIMEOUT_S = 10.0  # seconds per request
ATTEMPTS = 3  # requests in all, the first included
BACKOFF_S = 0.5  # before the first retry; doubled before each next one
MAX_BACKOFF_S = 5.0
# The format generate_latest writes. Not imported: newer prometheus_client releases name it
# CONTENT_TYPE_PLAIN_0_0_4 and made CONTENT_TYPE_LATEST 1.0.0; older ones lack the first name.
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


log = logging.getLogger(__name__)


class PushError(Exception):
    """A request the Pushgateway did not take, after the retries; the message is one line
    naming the URL. `status`: the HTTP status of the last answer (None: no answer);
    `attempts`: the requests made."""

    def __init__(self, message: str, *, url: str, status: int | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.url, self.status, self.attempts = url, status, attempts


class Pushgateway:
    """A Pushgateway at `url` (`host:port` means http://host:port).

    >>> gateway = Pushgateway("127.0.0.1:9091", attempts=3, sleep=time.sleep)
    >>> gateway.push("mlmon_outcomes", registry, {"instance": "run-1"}, replace=True)
    1

    `sleep` is a parameter so that tests of the backoff need not wait. A `url` that is not
    one raises ValueError here, before any work.
    """

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS,
                 backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._base, self.url, auth = _checked_url(url)
        self._headers = {"Authorization": auth} if auth else {}
        self.timeout_s, self.attempts = timeout_s, attempts
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.sleep = sleep

    def push(self, job: str, registry: Any, grouping_key: Mapping[str, str] | None = None, *,
             replace: bool) -> int:
        """Send `registry`'s series (anything with `collect()`) to the group of `job` and
        `grouping_key`; the requests it took.

        replace=True: PUT, the group holds these series alone afterwards (prometheus_client's
        push_to_gateway). replace=False: POST, only the families sent are replaced, the group's
        others stay (pushadd_to_gateway).
        """
        from prometheus_client import generate_latest

        group = _describe_group(job, grouping_key)
        try:
            body = generate_latest(registry)
        except Exception as exc:  # noqa: BLE001 - a collector's failure: nothing was sent
            raise PushError(f"cannot push {group} to the Pushgateway {self.url}: its series "
                            f"could not be rendered ({_one_line(exc)})", url=self.url,
                            attempts=0) from exc
        _, attempts = self._request("PUT" if replace else "POST", _group_path(job, grouping_key),
                                    f"push {group}", body, {"Content-Type": _TEXT_FORMAT})
        return attempts

    def delete(self, job: str, grouping_key: Mapping[str, str] | None = None) -> None:
        """Delete the group of `job` and `grouping_key` (every series in it)."""
        self._request("DELETE", _group_path(job, grouping_key),
                      f"delete {_describe_group(job, grouping_key)}")

    def groups(self) -> list[dict[str, Any]]:
        """Every group the Pushgateway holds, as its /api/v1/metrics lists them."""
        answer, _ = self._request("GET", "/api/v1/metrics", "list its groups")
        try:
            return list(json.loads(answer)["data"])
        except (ValueError, KeyError, TypeError) as exc:
            text = _one_line(answer[:200].decode(errors="replace"))
            raise PushError(f"the Pushgateway {self.url} answered /api/v1/metrics with no "
                            f"list of groups: {text}", url=self.url) from exc

    def ready(self) -> None:
        """Raise PushError unless the Pushgateway answers its /-/ready."""
        self._request("GET", "/-/ready", None)

    def _request(self, method: str, path: str, action: str | None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[bytes, int]:
        """The answer's body and the requests it took; retried as the module says.
        `action` ("push job=... model=..."): what the error line says was not done."""
        request = urllib.request.Request(self._base + path, data=body, method=method,
                                         headers={**self._headers, **(headers or {})})
        attempt = 0
        error: Exception
        while True:
            attempt += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                    return bytes(answer.read()), attempt
            except urllib.error.HTTPError as exc:
                status, detail = exc.code, f"HTTP {exc.code}{_body(exc)}"
                if status < 500:  # understood and refused: the same request would be too
                    what = f"to {action}" if action else "its readiness check"
                    raise PushError(
                        f"the Pushgateway {self.url} refused {what}: {detail} (not retried: "
                        f"a {status} means the URL or what was sent is wrong, not that the "
                        "Pushgateway is down)", url=self.url, status=status,
                        attempts=attempt) from exc
                what = f"failed to {action}" if action else "is not ready"
                message, error = f"the Pushgateway {self.url} {what}: {detail}", exc
            except (ValueError, http.client.InvalidURL) as exc:  # a URL urllib cannot use
                raise PushError(f"{self.url!r} is not a Pushgateway URL ({_one_line(exc)})",
                                url=self.url, attempts=attempt) from exc
            except (OSError, http.client.HTTPException) as exc:  # no answer, or half of one
                to = f" to {action}" if action else ""
                tls = getattr(exc, "reason", exc)  # URLError wraps the socket's error
                if isinstance(tls, ssl.SSLError):  # the same handshake would fail again
                    raise PushError(
                        f"TLS error with the Pushgateway {self.url}{to}: {_one_line(tls)} (not "
                        "retried: an https URL to an http port, or a certificate this host "
                        "does not trust)", url=self.url, attempts=attempt) from exc
                status, error = None, exc
                message = f"cannot reach the Pushgateway {self.url}{to}: {self._reason(exc)}"
            if attempt >= self.attempts:
                tries = f" ({attempt} attempts)" if attempt > 1 else ""
                raise PushError(message + tries, url=self.url, status=status,
                                attempts=attempt) from error
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
            log.info("%s (attempt %d of %d); retrying in %.1f s", message, attempt,
                     self.attempts, delay)
            self.sleep(delay)

    def _reason(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc  # URLError wraps the socket's error
        if isinstance(reason, TimeoutError):
            return f"timed out after {self.timeout_s:g} s"
        return _one_line(reason)


def _group_path(job: str, grouping_key: Mapping[str, str] | None = None) -> str:
    """`/metrics/job@base64/<job>/<label>@base64/<value>...`: any value is safe in the URL."""
    parts = [f"/metrics/job@base64/{_b64(job)}"]
    parts += [f"{k}@base64/{_b64(str(v))}" for k, v in sorted((grouping_key or {}).items())]
    return "/".join(parts)


def _describe_group(job: str, grouping_key: Mapping[str, str] | None = None) -> str:
    """`job=mlmon_batch batch_job=nightly ...`: the group, as an error message names it."""
    return " ".join(f"{k}={v}" for k, v in [("job", job), *sorted((grouping_key or {}).items())])


def check_reachable(url: str, timeout: float) -> None:
    """GET the Pushgateway's /-/ready: a wrong URL fails before the job's work, as one line.
    (`timeout` is the caller's to check: an argument error, not the URL's.)"""
    try:
        _checked_url(url)
    except ValueError as exc:
        raise CliError(f"--pushgateway {exc}") from exc
    try:
        Pushgateway(url, timeout_s=timeout).ready()
    except PushError as exc:
        raise CliError(str(exc)) from exc


def _checked_url(url: str) -> tuple[str, str, str | None]:
    """(the URL requests go to, the URL as messages print it, the Authorization header or
    None): `url` without a trailing slash, http:// added to a bare host:port, its
    `user:password@` taken out into basic auth; ValueError if it cannot be a Pushgateway's."""
    text = url.strip().rstrip("/")
    full = text if "://" in text else "http://" + text
    parts = None
    try:  # urlsplit raises for a bad IPv6 host, .port for a port that is not a number
        parts = urllib.parse.urlsplit(full)
        usable = (parts.scheme in ("http", "https") and bool(parts.hostname)
                  and (parts.port is None or parts.port > 0))
    except ValueError:
        usable = False
    if parts is None or not (usable and full.isprintable() and " " not in full):
        raise ValueError(f"{printable_url(url)!r}: not a Pushgateway URL "
                         "(expected http://host:port)")
    userinfo, _, host = parts.netloc.rpartition("@")
    base = urllib.parse.urlunsplit(parts._replace(netloc=host))
    if not userinfo:
        return base, base, None
    user, colon, password = userinfo.partition(":")
    masked = f"{user}{colon and ':' + PASSWORD_MASK}@{host}"
    shown = urllib.parse.urlunsplit(parts._replace(netloc=masked))
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return base, shown, "Basic " + base64.b64encode(token.encode()).decode()


def _b64(value: str) -> str:
    # The Pushgateway reads an empty value as `=` (its documented special case).
    return base64.urlsafe_b64encode(value.encode()).decode() or "="


def _body(exc: urllib.error.HTTPError) -> str:
    try:
        text = " ".join(exc.read().decode(errors="replace").split())[:200]
    except (OSError, http.client.HTTPException):
        return ""
    return f": {text}" if text else ""


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
