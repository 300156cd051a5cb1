"""A copy of alerting/config.yaml with short `for:` on the data alerts, for demos and the e2e test.

Only the alerts the drift scenario is meant to trigger are shortened; the alerts that fire on
an empty or starting stack (not enough data, throughput zero, exporter down) keep their `for:`,
so a healthy period stays silent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alerting" / "config.yaml"

DATA_ALERTS = ("MlmonFeatureDrift", "MlmonPredictionDrift", "MlmonFeatureMissing",
               "MlmonUnseenCategoriesRising", "MlmonInvalidValuesRising", "MlmonTextOOVRising")


def fast_config(for_: str, config: Path = CONFIG) -> dict[str, Any]:
    """The rules config with `for: <for_>` on DATA_ALERTS; every other key as committed."""
    data = yaml.safe_load(config.read_text())
    for name in DATA_ALERTS:
        data["alerts"][name]["for"] = for_
    return data


def write_fast_config(path: Path, for_: str) -> Path:
    path.write_text(yaml.safe_dump(fast_config(for_), sort_keys=False))
    return path
