"""Kind inference: which columns are numeric, categorical or text, and what the prediction is.

The rules (documented in docs/profile.md, "What is in it"; override them with `numeric=`,
`categorical=`, `text=` and `prediction_kind=`):
- booleans are categorical; numbers (int, float) are numeric;
- strings that are numbers but for a few cells (at most MAX_NON_NUMERIC_SHARE of the non-null
  ones: a typo, "n/a") are numeric; those cells are then counted as nulls, with a warning
  (`columns.NumericColumn`). Strings that are mostly numbers (MOSTLY_NUMBERS) but not
  that few stay categorical or text, with a warning naming the cells and the option that
  decides, so a typo never silently turns a numeric column into categories;
- strings are text when they are long (mean length > 30 characters), or when they look like free
  text: at least 20 distinct values, more than half of the values distinct, and more than half
  containing whitespace. Other strings are categorical;
- a prediction is classification when it holds strings or booleans, or integers with at most 20
  distinct values; floats (and integers with more values) are regression.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT
from mlmon.profiling.columns import (
    MAX_NON_NUMERIC_SHARE,
    QUOTED_CELLS,
    ProfilingError,
    ProfilingWarning,
    null_mask,
    parse_floats,
    quoted_cells,
)
from mlmon.profiling.labels import naming

TEXT_MEAN_LENGTH = 30
TEXT_MIN_DISTINCT = 20
TEXT_DISTINCT_SHARE = 0.5
TEXT_WHITESPACE_SHARE = 0.5
MAX_INTEGER_CLASSES = 20
MOSTLY_NUMBERS = 0.5  # a string column with more numbers than this warns when not numeric

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
    numbers_but = _numbers_but_for_a_few(series, name)
    if numbers_but is not None:
        return numbers_but
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


def _numbers_but_for_a_few(series: pd.Series, name: str) -> str | None:
    """NUMERIC for strings that are numbers but for a few cells; None to go on inferring (after
    a warning when most cells are numbers: the column will not be profiled as numeric)."""
    values, bad = parse_floats(series, name)
    parsed = int((~np.isnan(values)).sum())
    non_numeric = int(bad.sum())
    if not parsed or not non_numeric:
        # All numbers as strings: the caller chose strings (zip codes, "007"); a file never
        # gives that, as its parser reads such a column as numbers.
        return None
    share = non_numeric / (parsed + non_numeric)
    if share <= MAX_NON_NUMERIC_SHARE:
        return NUMERIC
    if 1 - share > MOSTLY_NUMBERS:
        first = np.flatnonzero(bad)[:QUOTED_CELLS]  # positions: row numbers from 1
        cells = quoted_cells([(series.iloc[i], int(i) + 1) for i in first], non_numeric)
        warnings.warn(ProfilingWarning(
            f"column {name!r}: not profiled as numeric although {1 - share:.0%} of its non-null "
            f"values (in the rows kinds are inferred from) are numbers: {cells} are not, more "
            f"than the {MAX_NON_NUMERIC_SHARE:.0%} a numeric column may have; fix them to "
            f"profile it as numeric, or name it with {naming('categorical', name)} to say that "
            "categories are meant"), stacklevel=3)
    return None


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
