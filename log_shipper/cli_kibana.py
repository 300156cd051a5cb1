"""`mlmon kibana-objects`: write a profile's Kibana saved objects, and optionally import them.

    mlmon kibana-objects --profile profile.json -o kibana/saved_objects.ndjson
    mlmon kibana-objects --profile profile.json -o objs.ndjson --import --kibana-url
    http://127.0.0.1:5601

The import posts the NDJSON to Kibana's `POST /api/saved_objects/_import?overwrite=true`, so
running it again replaces the objects (their ids are stable). Credentials come from the
environment: MLMON_KIBANA_USER / MLMON_KIBANA_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mlmon.errors import CliError
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import AssetError
from mlmon.log_shipper.kibana import DEFAULT_CONFIDENT, DEFAULT_SLOW_MS, saved_objects, to_ndjson


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="the model's reference profile JSON")
    parser.add_argument("-o", "--output", required=True,
                        help="where to write the NDJSON ('-' for stdout)")
    parser.add_argument("--slow-ms", type=float, default=DEFAULT_SLOW_MS,
                        help=f"latency of a 'slow request' search (default {DEFAULT_SLOW_MS:g})")
    parser.add_argument("--confident", type=float, default=DEFAULT_CONFIDENT,
                        help="score from which a wrong classification is 'confident but wrong' "
                             f"(default {DEFAULT_CONFIDENT:g})")
    parser.add_argument("--import", dest="do_import", action="store_true",
                        help="also import the objects into Kibana (overwrite)")
    parser.add_argument("--kibana-url", default=os.environ.get("MLMON_KIBANA_URL"),
                        help="Kibana URL for --import (env MLMON_KIBANA_URL)")
    parser.add_argument("--space", help="Kibana space id (default: the default space)")
    parser.add_argument("--timeout", type=float, default=30.0, help="import timeout, seconds")


def import_objects(kibana_url: str, ndjson: str, *, space: str | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
    """POST the NDJSON to Kibana's import API with overwrite; returns Kibana's JSON answer."""
    import requests

    base = kibana_url.rstrip("/") + (f"/s/{space}" if space else "")
    user = os.environ.get("MLMON_KIBANA_USER")
    auth = (user, os.environ.get("MLMON_KIBANA_PASSWORD", "")) if user else None
    try:
        response = requests.post(
            f"{base}/api/saved_objects/_import", params={"overwrite": "true"},
            headers={"kbn-xsrf": "mlmon"},  # Kibana refuses writes without this header
            files={"file": ("mlmon.ndjson", ndjson.encode("utf-8"), "application/ndjson")},
            auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        raise CliError(f"{kibana_url}: cannot reach Kibana ({type(exc).__name__})") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise CliError(f"{kibana_url}: import refused, HTTP {response.status_code}: "
                       f"{message or response.text[:200]}")
    if not answer.get("success", False):
        errors = answer.get("errors", [])
        first = errors[0] if errors else {}
        raise CliError(f"{kibana_url}: {len(errors)} object(s) not imported, first: "
                       f"{first.get('type')} {first.get('id')}: {first.get('error')}")
    return dict(answer)


def run(args: argparse.Namespace) -> int:
    profile = Profile.load(args.profile)
    try:
        ndjson = to_ndjson(saved_objects(profile, slow_ms=args.slow_ms, confident=args.confident))
    except AssetError as exc:
        raise CliError(str(exc)) from exc
    if args.output == "-":
        sys.stdout.write(ndjson)
    else:
        # No mkdir -p: a typo in the directory should fail, not create a tree somewhere.
        try:
            Path(args.output).write_text(ndjson, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        print(f"wrote {ndjson.count(chr(10))} saved objects to {args.output}", file=sys.stderr)
    if args.do_import:
        if not args.kibana_url:
            raise CliError("--import needs --kibana-url (or MLMON_KIBANA_URL)")
        answer = import_objects(args.kibana_url, ndjson, space=args.space, timeout=args.timeout)
        print(f"imported {answer.get('successCount', 0)} objects into {args.kibana_url}",
              file=sys.stderr)
    return 0
