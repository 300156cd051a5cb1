"""Building a reference profile from training data: DataFrames, arrays, CSV and Parquet files.

>>> from exporter.profiling import profile_data, profile_file
>>> profile = profile_data(df, model_name="churn", model_version="3", prediction_column="label")
>>> profile = profile_file("train.csv", model_name="churn", model_version="3",
...                        prediction_column="label", categorical=["zip"])
>>> profile.dump("profile.json")

Both accept the options of `ProfileSettings` as keywords. The same data and options always give
the same bytes from `profile.dumps()`. Bad data raises `ProfilingError` naming the column (and the
file, for `profile_file`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Union

import numpy as np
import pandas as pd

from exporter.profile import (
    CATEGORICAL,
    CLASSIFICATION,
    NUMERIC,
    REGRESSION,
    TEXT,
    Options,
    Profile,
)
from exporter.profiling_columns import (
    CategoricalColumn,
    NumericColumn,
    ProfilingError,
    TextColumn,
)
from exporter.profiling_io import Progress, read_chunks, read_head
from exporter.profiling_kinds import infer_kind, infer_prediction_kind
from exporter.profiling_prediction import PredictionColumn, scores_from_probabilities
from exporter.values import canonical_category

__all__ = ["ProfileSettings", "ProfilingError", "Progress", "profile_data", "profile_file"]

DataLike = Union[pd.DataFrame, Mapping[str, Any], np.ndarray]  # noqa: UP007 - runtime alias


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
    allowed_categories: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    trained_at: str | datetime | None = None
    baseline_metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model_name", "model_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ProfilingError(f"{name} must be a non-empty string")
        if self.prediction_kind not in (None, REGRESSION, CLASSIFICATION):
            raise ProfilingError(f"prediction_kind must be {REGRESSION!r} or {CLASSIFICATION!r}")
        limits = {"bins": 2, "top_k": 0, "vocabulary_size": 0, "max_seen_categories": 1}
        for name, low in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ProfilingError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.top_k > self.max_seen_categories:
            raise ProfilingError("top_k must not exceed max_seen_categories")
        if not (isinstance(self.range_margin, (int, float)) and 0 <= self.range_margin < 1e6):
            raise ProfilingError(f"range_margin must be >= 0, got {self.range_margin!r}")

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


def profile_data(
    data: DataLike,
    *,
    predictions: Any = None,
    targets: Any = None,
    scores: Any = None,
    probabilities: Any = None,
    probability_classes: Sequence[Any] | None = None,
    feature_names: Sequence[str] | None = None,
    settings: ProfileSettings | None = None,
    **options: Any,
) -> Profile:
    """Profile in-memory data: a DataFrame, a dict of columns, or a 2-D array.

    `predictions`, `targets` and `scores` are arrays aligned with the rows (instead of naming
    columns); `probabilities` is an (rows, classes) array, DataFrame or {class: array}, whose
    column order `probability_classes` gives (default: a DataFrame's or dict's keys; without
    them the score is the row's highest probability). Keyword `options` are ProfileSettings.
    """
    settings = _settings(settings, options)
    frame = _frame(data, feature_names)
    rows = len(frame)
    if not rows:
        raise ProfilingError("no data rows")
    _check_columns(settings, list(frame.columns))
    prediction = _role(frame, settings.prediction_column, predictions, "predictions")
    target = _role(frame, settings.target_column, targets, "targets")
    score = _role(frame, settings.score_column, scores, "scores")
    features = frame.drop(columns=settings.roles() + list(settings.exclude))
    kinds = _kinds(features, settings)
    builder = _Builder(settings, kinds, prediction, settings.prediction_column or "predictions",
                       settings.target_column or (None if target is None else "targets"))
    if probabilities is not None:
        if prediction is None or score is not None or settings.probability_columns:
            raise ProfilingError("probabilities need predictions, and replace scores")
        matrix, classes = _probability_matrix(probabilities, probability_classes)
        score = pd.Series(scores_from_probabilities(prediction, matrix, classes))
    builder.add(features, prediction, score, target, _probability_frame(frame, settings))
    return builder.finish()


def profile_file(
    path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    progress: bool | Progress = False,
    settings: ProfileSettings | None = None,
    **options: Any,
) -> Profile:
    """Profile a CSV or Parquet file, streamed `chunk_rows` rows at a time.

    Kinds are inferred from the first chunk. Numeric columns are held as float64 until the end
    (exact quantiles); categories and tokens as counts. `progress` draws a bar on stderr.
    """
    try:
        settings = _settings(settings, options)
        if chunk_rows < 1:
            raise ProfilingError("chunk_rows must be >= 1")
        head = read_head(path, chunk_rows)
        _check_columns(settings, [str(c) for c in head.columns])
        prediction_name = settings.prediction_column
        features_head = head.drop(columns=settings.roles() + list(settings.exclude))
        kinds = _kinds(features_head, settings)
        prediction_head = head[prediction_name] if prediction_name else None
        builder = _Builder(settings, kinds, prediction_head, prediction_name or "predictions",
                           settings.target_column)
        string_columns = _string_columns(head, kinds, settings)
        del head, features_head, prediction_head
        bar = Progress(f"profiling {os.fspath(path)}") if progress is True else progress or None
        try:
            _stream(builder, read_chunks(path, chunk_rows, string_columns, bar), kinds, settings)
            if bar:
                bar.finish()
        finally:
            if bar:
                bar.close()
        return builder.finish()
    except ProfilingError as exc:
        raise ProfilingError(f"{os.fspath(path)}: {exc}") from exc


def _stream(
    builder: _Builder, chunks: Iterator[pd.DataFrame], kinds: dict[str, str],
    settings: ProfileSettings,
) -> None:
    """Feed file chunks to the builder, split into features and role columns."""
    for chunk in chunks:
        chunk.columns = [str(c) for c in chunk.columns]
        builder.add(
            chunk[list(kinds)],
            chunk[settings.prediction_column] if settings.prediction_column else None,
            chunk[settings.score_column] if settings.score_column else None,
            chunk[settings.target_column] if settings.target_column else None,
            _probability_frame(chunk, settings),
        )


# ---- private -----------------------------------------------------------------------------------


def _settings(settings: ProfileSettings | None, options: dict[str, Any]) -> ProfileSettings:
    try:
        if settings is None:
            return ProfileSettings(**options)
        return dataclasses.replace(settings, **options) if options else settings
    except TypeError as exc:
        raise ProfilingError(f"bad option: {exc}") from exc


def _frame(data: DataLike, feature_names: Sequence[str] | None) -> pd.DataFrame:
    """Any supported input as a DataFrame with string column names and a 0..n-1 index."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        try:
            frame = pd.DataFrame({str(k): v for k, v in data.items()})
        except ValueError as exc:
            raise ProfilingError(f"columns must have equal lengths ({exc})") from exc
    elif isinstance(data, np.ndarray) and data.ndim == 2:
        names = feature_names or [f"x{i}" for i in range(data.shape[1])]
        if len(names) != data.shape[1]:
            raise ProfilingError(f"{len(names)} feature names for {data.shape[1]} columns")
        frame = pd.DataFrame(data, columns=list(names))
    else:
        raise ProfilingError(
            f"cannot profile a {type(data).__name__}: pass a DataFrame, a dict of columns "
            "or a 2-D array"
        )
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names) or "" in names:
        raise ProfilingError("column names must be unique and non-empty")
    return frame.set_axis(names, axis=1).reset_index(drop=True)


def _role(frame: pd.DataFrame, column: str | None, values: Any, what: str) -> pd.Series | None:
    """A role (predictions, targets, scores) from a named column or an aligned array."""
    if column is not None and values is not None:
        raise ProfilingError(f"give {what} as an array or as a column, not both")
    if column is not None:
        return frame[column]
    if values is None:
        return None
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(
        list(values) if not isinstance(values, np.ndarray) else values
    )
    if len(series) != len(frame):
        raise ProfilingError(f"{what}: {len(series)} values for {len(frame)} rows")
    return series


def _probability_frame(frame: pd.DataFrame, settings: ProfileSettings) -> pd.DataFrame | None:
    columns = list(settings.probability_columns.values())
    return frame[columns] if columns else None


def _probability_matrix(
    probabilities: Any, classes: Sequence[Any] | None
) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(probabilities, Mapping):
        probabilities = pd.DataFrame(dict(probabilities))
    if isinstance(probabilities, pd.DataFrame):
        classes = list(probabilities.columns) if classes is None else classes
        probabilities = probabilities.to_numpy(dtype=np.float64)
    names = None if classes is None else [_class_name(c) for c in classes]
    return np.asarray(probabilities, dtype=np.float64), names


def _class_name(value: Any) -> str:
    name = str(value) if isinstance(value, str) else canonical_category(value)
    if name is None:
        raise ProfilingError(f"{value!r} cannot be a class name")
    return name


def _check_columns(settings: ProfileSettings, columns: list[str]) -> None:
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
                    f"{option} names column {name!r}, which is not in the data "
                    f"(columns: {listing})"
                )
    claimed: dict[str, str] = {}
    for option in ("prediction_column", "target_column", "score_column", "probability_columns",
                   "categorical", "text", "numeric", "exclude"):
        for name in named[option]:
            if name in claimed:
                raise ProfilingError(f"column {name!r} is in both {claimed[name]} and {option}")
            claimed[name] = option


def _kinds(features: pd.DataFrame, settings: ProfileSettings) -> dict[str, str]:
    """Feature name -> kind, in column order: the overrides, else inferred."""
    overrides = {name: NUMERIC for name in settings.numeric}
    overrides.update({name: CATEGORICAL for name in settings.categorical})
    overrides.update({name: TEXT for name in settings.text})
    kinds = {}
    for name in features.columns:
        kinds[name] = overrides.get(name) or infer_kind(features[name], name)
    for name in settings.allowed_ranges:
        if kinds.get(name) != NUMERIC:
            raise ProfilingError(f"allowed_ranges: column {name!r} is not a numeric feature")
    for name in settings.allowed_categories:
        if kinds.get(name) != CATEGORICAL:
            raise ProfilingError(f"allowed_categories: column {name!r} is not categorical")
    if not kinds:
        raise ProfilingError("no feature columns left to profile")
    return kinds


def _string_columns(
    head: pd.DataFrame, kinds: dict[str, str], settings: ProfileSettings
) -> list[str]:
    """Columns to read as written, not re-guessed chunk by chunk.

    Strings in the head stay strings, so a later chunk that happens to look numeric does not turn
    "007" into 7. Integer columns named categorical or text are read as written too ("007").
    Floats and booleans keep pandas' parsing, whose values canonicalise as live values do.
    """
    overridden = set(settings.categorical) | set(settings.text)
    out = []
    for name in head.columns:
        dtype = head[name].dtype
        as_text = dtype.kind == "O" or pd.api.types.is_string_dtype(dtype)
        if as_text and kinds.get(name, CATEGORICAL) in (CATEGORICAL, TEXT):
            out.append(name)
        elif name in overridden and pd.api.types.is_integer_dtype(dtype):
            out.append(name)
    return out


def _trained_at(value: str | datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, to the second; a time without zone is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ProfilingError(f"trained_at: {value!r} is not an ISO-8601 time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _allowed_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise ProfilingError(f"allowed_ranges[{name!r}]: expected (low, high)") from exc
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ProfilingError(f"allowed_ranges[{name!r}]: need finite low <= high")
    return low, high


class _Builder:
    """Feeds chunks to one accumulator per column, then assembles and validates the profile."""

    def __init__(
        self,
        settings: ProfileSettings,
        kinds: dict[str, str],
        prediction_head: pd.Series | None,
        prediction_name: str,
        target_name: str | None,
    ) -> None:
        self.settings = settings
        self.rows = 0
        makers = {NUMERIC: NumericColumn, CATEGORICAL: CategoricalColumn, TEXT: TextColumn}
        self.columns = {name: makers[kind](name) for name, kind in kinds.items()}
        self.prediction = None
        if prediction_head is not None:
            kind = settings.prediction_kind or infer_prediction_kind(prediction_head)
            self.prediction = PredictionColumn(prediction_name, kind, target_name)
        self.probability_classes = [_class_name(c) for c in settings.probability_columns]

    def add(
        self,
        features: pd.DataFrame,
        prediction: pd.Series | None,
        score: pd.Series | None,
        target: pd.Series | None,
        probability_frame: pd.DataFrame | None,
    ) -> None:
        for name, column in self.columns.items():
            column.add(features[name], self.rows)
        if self.prediction is not None and prediction is not None:
            scores = None
            if probability_frame is not None:
                scores = scores_from_probabilities(
                    prediction, probability_frame.to_numpy(dtype=np.float64),
                    self.probability_classes,
                )
            elif score is not None:
                scores = np.asarray(score.to_numpy(dtype=np.float64, na_value=np.nan))
            self.prediction.add(prediction, scores, target, self.rows)
        elif score is not None or probability_frame is not None:
            raise ProfilingError("scores and probabilities need predictions")
        self.rows += len(features)

    def finish(self) -> Profile:
        s = self.settings
        features = []
        for name, column in self.columns.items():
            if isinstance(column, NumericColumn):
                allowed = s.allowed_ranges.get(name)
                bounds = None if allowed is None else _allowed_range(name, allowed)
                features.append(column.finish(s.bins, float(s.range_margin), bounds))
            elif isinstance(column, CategoricalColumn):
                allowed_raw = s.allowed_categories.get(name)
                allowed = None
                if allowed_raw is not None:
                    allowed = tuple(sorted({_class_name(v) for v in allowed_raw}))
                features.append(column.finish(s.top_k, s.max_seen_categories, allowed))
            else:
                features.append(column.finish(s.vocabulary_size))
        prediction = None if self.prediction is None else self.prediction.finish(s.bins)
        metrics = {} if self.prediction is None else self.prediction.metrics()
        metrics.update({str(k): float(v) for k, v in s.baseline_metrics.items()})
        profile = Profile(
            model_name=s.model_name,
            model_version=s.model_version,
            rows=self.rows,
            features=tuple(features),
            prediction=prediction,
            trained_at=_trained_at(s.trained_at),
            baseline_metrics=metrics,
            options=s.options(),
        )
        # A round trip through the one validating parser: what we write is what loads.
        return Profile.loads(profile.dumps())
