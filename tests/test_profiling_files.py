"""Files streamed in chunks profile like the same data in memory; any finite data validates."""

from __future__ import annotations

import io
import re
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mlmon import profiling
from mlmon.exporter.profile import Profile
from mlmon.profiling import (
    ProfilingError,
    ProfilingWarning,
    Progress,
    profile_data,
    profile_file,
)

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


def test_non_number_after_the_inference_rows_names_column_and_row(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(profiling, "INFERENCE_ROWS", 2)  # kinds from rows 1-2: numbers
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "1.5\n" * 5 + "oops\n")
    # 1 of 6 values: more than a numeric column may have, so refused, whatever the chunks.
    for chunk_rows in (1, 2, 100):
        with pytest.raises(ProfilingError, match=r"late.csv: column 'x': 'oops' \(row 6\) is "
                           r"not a number \(1 of its 6 non-null values, 16.67%\): more than the "
                           r"1% a numeric column may have; profile it as categories with "
                           r"categorical=\['x'\]"):
            profile_file(path, chunk_rows=chunk_rows, **MODEL)


def _typo_file(path, bad_rows, rows=1000):
    """A numeric column `age` with "abc" in `bad_rows` (1-based data rows), and a prediction."""
    path.write_text("age,y\n" + "".join(
        f"{'abc' if row in bad_rows else 20 + (row * 7) % 50},{row % 5 / 4}\n"
        for row in range(1, rows + 1)))
    return path


def test_a_few_non_numbers_leave_a_column_numeric_the_same_whatever_the_chunks(tmp_path) -> None:
    # One typo in row 301 must not turn a numeric column into 457 categories, silently, nor
    # into an error with --chunk-rows 100.
    path = _typo_file(tmp_path / "typo.csv", {301})
    profiles = set()
    for chunk_rows, budget in ((7, 256), (100, 256), (100_000, 256), (100, 0)):
        with pytest.warns(ProfilingWarning) as caught:
            profile = profile_file(path, chunk_rows=chunk_rows, max_memory_mb=budget,
                                   prediction_column="y", **MODEL)
        assert [str(w.message) for w in caught] == [
            "column 'age': 'abc' (row 301) is not a number (1 of its 1,000 non-null values, "
            "0.10%): counted as nulls (a numeric column may have up to 1%); fix them, or profile "
            "the column as categories with categorical=['age']"]
        profiles.add(profile.dumps())
    feature = profile.feature("age")
    assert feature.kind == "numeric" and feature.null_rate == 1 / 1000 and feature.count == 999
    assert len(profiles) == 1
    with pytest.warns(ProfilingWarning):  # the same data in memory, as pandas reads it
        in_memory = profile_data(pd.read_csv(path), prediction_column="y", **MODEL)
    assert in_memory.dumps() == profiles.pop()


def test_a_typo_after_the_inference_rows_is_counted_the_same_way(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(profiling, "INFERENCE_ROWS", 50)
    path = _typo_file(tmp_path / "late.csv", {700})
    for chunk_rows in (10, 100_000):
        with pytest.warns(ProfilingWarning, match=r"'abc' \(row 700\) is not a number"):
            feature = profile_file(path, chunk_rows=chunk_rows, prediction_column="y",
                                   **MODEL).feature("age")
        assert feature.kind == "numeric" and feature.null_rate == 1 / 1000


def test_a_column_mostly_of_numbers_but_not_numeric_says_so(tmp_path) -> None:
    path = _typo_file(tmp_path / "junk.csv", set(range(20, 1001, 20)))  # 5 % "abc"
    with pytest.warns(ProfilingWarning) as caught:
        profile = profile_file(path, chunk_rows=100, prediction_column="y", **MODEL)
    assert profile.feature("age").kind == "categorical"
    message = str(caught[0].message)
    assert message.startswith("column 'age': not profiled as numeric although 95% of its "
                              "non-null values")
    assert "'abc' (row 20), 'abc' (row 40)" in message and "and 45 more" in message
    assert "categorical=['age']" in message
    with warnings.catch_warnings():  # named categorical: the caller decided, nothing to say
        warnings.simplefilter("error")
        profile_file(path, prediction_column="y", categorical=["age"], **MODEL)


def test_progress_bar_reaches_100_percent(tmp_path) -> None:
    path = tmp_path / "train.csv"
    training_frame().to_csv(path, index=False)
    stream = io.StringIO()
    profile_file(path, chunk_rows=100, progress=Progress("profiling", stream), **MODEL, **KINDS)
    lines = stream.getvalue()
    assert lines.startswith("\rprofiling [")
    assert lines.endswith("100% 997 rows\n")


finite = st.floats(allow_nan=False, allow_infinity=False)


def float_frames(floats: st.SearchStrategy[float], max_rows: int) -> st.SearchStrategy:
    """Frames with float columns a and b and an integer column c."""
    return data_frames(
        columns=[column("a", elements=floats), column("b", elements=floats),
                 column("c", elements=st.integers(-(2**53), 2**53))],
        index=range_indexes(min_size=1, max_size=max_rows),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=float_frames(finite, 40),
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


def test_an_error_mid_file_ends_the_progress_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(profiling, "INFERENCE_ROWS", 2)  # the head does not reach the bad row
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "1.5\n" * 5 + "1,2,3\n")  # a ragged row: the parser fails there
    stream = io.StringIO()
    with pytest.raises(ProfilingError, match="not a valid CSV file"):
        profile_file(path, chunk_rows=2, progress=Progress("p", stream), **MODEL)
    assert stream.getvalue().endswith("\n") and "100%" not in stream.getvalue()


# ---- the multi-pass path: files over the memory budget -------------------------------------


def awkward_frame(rows: int = 3001, seed: int = 1) -> pd.DataFrame:
    """Columns that stress exact quantiles: skew, heavy tails, huge outliers, ties, constants."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "normal": rng.normal(40, 12, rows).round(2),
        "heavy": rng.standard_cauchy(rows) ** 3,
        "outliers": np.concatenate([rng.random(rows - 2), [1e300, -1.7e308]]),
        "discrete": rng.integers(0, 4, rows).astype(float),
        "constant": np.full(rows, 2.5),
        "zeros": rng.choice([-0.0, 0.0, 1.0], rows),
        "huge": rng.normal(0, 1, rows) * 1e200,
        "city": rng.choice(["paris", "rome"], rows),
        "pred": rng.lognormal(0, 2, rows),
        "truth": rng.lognormal(0, 2, rows),
    })
    frame.loc[::13, "normal"] = np.nan
    frame.loc[::17, "heavy"] = np.inf
    frame.loc[::19, "pred"] = -np.inf
    return frame


REGRESSION = {"prediction_column": "pred", "target_column": "truth", "categorical": ["city"]}


def _passes_drawn(path, **options) -> tuple[str, str]:
    """The profile's bytes and the progress output, which names each extra pass."""
    stream = io.StringIO()
    profile = profile_file(path, progress=Progress("p", stream), **MODEL, **options)
    return profile.dumps(), stream.getvalue()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_over_the_budget_the_passes_give_the_same_bytes(tmp_path, suffix) -> None:
    frame = awkward_frame()
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
        frame = pd.read_csv(path)
    else:
        frame.to_parquet(path)
    in_memory = profile_data(frame, **MODEL, **REGRESSION).dumps()
    profile, drawn = _passes_drawn(path, chunk_rows=400, **REGRESSION)
    assert profile == in_memory and "(pass" not in drawn  # 3,001 rows fit in 256 MB: one pass
    for budget in (0, 0.001, 0.05):  # collect nothing / a few values / whole cells
        profile, drawn = _passes_drawn(path, chunk_rows=400, max_memory_mb=budget, **REGRESSION)
        assert profile == in_memory, budget
        assert "(pass 2, over" in drawn and "(pass 3, over" in drawn
    loaded = Profile.loads(in_memory)
    assert set(loaded.baseline_metrics) == {"mae", "rmse", "bias"}
    assert loaded.prediction.residual_edges  # type: ignore[union-attr]  # equal over passes too


def test_classifier_scores_over_the_budget(tmp_path) -> None:
    frame = training_frame()
    frame["p_yes"] = np.random.default_rng(4).random(len(frame)).round(3)
    frame["p_no"] = 1 - frame["p_yes"]
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    options = dict(KINDS, probability_columns={"yes": "p_yes", "no": "p_no"})
    expected = profile_data(pd.read_csv(path), **MODEL, **options).dumps()
    assert profile_file(path, chunk_rows=100, max_memory_mb=0, **MODEL, **options).dumps() == (
        expected)


def test_a_header_one_field_short_is_read_the_same_way_in_every_pass(tmp_path) -> None:
    # pandas takes the first field as the index here, but not when asked for a column subset.
    path = tmp_path / "implicit.csv"
    path.write_text("a,b\n0,1,2\n5,3,4\n7,5,8\n")
    expected = profile_data(pd.read_csv(path), **MODEL).dumps()
    assert profile_file(path, max_memory_mb=0, **MODEL).dumps() == expected


class _RewriteAfterFirstPass(Progress):
    """A progress bar that changes the file once the first pass is over."""

    def __init__(self, path, text: str) -> None:
        super().__init__("p", io.StringIO())
        self.path, self.text = path, text

    def finish(self) -> None:
        super().finish()
        if self.text:
            self.path.write_text(self.text)
            self.text = ""


def test_a_file_that_changes_between_passes_is_an_error_not_a_wrong_profile(tmp_path) -> None:
    path = tmp_path / "moving.csv"
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(50)))
    changed = "x\n" + "".join(f"{i}\n" for i in range(49)) + "1000\n"  # same count, other value
    with pytest.raises(ProfilingError, match="moving.csv: column 'x': the data changed between"):
        profile_file(path, max_memory_mb=0, progress=_RewriteAfterFirstPass(path, changed),
                     **MODEL)


def test_a_negative_budget_is_refused_and_an_infinite_one_means_no_limit(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x\n1\n")
    for budget in (-1, float("nan")):
        with pytest.raises(ProfilingError, match="max_memory_mb must be >= 0"):
            profile_file(path, max_memory_mb=budget, **MODEL)
    assert profile_file(path, max_memory_mb=float("inf"), **MODEL).feature("x").count == 1


cells = st.one_of(st.floats(), st.integers(-5, 5).map(float),
                  st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(
    frame=float_frames(cells, 60),
    bins=st.integers(2, 12),
    chunk_rows=st.integers(1, 25),
    budget=st.sampled_from([0, 0.0002]),
)
def test_any_file_gives_the_same_bytes_in_memory_and_in_passes(
    tmp_path, frame, bins, chunk_rows, budget
) -> None:
    path = tmp_path / "any.parquet"  # Parquet keeps every float bit, -0.0 and 5e-324 included
    frame.to_parquet(path)
    try:
        expected = profile_data(frame, **MODEL, bins=bins, numeric=["a", "b"]).dumps()
    except ProfilingError as exc:  # a column with no finite value: the same error either way
        with pytest.raises(ProfilingError, match=re.escape(str(exc))):
            profile_file(path, chunk_rows=chunk_rows, max_memory_mb=budget, bins=bins,
                         numeric=["a", "b"], **MODEL)
        return
    got = profile_file(path, chunk_rows=chunk_rows, max_memory_mb=budget, bins=bins,
                       numeric=["a", "b"], **MODEL)
    assert got.dumps() == expected


# Every proxy pool a measurement used stays referenced: pyarrow crashes when a pool is freed
# before the buffers it allocated.
_POOLS: list[pa.MemoryPool] = []


def _peak_bytes(path, **options) -> int:
    """Peak bytes while profiling: numpy and Python allocations (tracemalloc) plus pyarrow's,
    which tracemalloc does not see (a proxy of its memory pool counts them)."""
    default = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default)
    _POOLS.append(pool)
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        profile_file(path, chunk_rows=5_000, **MODEL, **options)
        return tracemalloc.get_traced_memory()[1] + pool.max_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(default)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_memory_over_the_budget_does_not_grow_with_the_rows(tmp_path, monkeypatch, suffix) -> None:
    # Kinds come from a head of INFERENCE_ROWS rows read whole: a fixed bound, which a file of
    # fewer rows does not reach. Both files here are past it, so only the streaming can grow.
    monkeypatch.setattr(profiling, "INFERENCE_ROWS", 5_000)
    rng = np.random.default_rng(9)
    paths = []
    for rows in (40_000, 160_000):
        path = tmp_path / f"rows{rows}{suffix}"
        frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(4)})
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            # pyarrow decodes a column a page at a time (1 MiB pages and a dictionary page by
            # default): small plain pages, so that both files are past that bound too.
            frame.to_parquet(path, data_page_size=1 << 16, use_dictionary=False)
        paths.append(path)
    kept = [_peak_bytes(path) for path in paths]  # in memory: 8 bytes per value are kept
    assert kept[1] - kept[0] > 0.8 * 120_000 * 4 * 8
    streamed = [_peak_bytes(path, max_memory_mb=0.25) for path in paths]
    assert streamed[1] - streamed[0] < 0.1 * (kept[1] - kept[0]), (streamed, kept)
    assert streamed[1] < kept[1] / 2


def test_reading_the_head_holds_its_rows_twice_at_most(tmp_path) -> None:
    # With pandas 2 a dtype mapping, even an empty one, made the CSV parser hold the head's
    # rows five times over (tracemalloc); a file of up to INFERENCE_ROWS rows is read whole.
    from mlmon.profiling.files import read_head

    path = tmp_path / "head.csv"
    rng = np.random.default_rng(3)
    pd.DataFrame({f"x{i}": rng.normal(size=20_000) for i in range(4)}).to_csv(path, index=False)
    tracemalloc.start()
    try:
        head = read_head(path, profiling.INFERENCE_ROWS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(head) == 20_000
    assert peak < 3 * head.memory_usage(deep=True).sum()


# ---- file_columns: a file's column names, without reading its rows ---------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_columns_reads_the_header_or_schema_alone(tmp_path, suffix) -> None:
    from mlmon.profiling.files import file_columns, read_chunks

    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame({"request id": ["007"], "y": [1.5], "2": ["x"]})
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    assert file_columns(path) == ["request id", "y", "2"]
    assert file_columns(str(path)) == list(next(iter(read_chunks(path, 1, ()))).columns)
    # no rows: still its columns (reading the rows is what refuses it)
    empty = tmp_path / f"empty{suffix}"
    if suffix == ".csv":
        empty.write_text("request id,y,2\n", encoding="utf-8")
    else:
        frame.iloc[:0].to_parquet(empty, index=False)
    assert file_columns(empty) == ["request id", "y", "2"]
    with pytest.raises(ProfilingError, match="no data rows"):
        next(iter(read_chunks(empty, 1, ())))


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "cannot read: No such file or directory"),
    ("missing.parquet", None, "cannot read: no such file"),
    ("empty.csv", b"", "the file is empty"),
    ("latin1.csv", b"id,caf\xe9\n1,2\n", "not UTF-8 text: byte 0xe9 at offset 6 (line 1)"),
    ("text.parquet", b"id,y\n1,2\n", "not a valid Parquet file: "),
    ("labels.xlsx", b"PK", "unsupported file type '.xlsx'; use .csv or .parquet"),
])
def test_file_columns_errors_are_one_readable_line(tmp_path, name, content, message) -> None:
    from mlmon.profiling.files import file_columns, read_chunks

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ProfilingError) as raised:
        file_columns(path)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    with pytest.raises(ProfilingError) as read:  # the same reason as reading the rows gives
        next(iter(read_chunks(path, 1, ())))
    assert str(read.value) == str(raised.value)
