"""Label files (CSV or Parquet) read in chunks of `Label`s, in bounded memory.

Only the id, label and (optional) arrival columns are read. In a CSV every one of them is read
as text, so nothing depends on how pandas would guess a chunk's types: ids keep their leading
zeros, a class `1` stays the class `"1"`, and a regression label that is not a number (`high`) is
a `wrong_type` label, not a whole column turned to strings. Parquet columns keep their types.

Arrival times: Unix seconds, or ISO-8601 text (a time without an offset is UTC). A cell that is
neither is a label with no usable arrival (`bad_arrival`). Without an arrival column, a label
arrives when its chunk is joined.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from mlmon.log_shipper.join import Label
from mlmon.profiling.files import Progress, read_chunks

__all__ = ["arrival_seconds", "read_labels"]


def read_labels(path: str | os.PathLike[str], *, id_column: str, label_column: str,
                arrived_column: str | None, numeric: bool, chunk_rows: int,
                progress: Progress | None = None,
                clock: Callable[[], float] | None = None) -> Iterator[list[Label]]:
    """Lists of at most `chunk_rows` labels, in file order.

    `numeric`: the labels of a regression model (text cells are parsed as numbers).
    `clock`: the arrival time of labels without an arrival column (asked per chunk).
    """
    wanted = [id_column, label_column, *([arrived_column] if arrived_column else [])]
    for chunk in read_chunks(path, chunk_rows, string_columns=wanted, progress=progress,
                             columns=list(dict.fromkeys(wanted))):
        ids = [_request_id(v) for v in chunk[id_column].tolist()]
        actuals = chunk[label_column].tolist()
        if numeric:
            actuals = [_number(v) for v in actuals]
        else:
            actuals = [None if _is_null(v) else v for v in actuals]
        if arrived_column:
            arrived = arrival_seconds(chunk[arrived_column])
        else:
            now = (clock or _now)()
            arrived = [now] * len(ids)
        yield [Label(i, a, t) for i, a, t in zip(ids, actuals, arrived, strict=True)]


def _now() -> float:
    import time

    return time.time()


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _request_id(value: Any) -> str:
    """The id as the service logged it: text as is, an integer without `.0`; "" when empty."""
    if _is_null(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> Any:
    """A CSV cell's text as a float when it is one; anything else as is (judged later)."""
    if _is_null(value):
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # not a number: wrong_type
    return value


def arrival_seconds(column: pd.Series) -> list[float]:
    """Unix seconds of each cell (NaN for a cell that is no time)."""
    if column.dtype.kind == "M":  # a Parquet timestamp column
        times = pd.to_datetime(column, utc=True)
        return _epoch(times)
    numbers = pd.to_numeric(column, errors="coerce")
    text = column.where(numbers.isna())
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    seconds = _epoch(parsed)
    return [float(n) if not math.isnan(n) else s
            for n, s in zip(numbers.astype("float64").tolist(), seconds, strict=True)]


def _epoch(times: pd.Series) -> list[float]:
    """Unix seconds of UTC timestamps; NaN for NaT."""
    return list(((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).tolist())
