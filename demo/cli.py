"""`mlmon demo`: train the demo model, then serve it with the exporter and the log shipper.

Without `--es-url` (or MLMON_ES_URL) records are not shipped; metrics are always served.
A challenger (demo/model.py `train_challenger`, version 2) runs in shadow mode on every request
unless `--no-challenger` is given (docs/challenger.md).
`--model risk` serves the demo classifier instead (demo/model.py `train_risk`, model
`diabetes-risk`: "low" or "high" progression risk with probabilities, a calibrated profile, so
the stack shows estimated performance before any label; its challenger is
`train_risk_challenger`).
`--write-profile PATH` writes the reference profile and exits (the setup step uses it for the
Elasticsearch template and the Kibana objects).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from mlmon.demo.model import DemoClassifier, DemoModel
    from mlmon.exporter.profile import Profile

# --model: the regression (model `diabetes`, the default) or the classifier (`diabetes-risk`).
PROGRESSION, RISK = "progression", "risk"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    parser.add_argument("--es-url", default=env("MLMON_ES_URL"),
                        help="Elasticsearch URL to ship records to (env MLMON_ES_URL)")
    parser.add_argument("--es-user", default=env("MLMON_ES_USER"), help="env MLMON_ES_USER")
    parser.add_argument("--es-password", default=env("MLMON_ES_PASSWORD"),
                        help="env MLMON_ES_PASSWORD (prefer the environment to the command line)")
    parser.add_argument("--spool-dir", default=env("MLMON_SPOOL_DIR"),
                        help="disk spool for records Elasticsearch has not taken yet")
    parser.add_argument("--environment", default="demo", help="service.environment in records")
    parser.add_argument("--no-challenger", dest="challenger", action="store_false",
                        help="serve the model alone, without its challenger in shadow mode")
    parser.add_argument("--model", choices=(PROGRESSION, RISK), default=PROGRESSION,
                        help="progression: the regression demo (model diabetes); risk: the "
                             "binary classifier with scores (model diabetes-risk), whose "
                             "accuracy is estimated before labels (default %(default)s)")
    parser.add_argument("--write-profile", metavar="PATH", type=Path,
                        help="write the reference profile to PATH and exit")


def es_url_with_credentials(url: str, user: str | None, password: str | None) -> str:
    """Credentials in the URL, which the Elasticsearch client turns into basic auth."""
    if not user:
        return url
    parts = urlsplit(url)
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc.rsplit('@', 1)[-1]}"))


def _champion(kind: str) -> tuple[DemoModel | DemoClassifier, Profile]:
    from mlmon.demo import model as demo

    if kind == RISK:
        classifier = demo.train_risk()
        return classifier, demo.build_risk_profile(classifier)
    regression = demo.train()
    return regression, demo.build_profile(regression)


def run(args: argparse.Namespace) -> int:
    from mlmon.demo.model import (
        build_profile,
        build_risk_profile,
        train_challenger,
        train_risk_challenger,
    )
    from mlmon.errors import CliError, printable_url

    model, profile = _champion(args.model)
    if args.write_profile is not None:
        profile.dump(args.write_profile)
        return 0
    if args.es_url and not args.spool_dir:
        raise CliError("shipping to Elasticsearch needs --spool-dir (or MLMON_SPOOL_DIR)")

    import uvicorn
    from prometheus_client import REGISTRY

    from mlmon.demo.listening import AnnouncingServer, listening_socket
    from mlmon.demo.service import create_app
    from mlmon.log_shipper.facade import PredictionLogger

    sock = listening_socket(args.host, args.port)  # before the logger starts any thread
    es_url = es_url_with_credentials(args.es_url, args.es_user, args.es_password) \
        if args.es_url else None
    logger = PredictionLogger.from_profile(
        profile, service_name=f"{model.name}-api", environment=args.environment,
        es_url=es_url, spool_dir=args.spool_dir, registry=REGISTRY)
    challenger = ""
    if args.challenger and args.model == RISK:
        classifier = train_risk_challenger()
        logger.add_challenger(build_risk_profile(classifier), classifier.predict_scored,
                              with_scores=True)
        challenger = f"challenger version {classifier.version} in shadow mode; "
    elif args.challenger:
        shadow = train_challenger()
        logger.add_challenger(build_profile(shadow), shadow.predict_one)
        challenger = f"challenger version {shadow.version} in shadow mode; "
    app = create_app(model, logger, REGISTRY)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            access_log=False)
    shipping = f"records to {printable_url(args.es_url)}" if args.es_url \
        else "records not shipped (no --es-url)"
    AnnouncingServer(config, "mlmon demo", f"(POST /predict, GET /metrics, GET /healthz); "
                     f"{challenger}{shipping}; Ctrl+C stops").run(sockets=[sock])
    return 0
