"""`mlmon es-setup`: install a model's index template (and so its data stream) idempotently.

    mlmon es-setup --profile profile.json --es-url http://127.0.0.1:9200
    mlmon es-setup --profile profile.json --print      # the template JSON, no server needed

Credentials come from the environment (MLMON_ES_USER / MLMON_ES_PASSWORD, or MLMON_ES_API_KEY)
so that they never show in `ps` or shell history.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mlmon.errors import CliError, printable_url
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import DEFAULT_RETENTION, AssetError, index_template, install


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="the model's reference profile JSON")
    parser.add_argument("--es-url", default=os.environ.get("MLMON_ES_URL"),
                        help="Elasticsearch URL (env MLMON_ES_URL)")
    parser.add_argument("--user", default=os.environ.get("MLMON_ES_USER"),
                        help="basic-auth user (env MLMON_ES_USER); password from MLMON_ES_PASSWORD")
    parser.add_argument("--ca-certs", help="CA bundle for an https URL")
    parser.add_argument("--retention", default=DEFAULT_RETENTION,
                        help="data stream lifecycle retention, e.g. 30d; 'none' keeps forever "
                             f"(default {DEFAULT_RETENTION})")
    parser.add_argument("--timeout", type=float, default=30.0, help="request timeout, seconds")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the index template JSON and exit; contacts no server")


def connect(url: str, *, user: str | None = None, ca_certs: str | None = None,
            timeout: float = 30.0) -> Any:
    """An `Elasticsearch` client with credentials from the environment; CliError naming `url`
    (its password hidden) when it is not one."""
    from elasticsearch import Elasticsearch

    options: dict[str, Any] = {"request_timeout": timeout, "max_retries": 2,
                               "retry_on_timeout": True}
    api_key = os.environ.get("MLMON_ES_API_KEY")
    if api_key:
        options["api_key"] = api_key
    elif user:
        options["basic_auth"] = (user, os.environ.get("MLMON_ES_PASSWORD", ""))
    if ca_certs:
        options["ca_certs"] = ca_certs
    try:
        return Elasticsearch(url, **options)
    except ValueError as exc:  # the client's message repeats the URL, password included
        raise CliError(f"--es-url {printable_url(url)!r}: not an Elasticsearch URL (expected "
                       "http(s)://host:port)") from exc


def run(args: argparse.Namespace) -> int:
    profile = Profile.load(args.profile)
    retention = None if str(args.retention).lower() == "none" else args.retention
    if args.print_only:
        return _print_template(profile, retention)
    try:
        if not args.es_url:
            raise CliError("no Elasticsearch URL: pass --es-url or set MLMON_ES_URL")
        client = connect(args.es_url, user=args.user, ca_certs=args.ca_certs,
                         timeout=args.timeout)
        report = install(client, profile, retention=retention)
    except AssetError as exc:
        raise CliError(str(exc)) from exc
    except CliError:
        raise
    except Exception as exc:  # noqa: BLE001 - any client error becomes one readable line
        raise CliError(f"{args.es_url}: {_describe(exc, args.timeout)}") from exc
    print(report.summary())
    return 0


def _print_template(profile: Profile, retention: str | None) -> int:
    """`--print`: outside `run`'s catch-all for client errors, so that a closed stdout
    (`| head`) reaches the CLI's broken-pipe handling instead of becoming a client error."""
    try:
        template = index_template(profile, retention=retention)
    except AssetError as exc:
        raise CliError(str(exc)) from exc
    json.dump(template, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _describe(exc: Exception, timeout: float) -> str:
    """One line from an elasticsearch client error (status and reason, not the repr soup)."""
    from elasticsearch import ApiError, ConnectionTimeout
    from elasticsearch import ConnectionError as EsConnectionError

    if isinstance(exc, ApiError):
        info = exc.info if isinstance(exc.info, dict) else {}
        error = info.get("error", {})
        reason = error.get("reason") if isinstance(error, dict) else error
        if reason:
            return f"HTTP {exc.meta.status}: {reason}"
        # No Elasticsearch error body: an HTML page, a proxy, another service on that port.
        return (f"HTTP {exc.meta.status} from a server that does not look like Elasticsearch "
                "(no Elasticsearch error in the answer); is --es-url right?")
    if isinstance(exc, ConnectionTimeout):
        return f"no answer within {timeout:g} s (read timeout)"
    if isinstance(exc, EsConnectionError):
        return "cannot connect (is Elasticsearch running?)"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
