"""A WSGI app for `gunicorn --preload`: the shipper is made in the master, before the fork.

GET /ship/<id> ships one record with that id and answers `<pid> <1 if accepted else 0>`.
Configured by MLMON_TEST_ES_URL, MLMON_TEST_INDEX, MLMON_TEST_SPOOL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from mlmon.log_shipper.shipper import Shipper

shipper = Shipper(es=os.environ["MLMON_TEST_ES_URL"], index=os.environ["MLMON_TEST_INDEX"],
                  spool_dir=os.environ["MLMON_TEST_SPOOL"], max_docs=50, max_age_s=0.1,
                  handle_signals=False)


def app(environ: dict[str, Any],
        start_response: Callable[[str, list[tuple[str, str]]], Any]) -> Iterable[bytes]:
    record_id = environ["PATH_INFO"].rsplit("/", 1)[-1]
    accepted = shipper.ship({"event": {"id": record_id}, "features": {"n": 1.0}})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {int(accepted)}".encode()]
