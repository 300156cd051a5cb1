"""A copy of alerting/config.yaml with an even shorter demo `for:`, for the end-to-end test.

`make stack` and docker-compose already load the demo timing profile (the `demo:` section of
alerting/config.yaml, generated into prometheus/demo/). The end-to-end test runs with 1 s scrapes
and evaluations and cannot wait the demo's minute on top, so this shortens `for:` of exactly the
alerts the demo profile shortens (the list lives in the config, not here); every other key, and
so every alert that fires on an empty or starting stack, stays as committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alerting" / "config.yaml"


def fast_config(for_: str, config: Path = CONFIG) -> dict[str, Any]:
    """The rules config with `for: <for_>` on every alert of its `demo.for`."""
    data = yaml.safe_load(config.read_text())
    data["demo"]["for"] = {name: for_ for name in data["demo"]["for"]}
    return data


def write_fast_config(path: Path, for_: str) -> Path:
    path.write_text(yaml.safe_dump(fast_config(for_), sort_keys=False))
    return path
