"""mlmon: monitoring for machine-learning models in production.

One package; each part is a subpackage (the repository keeps one folder per part):

- `mlmon.profiling`: build a reference profile from training data (offline; pandas).
- `mlmon.exporter`: the profile model and `ModelMonitor`, Prometheus series in the serving path.
- `mlmon.log_shipper`: input records into Elasticsearch (`PredictionLogger` feeds both).
- `mlmon.alerting`: recording rules, alerts and Alertmanager routing generated from one config.
- `mlmon.demo`: a demo model service and its traffic.
- `mlmon.cli`: the `mlmon` command, which dispatches to every part.

>>> from mlmon import ModelMonitor, PredictionLogger
>>> monitor = ModelMonitor.from_profile("profile.json")

The names below (and `__version__`) are looked up on first use, so `import mlmon.exporter`
costs no more than the exporter itself, and a part's optional dependencies are needed only
when that part is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlmon.exporter.monitor import BatchObservation, ModelMonitor, Observation
    from mlmon.exporter.outcome_monitor import OutcomeMonitor
    from mlmon.exporter.profile import Profile, ProfileError
    from mlmon.log_shipper.facade import PredictionLogger

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "BatchObservation": "mlmon.exporter.monitor",
    "ModelMonitor": "mlmon.exporter.monitor",
    "Observation": "mlmon.exporter.monitor",
    "OutcomeMonitor": "mlmon.exporter.outcome_monitor",
    "PredictionLogger": "mlmon.log_shipper.facade",
    "Profile": "mlmon.exporter.profile",
    "ProfileError": "mlmon.exporter.profile",
}

__all__ = [
    "BatchObservation",
    "ModelMonitor",
    "Observation",
    "OutcomeMonitor",
    "PredictionLogger",
    "Profile",
    "ProfileError",
    "__version__",
]


def _version() -> str:
    # importlib.metadata costs ~100 ms to import: only `mlmon --version` and readers pay it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlmon")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()[name] = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"__version__"})
