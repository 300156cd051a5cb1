"""Kind inference: which columns are numeric, categorical or text, and what the prediction is.

The rules (documented in README.md, "Reference profile"; override them with `numeric=`,
`categorical=`, `text=` and `prediction_kind=`):
- booleans are categorical; numbers (int, float) are numeric;
- strings are text when they are long (mean length > 30 characters), or when they look like free
  text: at least 20 distinct values, more than half of the values distinct, and more than half
  containing whitespace. Other strings are categorical;
- a prediction is classification when it holds strings or booleans, or integers with at most 20
  distinct values; floats (and integers with more values) are regression.
"""

from __future__ import annotations

import pandas as pd

from exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT
from exporter.profiling_columns import ProfilingError, null_mask

TEXT_MEAN_LENGTH = 30
TEXT_MIN_DISTINCT = 20
TEXT_DISTINCT_SHARE = 0.5
TEXT_WHITESPACE_SHARE = 0.5
MAX_INTEGER_CLASSES = 20

_NUMBERS = {"integer", "floating", "mixed-integer-float", "decimal"}


def infer_kind(series: pd.Series, name: str) -> str:
    """The feature kind of a column, by the rules in this module's docstring."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise ProfilingError(
            f"column {name!r}: dates and durations are not supported; "
            "convert to a number, or exclude the column"
        )
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    values = series[~null_mask(series)]
    if values.empty:
        raise ProfilingError(f"column {name!r}: every value is null")
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in _NUMBERS:
        return NUMERIC
    if inferred != "string":
        return CATEGORICAL
    strings = values.astype(str)
    if strings.str.len().mean() > TEXT_MEAN_LENGTH:
        return TEXT
    distinct = strings.nunique()
    looks_free = (
        distinct >= TEXT_MIN_DISTINCT
        and distinct / len(strings) > TEXT_DISTINCT_SHARE
        and strings.str.contains(r"\s", regex=True).mean() > TEXT_WHITESPACE_SHARE
    )
    return TEXT if looks_free else CATEGORICAL


def infer_prediction_kind(series: pd.Series) -> str:
    """Classification or regression, by the rules in this module's docstring."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CLASSIFICATION
    values = series[~null_mask(series)]
    if pd.api.types.is_integer_dtype(dtype):
        inferred = "integer"
    elif pd.api.types.is_numeric_dtype(dtype):
        inferred = "floating"
    else:
        inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "integer":
        return CLASSIFICATION if values.nunique() <= MAX_INTEGER_CLASSES else REGRESSION
    return REGRESSION if inferred in _NUMBERS else CLASSIFICATION
