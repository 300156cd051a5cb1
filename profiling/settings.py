"""What to profile and how: `ProfileSettings`, and checking them against the data's columns."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT, Options
from mlmon.exporter.values import canonical_category
from mlmon.profiling.columns import ProfilingError
from mlmon.profiling.kinds import infer_kind
from mlmon.profiling.labels import option_label as label


@dataclass(frozen=True)
class ProfileSettings:
    """Everything `profile_data` and `profile_file` can be told; only the model is required.

    >>> ProfileSettings(model_name="churn", model_version="3", prediction_column="label",
    ...                 categorical=["zip"], allowed_ranges={"age": (0, 120)})
    """

    model_name: str
    model_version: str
    prediction_column: str | None = None  # a column holding the model's predictions
    target_column: str | None = None  # the true labels: not a feature; gives baseline metrics
    score_column: str | None = None  # a classifier's probability of its predicted class
    probability_columns: Mapping[str, str] = field(default_factory=dict)  # class -> column
    prediction_kind: str | None = None  # "regression" / "classification"; None: inferred
    categorical: Sequence[str] = ()  # kind overrides
    text: Sequence[str] = ()
    numeric: Sequence[str] = ()
    exclude: Sequence[str] = ()  # columns that are neither features nor roles (ids, ...)
    bins: int = 10
    top_k: int = 20
    vocabulary_size: int = 1000
    range_margin: float = 0.1
    max_seen_categories: int = 10_000
    allowed_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # a regression's allowed prediction range; None ends open, e.g. (0, None): no negatives
    prediction_range: tuple[float | None, float | None] | None = None
    allowed_categories: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    trained_at: str | datetime | None = None
    baseline_metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model_name", "model_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ProfilingError(f"{label(name)} must be a non-empty string")
        if self.prediction_kind not in (None, REGRESSION, CLASSIFICATION):
            raise ProfilingError(
                f"{label('prediction_kind')} must be {REGRESSION!r} or {CLASSIFICATION!r}")
        limits = {"bins": 2, "top_k": 0, "vocabulary_size": 0, "max_seen_categories": 1}
        for name, low in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ProfilingError(f"{label(name)} must be an integer >= {low}, got {value!r}")
        if self.top_k > self.max_seen_categories:
            raise ProfilingError(
                f"{label('top_k')} must not exceed {label('max_seen_categories')}")
        if not (isinstance(self.range_margin, (int, float)) and 0 <= self.range_margin < 1e6):
            raise ProfilingError(
                f"{label('range_margin')} must be >= 0, got {self.range_margin!r}")
        if self.prediction_range is not None:
            _check_prediction_range(self.prediction_range)

    def roles(self) -> list[str]:
        """Columns that hold predictions, targets or scores: never features."""
        named = [self.prediction_column, self.target_column, self.score_column]
        return [c for c in named if c] + list(self.probability_columns.values())

    def options(self) -> Options:
        return Options(
            bins=self.bins,
            top_k=self.top_k,
            vocabulary_size=self.vocabulary_size,
            range_margin=float(self.range_margin),
            max_seen_categories=self.max_seen_categories,
        )


def _check_prediction_range(bounds: Any) -> None:
    if not isinstance(bounds, tuple) or len(bounds) != 2:
        raise ProfilingError(f"{label('prediction_range')} must be (low, high), got {bounds!r}")
    for end in bounds:
        if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float))
                                or not math.isfinite(end)):
            raise ProfilingError(f"{label('prediction_range')}: {end!r} is not a finite number "
                                 "(leave an end open instead)")
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise ProfilingError(f"{label('prediction_range')}: low {low!r} is above high {high!r}")


def settings_from(settings: ProfileSettings | None, options: dict[str, Any]) -> ProfileSettings:
    try:
        if settings is None:
            return ProfileSettings(**options)
        return dataclasses.replace(settings, **options) if options else settings
    except TypeError as exc:
        raise ProfilingError(f"bad option: {exc}") from exc


def class_name(value: Any) -> str:
    name = str(value) if isinstance(value, str) else canonical_category(value)
    if name is None:
        raise ProfilingError(f"{value!r} cannot be a class name")
    return name


def check_columns(settings: ProfileSettings, columns: list[str]) -> None:
    """Every column an option names must exist; a column has at most one role or kind."""
    known = set(columns)
    listing = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    named: dict[str, list[str]] = {
        "prediction_column": [settings.prediction_column] if settings.prediction_column else [],
        "target_column": [settings.target_column] if settings.target_column else [],
        "score_column": [settings.score_column] if settings.score_column else [],
        "probability_columns": list(settings.probability_columns.values()),
        "categorical": list(settings.categorical),
        "text": list(settings.text),
        "numeric": list(settings.numeric),
        "exclude": list(settings.exclude),
        "allowed_ranges": list(settings.allowed_ranges),
        "allowed_categories": list(settings.allowed_categories),
    }
    for option, names in named.items():
        for name in names:
            if name not in known:
                raise ProfilingError(
                    f"{label(option)} names column {name!r}, which is not in the data "
                    f"(columns: {listing})"
                )
    claimed: dict[str, str] = {}
    for option in ("prediction_column", "target_column", "score_column", "probability_columns",
                   "categorical", "text", "numeric", "exclude"):
        for name in named[option]:
            if name in claimed:
                raise ProfilingError(
                    f"column {name!r} is in both {label(claimed[name])} and {label(option)}")
            claimed[name] = option


def resolve_kinds(features: Mapping[str, pd.Series], settings: ProfileSettings) -> dict[str, str]:
    """Feature name -> kind, in column order: the overrides, else inferred."""
    overrides = {name: NUMERIC for name in settings.numeric}
    overrides.update({name: CATEGORICAL for name in settings.categorical})
    overrides.update({name: TEXT for name in settings.text})
    kinds = {}
    for name in features:
        kinds[name] = overrides.get(name) or infer_kind(features[name], name)
    for name in settings.allowed_ranges:
        if kinds.get(name) != NUMERIC:
            raise ProfilingError(
                f"{label('allowed_ranges')}: column {name!r} is not a numeric feature")
    for name in settings.allowed_categories:
        if kinds.get(name) != CATEGORICAL:
            raise ProfilingError(
                f"{label('allowed_categories')}: column {name!r} is not categorical")
    if not kinds:
        raise ProfilingError("no feature columns left to profile")
    return kinds


def trained_at_utc(value: str | datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, to the second; a time without zone is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ProfilingError(
                f"{label('trained_at')}: {value!r} is not an ISO-8601 time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def allowed_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise ProfilingError(f"{label('allowed_ranges')} {name}: expected (low, high)") from exc
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ProfilingError(f"{label('allowed_ranges')} {name}: need finite low <= high")
    return low, high
