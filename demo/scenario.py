"""The traffic schedule and the drift scenario, as pure functions (no I/O, injected randomness).

A schedule is a healthy phase followed by a drift phase. During the drift, every record is
changed in the four ways the dashboards and alerts are meant to catch:
- a shifted numeric feature (`bmi` + `BMI_SHIFT`, far past most reference bins);
- a rare category becoming common (`clinic` = `island` for `RARE_SHARE` of the records);
- unseen categories (`channel` takes values never seen in training for `UNSEEN_SHARE`);
- nulls in one feature (`bp` is None for `NULL_SHARE` of the records);
- words never seen in training in the free-text `note` (for `OOV_SHARE` of the records).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

HEALTHY, DRIFT = "healthy", "drift"

BMI_SHIFT = 8.0
RARE_CATEGORY = "island"
RARE_SHARE = 0.5
UNSEEN_CHANNELS = ("kiosk", "voice", "fax")
UNSEEN_SHARE = 0.4
NULL_FEATURE = "bp"
NULL_SHARE = 0.4
OOV_NOTES = ("telehealth wearable sync", "insurance portal upload")
OOV_SHARE = 0.5


@dataclass(frozen=True)
class Schedule:
    """`healthy_s` seconds of reference-like traffic, then `drift_s` seconds of drift.

    >>> Schedule(healthy_s=60, drift_s=30).phase(75.0)
    'drift'
    """

    healthy_s: float
    drift_s: float

    def __post_init__(self) -> None:
        if self.healthy_s < 0 or self.drift_s < 0:
            raise ValueError(f"phase lengths must be >= 0, got {self.healthy_s}, {self.drift_s}")

    @property
    def duration_s(self) -> float:
        return self.healthy_s + self.drift_s

    def phase(self, elapsed_s: float) -> str | None:
        """The phase at `elapsed_s` seconds after the start; None once the schedule is over."""
        if elapsed_s < self.healthy_s:
            return HEALTHY
        if elapsed_s < self.duration_s:
            return DRIFT
        return None


def drifted(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of `record` with the drift scenario applied (the input is not modified)."""
    out = dict(record)
    bmi = out.get("bmi")
    if isinstance(bmi, int | float) and not isinstance(bmi, bool):
        out["bmi"] = float(bmi) + BMI_SHIFT
    if rng.random() < RARE_SHARE:
        out["clinic"] = RARE_CATEGORY
    if rng.random() < UNSEEN_SHARE:
        out["channel"] = rng.choice(UNSEEN_CHANNELS)
    if rng.random() < NULL_SHARE:
        out[NULL_FEATURE] = None
    if rng.random() < OOV_SHARE:
        out["note"] = rng.choice(OOV_NOTES)
    return out


def next_record(records: list[dict[str, Any]], phase: str, rng: random.Random) -> dict[str, Any]:
    """A reference row drawn with replacement, drifted when the phase says so."""
    record = dict(rng.choice(records))
    return drifted(record, rng) if phase == DRIFT else record
