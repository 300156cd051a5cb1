"""Label files read in chunks: ids as text, classes as text, numbers parsed, arrival times."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from mlmon.outcomes.labels import arrival_seconds, read_labels
from mlmon.profiling.columns import ProfilingError
from mlmon.profiling.files import file_columns

T = 1_790_000_200.0  # 2026-09-21T14:16:40Z


def _read(path: Path, numeric: bool, arrived: str | None = None,
          rows: int = 2) -> list[list[tuple[str, object, float]]]:
    return [[(label.request_id, label.actual, label.arrived_at) for label in chunk]
            for chunk in read_labels(path, id_column="id", label_column="y",
                                     arrived_column=arrived, numeric=numeric, chunk_rows=rows,
                                     clock=lambda: 42.0)]


def test_csv_ids_and_classes_stay_text_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id,y,other\n007,1,a\n8,yes,b\n,0,c\n9,,d\n10,1.0,e\n", encoding="utf-8")
    assert _read(path, numeric=False) == [
        [("007", "1", 42.0), ("8", "yes", 42.0)],
        [("", "0", 42.0), ("9", None, 42.0)],   # an empty id; an empty label
        [("10", "1.0", 42.0)]]
    assert file_columns(path) == ["id", "y", "other"]


def test_csv_regression_labels_are_parsed_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id,y\na,1.5\nb,high\nc,\nd,-2\n", encoding="utf-8")
    # 'high' stays text (judged wrong_type by the join), not a column of strings.
    assert _read(path, numeric=True, rows=10) == [
        [("a", 1.5, 42.0), ("b", "high", 42.0), ("c", None, 42.0), ("d", -2.0, 42.0)]]


def test_arrival_column_unix_seconds_or_iso(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id,y,at\na,1,1790000200\nb,1,2026-09-21T14:16:40Z\n"
                    "c,1,2026-09-21 16:16:40+02:00\nd,1,yesterday\n", encoding="utf-8")
    chunk = _read(path, numeric=False, arrived="at", rows=10)[0]
    assert [t for _i, _y, t in chunk[:3]] == [T, T, T]
    assert math.isnan(chunk[3][2])  # not a time: the join counts it bad_arrival


def test_parquet_keeps_its_types(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"id": [1, 2], "y": [0.5, None],
                  "at": pd.to_datetime(["2026-09-21T14:16:40Z"] * 2)}).to_parquet(path)
    assert _read(path, numeric=True, arrived="at") == [[("1", 0.5, T), ("2", None, T)]]
    assert file_columns(path) == ["id", "y", "at"]


def test_arrival_seconds_of_a_timestamp_column() -> None:
    column = pd.Series(pd.to_datetime(["2026-09-21T14:16:40", None]))
    got = arrival_seconds(column)
    assert got[0] == T and math.isnan(got[1])


@pytest.mark.parametrize("text, message", [("", "the file is empty"),
                                           ("id,y\n", "no data rows")])
def test_unreadable_files_say_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfilingError, match=message):
        if text:
            _read(path, numeric=False)
        else:
            file_columns(path)
