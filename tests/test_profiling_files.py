"""Files streamed in chunks profile like the same data in memory; any finite data validates."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from exporter.profile import Profile
from exporter.profiling import ProfilingError, Progress, profile_data, profile_file

MODEL = {"model_name": "churn", "model_version": "3"}


def training_frame(rows: int = 997, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, rows).round(1),
        "visits": rng.integers(0, 30, rows),
        "city": rng.choice(["paris", "rome", "berlin", "oslo"], rows),
        "review": [" ".join(rng.choice(["good", "bad", "slow", "the", "app"], 9))
                   for _ in range(rows)],
        "churn": rng.choice(["no", "yes"], rows),
    })
    frame.loc[::37, "age"] = np.nan
    frame.loc[::41, "city"] = None
    return frame


KINDS = {"categorical": ["city"], "text": ["review"], "prediction_column": "churn"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streamed_file_equals_in_memory_profile_whatever_the_chunk_size(tmp_path, suffix) -> None:
    frame = training_frame()
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
        frame = pd.read_csv(path)  # the same parsed values as the file gives
    else:
        frame.to_parquet(path)
    in_memory = profile_data(frame, **MODEL, **KINDS).dumps()
    for chunk_rows in (50, 333, 10_000):
        assert profile_file(path, chunk_rows=chunk_rows, **MODEL, **KINDS).dumps() == in_memory


def test_string_columns_stay_strings_in_later_chunks(tmp_path) -> None:
    # The second chunk holds only digits; pandas alone would read it as the numbers 7 and 8.
    path = tmp_path / "codes.csv"
    path.write_text("code,x\nab,1\ncd,2\n007,3\n008,4\n")
    feature = profile_file(path, chunk_rows=2, **MODEL).feature("code")
    assert feature.kind == "categorical"
    assert feature.seen == ("007", "008", "ab", "cd")


def test_integer_column_named_categorical_is_read_as_written(tmp_path) -> None:
    path = tmp_path / "zip.csv"
    path.write_text("zip,x\n007,1\n010,2\n")
    assert profile_file(path, categorical=["zip"], **MODEL).feature("zip").seen == ("007", "010")


def test_non_number_in_a_later_chunk_names_column_and_row(tmp_path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "1.5\n" * 5 + "oops\n")
    with pytest.raises(ProfilingError, match=r"late.csv: column 'x': 'oops' \(row 6\)"):
        profile_file(path, chunk_rows=2, **MODEL)


def test_progress_bar_reaches_100_percent(tmp_path) -> None:
    path = tmp_path / "train.csv"
    training_frame().to_csv(path, index=False)
    stream = io.StringIO()
    profile_file(path, chunk_rows=100, progress=Progress("profiling", stream), **MODEL, **KINDS)
    lines = stream.getvalue()
    assert lines.startswith("\rprofiling [")
    assert lines.endswith("100% 997 rows\n")


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=data_frames(
        columns=[column("a", elements=finite), column("b", elements=finite),
                 column("c", elements=st.integers(-(2**53), 2**53))],
        index=range_indexes(min_size=1, max_size=40),
    ),
    bins=st.integers(2, 12),
    margin=st.floats(0, 10),
)
def test_any_finite_frame_gives_a_profile_that_validates(frame, bins, margin) -> None:
    profile = profile_data(frame, **MODEL, predictions=frame["a"], bins=bins, range_margin=margin)
    assert Profile.loads(profile.dumps()) == profile
    for feature in profile.features:
        low, high = feature.allowed_range
        assert low <= feature.binned.min <= feature.binned.max <= high
        assert len(feature.binned.edges) <= bins - 1


def test_an_error_mid_file_ends_the_progress_line(tmp_path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "1.5\n" * 5 + "oops\n")
    stream = io.StringIO()
    with pytest.raises(ProfilingError, match="oops"):
        profile_file(path, chunk_rows=2, progress=Progress("p", stream), **MODEL)
    assert stream.getvalue().endswith("\n") and "100%" not in stream.getvalue()
