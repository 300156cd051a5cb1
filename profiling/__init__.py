"""Building a reference profile from training data: DataFrames, arrays, CSV and Parquet files.

>>> from mlmon.profiling import profile_data, profile_file
>>> profile = profile_data(df, model_name="churn", model_version="3", prediction_column="label")
>>> profile = profile_file("train.csv", model_name="churn", model_version="3",
...                        prediction_column="label", categorical=["zip"])
>>> profile.dump("profile.json")

Both accept the options of `ProfileSettings` as keywords. The same data and options always give
the same bytes from `profile.dumps()`, whether a file fits in `max_memory_mb` (one pass, values
in memory) or not (more passes, bounded memory). Bad data raises `ProfilingError` naming the
column (and the file, for `profile_file`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Union

import numpy as np
import pandas as pd

from mlmon.exporter.profile import CATEGORICAL, NUMERIC, TEXT, Feature, Profile
from mlmon.profiling.columns import (
    CategoricalColumn,
    FloatValues,
    NumericColumn,
    ProfilingError,
    ProfilingWarning,
    TextColumn,
)
from mlmon.profiling.files import INFERENCE_ROWS, Progress, read_chunks, read_head
from mlmon.profiling.kinds import infer_prediction_kind
from mlmon.profiling.labels import option_label
from mlmon.profiling.passes import DEFAULT_MAX_MEMORY_MB, DataChanged, MemoryBudget, Passes
from mlmon.profiling.prediction import PredictionColumn, scores_from_probabilities
from mlmon.profiling.settings import (
    ProfileSettings,
    allowed_range,
    check_columns,
    class_name,
    resolve_kinds,
    settings_from,
    trained_at_utc,
)

__all__ = ["ProfileSettings", "ProfilingError", "ProfilingWarning", "Progress", "profile_data",
           "profile_file"]

DataLike = Union[pd.DataFrame, Mapping[str, Any], np.ndarray]  # noqa: UP007 - runtime alias


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
    settings = settings_from(settings, options)
    frame = _frame(data, feature_names)
    rows = len(frame)
    if not rows:
        raise ProfilingError("no data rows")
    check_columns(settings, list(frame.columns))
    prediction = _role(frame, settings.prediction_column, predictions, "predictions")
    target = _role(frame, settings.target_column, targets, "targets")
    score = _role(frame, settings.score_column, scores, "scores")
    features = frame.drop(columns=settings.roles() + list(settings.exclude))
    kinds = resolve_kinds(dict(features.items()), settings)
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
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    settings: ProfileSettings | None = None,
    **options: Any,
) -> Profile:
    """Profile a CSV or Parquet file, streamed `chunk_rows` rows at a time.

    Kinds are inferred from the first INFERENCE_ROWS rows, whatever `chunk_rows` is. Categories
    and tokens are kept as counts. Finite numeric values (features, regression predictions,
    scores, residuals) are kept as float64 while they fit in `max_memory_mb`; past that the file
    is read again, two or more times, to find the same exact quantiles and moments in bounded
    memory. `progress` draws a bar on stderr. Caveats (a few cells of a numeric column that are
    not numbers) are issued as `ProfilingWarning`s.
    """
    try:
        settings = settings_from(settings, options)
        if chunk_rows < 1:
            raise ProfilingError(f"{option_label('chunk_rows')} must be >= 1")
        if not max_memory_mb >= 0:
            raise ProfilingError(
                f"{option_label('max_memory_mb')} must be >= 0, got {max_memory_mb!r}")
        budget = MemoryBudget(int(min(max_memory_mb, 2.0**40) * 2**20))  # inf: no limit
        # Kinds come from the same rows whatever chunk_rows is, so it cannot change them.
        head = read_head(path, INFERENCE_ROWS)
        check_columns(settings, [str(c) for c in head.columns])
        prediction_name = settings.prediction_column
        # The head's columns themselves, not head.drop(): pandas 2 (no copy-on-write) would copy
        # every feature of the head, twice its memory at the peak.
        dropped = set(settings.roles()) | set(settings.exclude)
        features_head = {str(c): head[c] for c in head.columns if c not in dropped}
        kinds = resolve_kinds(features_head, settings)
        prediction_head = head[prediction_name] if prediction_name else None
        builder = _Builder(settings, kinds, prediction_head, prediction_name or "predictions",
                           settings.target_column, budget)
        string_columns = _string_columns(head, kinds, settings)
        # Later passes read only the float columns, unless the head's index came from the file
        # (a header one field short): then pandas would parse a column subset differently.
        subset = head.index.equals(pd.RangeIndex(len(head)))
        del head, features_head, prediction_head
        bar = Progress(f"profiling {os.fspath(path)}") if progress is True else progress or None
        label = bar.label if bar else ""
        try:
            _stream(builder, read_chunks(path, chunk_rows, string_columns, bar), settings)
            if bar:
                bar.finish()
            if budget.exceeded:
                columns = builder.float_columns() if subset else None
                read_again = partial(read_chunks, path, chunk_rows, string_columns, bar, columns)
                _more_passes(builder, read_again, settings, bar, f"over {max_memory_mb:g} MB")
        finally:
            if bar:
                bar.close()
                bar.label = label
        return builder.finish()
    except (ProfilingError, DataChanged) as exc:
        raise ProfilingError(f"{os.fspath(path)}: {exc}") from exc


def _stream(
    builder: _Builder, chunks: Iterator[pd.DataFrame], settings: ProfileSettings,
    replay: bool = False,
) -> None:
    """Feed file chunks to the builder, split into features and role columns."""
    for chunk in chunks:
        chunk.columns = [str(c) for c in chunk.columns]
        builder.add(
            chunk[builder.feature_columns(replay)],
            chunk[settings.prediction_column] if settings.prediction_column else None,
            chunk[settings.score_column] if settings.score_column else None,
            chunk[settings.target_column] if settings.target_column else None,
            _probability_frame(chunk, settings),
            replay,
        )


def _more_passes(
    builder: _Builder, read_again: Callable[[], Iterator[pd.DataFrame]],
    settings: ProfileSettings, bar: Progress | None, why: str,
) -> None:
    """Read the file again until the float columns' statistics are exact (`passes`)."""
    passes = builder.passes()
    label = bar.label if bar else ""
    while passes.begin():
        if bar:
            bar.label = f"{label} (pass {passes.number}, {why})"
        builder.replayed = 0
        _stream(builder, read_again(), settings, replay=True)
        passes.end()
        if bar:
            bar.finish()


# ---- private -----------------------------------------------------------------------------------


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
    labelled: pd.DataFrame = frame.set_axis(names, axis=1).reset_index(drop=True)
    return labelled


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
    names = None if classes is None else [class_name(c) for c in classes]
    return np.asarray(probabilities, dtype=np.float64), names


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


class _Builder:
    """Feeds chunks to one accumulator per column, then assembles and validates the profile."""

    def __init__(
        self,
        settings: ProfileSettings,
        kinds: dict[str, str],
        prediction_head: pd.Series | None,
        prediction_name: str,
        target_name: str | None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.rows = 0
        self.replayed = 0  # rows of the current later pass, for error messages
        self.columns: dict[str, NumericColumn | CategoricalColumn | TextColumn] = {}
        for name, kind in kinds.items():
            self.columns[name] = (NumericColumn(name, budget) if kind == NUMERIC else
                                  CategoricalColumn(name) if kind == CATEGORICAL else
                                  TextColumn(name))
        self.prediction = None
        if prediction_head is not None:
            kind = settings.prediction_kind or infer_prediction_kind(prediction_head)
            self.prediction = PredictionColumn(prediction_name, kind, target_name, budget)
        self.probability_classes = [class_name(c) for c in settings.probability_columns]

    def feature_columns(self, replay: bool) -> list[str]:
        """Features a chunk feeds: all of them, or only numeric ones in a later pass."""
        return [name for name, column in self.columns.items()
                if not replay or isinstance(column, NumericColumn)]

    def float_columns(self) -> list[str]:
        """The file columns a later pass reads: numeric features and the role columns."""
        return self.feature_columns(replay=True) + self.settings.roles()

    def passes(self) -> Passes:
        """Drop every kept value; the later passes that compute the same statistics."""
        streams: list[FloatValues] = [column for column in self.columns.values()
                                      if isinstance(column, NumericColumn)]
        if self.prediction is not None:
            streams += self.prediction.float_values()
        stats = [s for s in (stream.start_passes(self.settings.bins) for stream in streams) if s]
        return Passes(stats, self.budget.max_bytes if self.budget else 0)

    def add(
        self,
        features: pd.DataFrame,
        prediction: pd.Series | None,
        score: pd.Series | None,
        target: pd.Series | None,
        probability_frame: pd.DataFrame | None,
        replay: bool = False,
    ) -> None:
        """One chunk; `replay`: a later pass, which feeds only the numeric values."""
        offset = self.replayed if replay else self.rows
        for name in features.columns:
            self.columns[name].add(features[name], offset)
        if self.prediction is not None and prediction is not None:
            scores = None
            if probability_frame is not None:
                scores = scores_from_probabilities(
                    prediction, probability_frame.to_numpy(dtype=np.float64),
                    self.probability_classes,
                )
            elif score is not None:
                scores = np.asarray(score.to_numpy(dtype=np.float64, na_value=np.nan))
            self.prediction.add(prediction, scores, target, offset, replay)
        elif score is not None or probability_frame is not None:
            raise ProfilingError("scores and probabilities need predictions")
        if replay:
            self.replayed += len(features)
        else:
            self.rows += len(features)

    def finish(self) -> Profile:
        s = self.settings
        features: list[Feature] = []
        for name, column in self.columns.items():
            if isinstance(column, NumericColumn):
                allowed = s.allowed_ranges.get(name)
                bounds = None if allowed is None else allowed_range(name, allowed)
                features.append(column.finish(s.bins, float(s.range_margin), bounds))
            elif isinstance(column, CategoricalColumn):
                allowed_raw = s.allowed_categories.get(name)
                categories = None
                if allowed_raw is not None:
                    categories = tuple(sorted({class_name(v) for v in allowed_raw}))
                features.append(column.finish(s.top_k, s.max_seen_categories, categories))
            else:
                features.append(column.finish(s.vocabulary_size))
        prediction = None if self.prediction is None else self.prediction.finish(
            s.bins, float(s.range_margin), s.prediction_range)
        metrics = {} if self.prediction is None else self.prediction.metrics()
        metrics.update({str(k): float(v) for k, v in s.baseline_metrics.items()})
        profile = Profile(
            model_name=s.model_name,
            model_version=s.model_version,
            rows=self.rows,
            features=tuple(features),
            prediction=prediction,
            trained_at=trained_at_utc(s.trained_at),
            baseline_metrics=metrics,
            options=s.options(),
        )
        # A round trip through the one validating parser: what we write is what loads.
        return Profile.loads(profile.dumps())
