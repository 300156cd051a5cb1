"""`mlmon profile` through mlmon.cli.main: output files, the summary line, one-line errors."""

from __future__ import annotations

import json

import pytest

from mlmon.cli import main
from mlmon.exporter.profile import SCHEMA_VERSION, Profile, ProfileError
from mlmon.profiling import profile_data
from tests.test_profiling_files import training_frame

BASE = ["--model", "churn", "--model-version", "3"]


@pytest.fixture
def train_csv(tmp_path):
    path = tmp_path / "train.csv"
    training_frame().to_csv(path, index=False)
    return path


def test_profile_csv_writes_the_profile_and_a_summary(train_csv, tmp_path, capsys) -> None:
    out = tmp_path / "profile.json"
    code = main(["profile", str(train_csv), *BASE, "--prediction-column", "churn",
                 "--categorical", "city", "--bins", "5", "--top-k", "2",
                 "--trained-at", "2026-10-01T00:00:00Z", "--metric", "accuracy=0.91",
                 "--allowed-range", "age=0:120", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    profile = Profile.load(out)
    assert [(f.name, f.kind) for f in profile.features] == [
        ("age", "numeric"), ("visits", "numeric"), ("city", "categorical"), ("review", "text")]
    assert profile.options.bins == 5 and len(profile.feature("age").binned.edges) == 4
    assert profile.feature("city").top_categories.__len__() == 2
    assert profile.feature("age").allowed_range == (0.0, 120.0)
    assert profile.baseline_metrics == {"accuracy": 0.91}
    assert profile.trained_at == "2026-10-01T00:00:00Z"
    assert captured.out == (
        f"wrote {out}: 997 rows, 4 features (2 numeric, 1 categorical, 1 text), "
        f"prediction classification, sha {profile.sha}\n"
    )
    assert captured.err == ""  # no progress bar when stderr is not a terminal


def test_profile_parquet_matches_the_python_api(tmp_path, capsys) -> None:
    frame = training_frame()
    path, out = tmp_path / "train.parquet", tmp_path / "p.json"
    frame.to_parquet(path)
    assert main(["profile", str(path), *BASE, "--prediction-column", "churn", "-o", str(out)]) == 0
    expected = profile_data(frame, model_name="churn", model_version="3",
                            prediction_column="churn")
    assert out.read_text() == expected.dumps()


def test_two_runs_write_identical_bytes(train_csv, tmp_path) -> None:
    outputs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outputs:
        assert main(["profile", str(train_csv), *BASE, "--chunk-rows", "100", "-o", str(out)]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()


def test_a_small_memory_budget_writes_the_same_bytes_in_passes(train_csv, tmp_path, capsys) -> None:
    outputs = [tmp_path / "default.json", tmp_path / "passes.json"]
    assert main(["profile", str(train_csv), *BASE, "-o", str(outputs[0])]) == 0
    assert main(["profile", str(train_csv), *BASE, "--max-memory-mb", "0.001", "--progress",
                 "-o", str(outputs[1])]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert "(pass 3, over 0.001 MB)" in capsys.readouterr().err


def test_a_byte_that_is_not_utf8_is_located_in_the_file(tmp_path, capsys) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"city,x\nparis,1\nz\xfcrich,2\n")
    assert main(["profile", str(path), *BASE, "-o", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err == (f"mlmon profile: error: {path}: not UTF-8 text: byte 0xfc at offset 16 "
                   "(line 3): invalid start byte\n")


def test_progress_flag_draws_a_bar_on_stderr(train_csv, tmp_path, capsys) -> None:
    assert main(["profile", str(train_csv), *BASE, "--progress", "-o",
                 str(tmp_path / "p.json")]) == 0
    assert capsys.readouterr().err.endswith("100% 997 rows\n")


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name, content, extra, message",
    [
        ("empty.csv", "", [], "empty.csv: the file is empty"),
        ("header.csv", "a,b\n", [], "header.csv: no data rows"),
        ("nulls.csv", "a,b\n1,\n2,\n", [], "nulls.csv: column 'b': every value is null"),
        ("inf.csv", "a,b\n1,inf\n2,-inf\n", [], "inf.csv: column 'b': no finite value (2 infinite"),
        ("inf.csv", "a,b\n1,inf\n2,-inf\n", ["--max-memory-mb", "0"],
         "column 'b': no finite value"),
        ("t.csv", "a,b\n1,2\n", ["--max-memory-mb", "-1"], "t.csv: --max-memory-mb must be >= 0"),
        ("text.csv", "a,b\n1,hello world\n", ["--numeric", "b"],
         "text.csv: column 'b': 'hello world' (row 1) is not a number (1 of its 1"),
        ("t.csv", "a,b\n1,2\n", ["--prediction-column", "y"],
         "t.csv: --prediction-column names column 'y', which is not in the data (columns: a, b)"),
        ("t.csv", "a,b\n1,2\n", ["--categorical", "zz"], "t.csv: --categorical names column 'zz'"),
        ("t.csv", "a,b\n1,2\n", ["--text", "zz"], "t.csv: --text names column 'zz'"),
        ("t.csv", "a,b\n1,2\n", ["--exclude", "zz"], "t.csv: --exclude names column 'zz'"),
        ("t.csv", "a,b\n1,2\n", ["--target-column", "zz"], "t.csv: --target-column names column"),
        ("t.csv", "a,b\n1,2\n", ["--allowed-range", "zz=0:1"], "--allowed-range names column 'zz'"),
        ("t.csv", "a,b\n1,2\n", ["--allowed-range", "a=0-1"], "--allowed-range a: expected LOW"),
        ("t.csv", "a,b\n1,2\n", ["--trained-at", "soon"], "--trained-at: 'soon' is not an ISO"),
        ("t.csv", "a,b\n1,2\n", ["--metric", "mae"], "--metric: expected NAME=VALUE"),
        ("t.csv", "a,b\n1,2\n", ["--bins", "1"], "t.csv: --bins must be an integer >= 2"),
        ("t.csv", "a,b\n1,2\n", ["--top-k", "30", "--max-seen-categories", "10"],
         "t.csv: --top-k must not exceed --max-seen-categories"),
        ("t.csv", "a,b\n1,2\n", ["--categorical", "a", "--numeric", "a"],
         "t.csv: column 'a' is in both --categorical and --numeric"),
        ("t.csv", "a,b\n1,2\n", ["--chunk-rows", "0"], "t.csv: --chunk-rows must be >= 1"),
        ("t.csv", "a,b\n1,2\n", ["--allowed", "a=x"],
         "t.csv: --allowed: column 'a' is not categorical"),
        ("ragged.csv", "a,b\n1,2\n1,2,3,4\n", [], "ragged.csv: not a valid CSV file"),
        ("bad.parquet", "not parquet", [], "bad.parquet: not a valid Parquet file"),
        ("data.json", "{}", [], "data.json: unsupported file type '.json'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, name, content, extra, message) -> None:
    path = _write(tmp_path, name, content)
    code = main(["profile", str(path), *BASE, *extra, "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mlmon profile: error: ")
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("target", ["missing.csv", "."])
def test_unreadable_file(tmp_path, capsys, monkeypatch, target) -> None:
    monkeypatch.chdir(tmp_path)
    if target == ".":
        (tmp_path / "dir.csv").mkdir()
        target = "dir.csv"
    assert main(["profile", target, *BASE, "-o", "p.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlmon profile: error: {target}: cannot read: ")
    assert err.count("\n") == 1


def test_unwritable_output_is_one_line(train_csv, tmp_path, capsys) -> None:
    out = tmp_path / "no" / "such" / "dir.json"
    assert main(["profile", str(train_csv), *BASE, "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"mlmon profile: error: {out}: cannot write")


def test_corrupt_or_newer_profiles_are_refused_naming_the_file(train_csv, tmp_path) -> None:
    out = tmp_path / "p.json"
    assert main(["profile", str(train_csv), *BASE, "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=f"{newer}: profile schema_version 2 is newer"):
        Profile.load(newer)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(out.read_text()[:200])
    with pytest.raises(ProfileError, match=f"{corrupt}: not a profile: invalid JSON"):
        Profile.load(corrupt)


def test_classifier_options_from_the_command_line(tmp_path) -> None:
    frame = training_frame()
    frame["p_yes"] = (frame["visits"] / 30).round(3)
    frame["p_no"] = 1 - frame["p_yes"]
    path, out = tmp_path / "train.csv", tmp_path / "p.json"
    frame.to_csv(path, index=False)
    assert main(["profile", str(path), *BASE, "--prediction-column", "churn",
                 "--probability-columns", "yes=p_yes,no=p_no", "--allowed", "city=rome,paris",
                 "--exclude", "visits", "-o", str(out)]) == 0
    profile = Profile.load(out)
    assert [f.name for f in profile.features] == ["age", "city", "review"]
    assert profile.feature("city").allowed == ("paris", "rome")
    chosen = frame["p_yes"].where(frame["churn"] == "yes", frame["p_no"])
    assert profile.prediction.score.max == chosen.max()
    assert profile.prediction.score.min == chosen.min()


def test_a_typo_in_a_numeric_column_is_a_warning_naming_the_row_and_the_flag(
        tmp_path, capsys) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("age,y\n" + "".join(
        f"{'abc' if row == 301 else 20 + row % 50},{row % 7}\n" for row in range(1, 1001)))
    out = tmp_path / "p.json"
    assert main(["profile", str(path), *BASE, "--prediction-column", "y", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err == (f"mlmon profile: warning: {path}: column 'age': 'abc' (row 301) is not a "
                   "number (1 of its 1,000 non-null values, 0.10%): counted as nulls (a numeric "
                   "column may have up to 1%); fix them, or profile the column as categories "
                   "with --categorical age\n")
    assert Profile.load(out).feature("age").kind == "numeric"
