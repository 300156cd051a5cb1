"""Profiles built from in-memory data, checked against numpy and collections.Counter."""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from mlmon.exporter.profile import CategoricalFeature, NumericFeature, Profile, TextFeature
from mlmon.profiling import ProfilingError, profile_data

MODEL = {"model_name": "churn", "model_version": "3"}


def _profile(data, **options) -> Profile:
    return profile_data(data, **MODEL, **options)


def _le_shares(values: np.ndarray, edges: tuple[float, ...]) -> list[float]:
    """Shares of (lo, hi] bins, counted directly (independent of searchsorted)."""
    bounds = [-np.inf, *edges, np.inf]
    return [float(np.sum((values > lo) & (values <= hi))) / values.size
            for lo, hi in pairwise(bounds)]


def test_numeric_edges_and_shares_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 3.0, 5000)
    x[::50] = np.nan
    feature = _profile({"x": x}).feature("x")
    finite = x[~np.isnan(x)]
    expected_edges = np.unique(np.quantile(finite, np.arange(1, 10) / 10, method="inverted_cdf"))
    assert isinstance(feature, NumericFeature)
    assert feature.binned.edges == tuple(expected_edges)
    assert len(feature.binned.edges) == 9
    assert feature.binned.bin_shares == pytest.approx(_le_shares(finite, feature.binned.edges),
                                                      abs=1e-15)
    assert abs(sum(feature.binned.bin_shares) - 1.0) < 1e-6
    assert feature.count == finite.size == 4900
    assert feature.null_rate == 100 / 5000
    assert (feature.binned.min, feature.binned.max) == (finite.min(), finite.max())
    assert feature.binned.mean == pytest.approx(np.mean(finite), rel=1e-12)
    assert feature.binned.std == pytest.approx(np.std(finite), rel=1e-12)
    width = finite.max() - finite.min()
    assert feature.allowed_range == pytest.approx(
        (finite.min() - 0.1 * width, finite.max() + 0.1 * width), rel=1e-12)


def test_discrete_values_get_one_edge_per_value_with_counter_shares() -> None:
    values = [1] * 50 + [2] * 30 + [3] * 20
    feature = _profile({"n": np.array(values)}).feature("n")
    counts = Counter(values)
    assert feature.binned.edges == (1.0, 2.0, 3.0)
    assert feature.binned.bin_shares[:3] == tuple(counts[v] / 100 for v in (1, 2, 3))
    assert feature.binned.bin_shares[3] == 0.0


def test_constant_column_has_one_edge_and_a_point_range() -> None:
    feature = _profile({"c": [7.5] * 10}).feature("c")
    assert feature.binned.edges == (7.5,)
    assert feature.binned.bin_shares == (1.0, 0.0)
    assert feature.allowed_range == (7.5, 7.5)


def test_bins_option_sets_the_number_of_quantile_edges() -> None:
    x = np.arange(1000.0)
    assert len(_profile({"x": x}, bins=4).feature("x").binned.edges) == 3
    assert len(_profile({"x": x}, bins=20).feature("x").binned.edges) == 19


def test_infinities_are_left_out_of_the_distribution_and_counted_as_null() -> None:
    feature = _profile({"x": [1.0, 2.0, np.inf, -np.inf, np.nan, 3.0]}).feature("x")
    assert feature.count == 3
    assert feature.null_rate == 3 / 6
    assert feature.binned.max == 3.0


def test_huge_finite_values_keep_every_statistic_finite() -> None:
    feature = _profile({"x": [-1.7e308, 1.7e308, 1.0]}).feature("x")
    assert np.isfinite([feature.binned.mean, feature.binned.std, *feature.allowed_range]).all()
    assert feature.allowed_range[0] <= -1.7e308 and feature.allowed_range[1] >= 1.7e308


def test_categorical_shares_match_counter_with_ties_broken_by_name() -> None:
    rng = np.random.default_rng(2)
    names = [f"c{i:02d}" for i in range(30)]
    values = list(rng.choice(names, 3000)) + ["tie_b"] * 7 + ["tie_a"] * 7
    values += [None, np.nan, ""]
    feature = _profile({"city": values}, top_k=5, categorical=["city"]).feature("city")
    counts = Counter(v for v in values if isinstance(v, str) and v)
    total = sum(counts.values())
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert isinstance(feature, CategoricalFeature)
    assert feature.top_categories == tuple(k for k, _ in expected)
    assert feature.top_shares == tuple(c / total for _, c in expected)
    assert feature.other_share == pytest.approx(1 - sum(c for _, c in expected) / total, abs=1e-15)
    assert feature.seen == tuple(sorted(counts))
    assert feature.count == total and feature.null_rate == 3 / len(values)
    assert feature.allowed is None


def test_top_k_ties_are_broken_by_name() -> None:
    feature = _profile({"k": ["b"] * 5 + ["a"] * 5 + ["c"] * 3}, top_k=2).feature("k")
    assert feature.top_categories == ("a", "b")
    assert feature.other_share == 3 / 13


def test_seen_is_capped_to_the_most_frequent_categories() -> None:
    values = ["a"] * 4 + ["z"] * 3 + ["m"] * 2 + ["b"]
    feature = _profile({"k": values}, top_k=1, max_seen_categories=3).feature("k")
    assert feature.seen == ("a", "m", "z")
    assert feature.top_categories == ("a",)


def test_category_values_are_canonicalised_like_live_values() -> None:
    values = pd.Series([3, 3.0, "3", True, 1, False, 2.5], dtype=object)
    feature = _profile({"k": values}, categorical=["k"]).feature("k")
    shares = dict(zip(feature.top_categories, feature.top_shares, strict=True))
    assert shares == {"3": 3 / 7, "1": 1 / 7, "true": 1 / 7, "false": 1 / 7, "2.5": 1 / 7}


def test_explicit_allowed_categories_are_canonical_and_sorted() -> None:
    feature = _profile({"k": ["a", "b"]}, allowed_categories={"k": ["z", 3, "a", "z"]}).feature("k")
    assert feature.allowed == ("3", "a", "z")


def test_text_vocabulary_and_oov_rate_match_a_direct_count() -> None:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(words, 12)) + ", THE End!" for _ in range(500)] + [None, ""]
    feature = _profile({"review": texts}, text=["review"], vocabulary_size=10).feature("review")
    tokens = [t for text in texts if text for t in re.findall(r"\w+", text.lower())]
    counts = Counter(tokens)
    expected = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    assert isinstance(feature, TextFeature)
    assert feature.vocabulary == tuple(expected)
    assert feature.vocabulary[:2] == ("end", "the")  # every text has them: most frequent first
    oov = sum(1 for t in tokens if t not in set(expected))
    assert feature.oov_rate == oov / len(tokens)
    assert feature.count == 500 and feature.null_rate == 2 / 502


def test_allowed_range_override_and_margin() -> None:
    p = _profile({"a": [0.0, 10.0], "b": [0.0, 10.0]}, allowed_ranges={"a": (-1, 100)},
                 range_margin=0.5)
    assert p.feature("a").allowed_range == (-1.0, 100.0)
    assert p.feature("b").allowed_range == (-5.0, 15.0)


def test_same_data_and_options_give_identical_bytes() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=2000), "k": rng.choice(list("abc"), 2000),
                          "y": rng.normal(size=2000)})
    first = _profile(frame, prediction_column="y", trained_at="2026-10-01")
    second = _profile(frame.copy(), prediction_column="y", trained_at="2026-10-01")
    assert first.dumps() == second.dumps()
    assert first.sha == second.sha
    assert Profile.loads(first.dumps()).dumps() == first.dumps()


def test_input_forms_give_the_same_profile() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(300, 3))
    predictions = rng.normal(size=300)
    from_array = _profile(matrix, feature_names=["a", "b", "c"], predictions=predictions)
    from_dict = _profile({"a": matrix[:, 0], "b": matrix[:, 1], "c": matrix[:, 2]},
                         predictions=list(predictions))
    from_frame = _profile(pd.DataFrame(matrix, columns=["a", "b", "c"], index=range(5, 305)),
                          predictions=pd.Series(predictions))
    assert from_array.dumps() == from_dict.dumps() == from_frame.dumps()
    assert [f.name for f in _profile(matrix).features] == ["x0", "x1", "x2"]


def test_trained_at_is_normalised_to_utc() -> None:
    assert _profile({"x": [1.0]}, trained_at="2026-10-01T02:00:00+02:00").trained_at == (
        "2026-10-01T00:00:00Z")
    assert _profile({"x": [1.0]}, trained_at="2026-10-01").trained_at == "2026-10-01T00:00:00Z"
    with pytest.raises(ProfilingError, match="trained_at"):
        _profile({"x": [1.0]}, trained_at="yesterday")


@pytest.mark.parametrize(
    "data, options, message",
    [
        ({"x": [None, None]}, {}, "column 'x': every value is null"),
        ({"x": [np.nan, np.nan]}, {}, "column 'x': every value is null"),
        ({"x": [np.inf, -np.inf, None]}, {}, r"column 'x': no finite value \(2 infinite, 1 null\)"),
        ({"t": ["a b", "c"]}, {"numeric": ["t"]},
         "column 't': 'a b' \\(row 1\\), 'c' \\(row 2\\) are not numbers \\(2 of its 2"),
        ({"x": [1.0]}, {"categorical": ["nope"]}, "categorical names column 'nope'"),
        ({"x": [1.0]}, {"prediction_column": "y"}, "prediction_column names column 'y'"),
        ({"x": [1.0], "y": [1]}, {"numeric": ["x"], "categorical": ["x"]}, "in both"),
        ({"x": [1.0]}, {"bins": 1}, "bins must be"),
        ({"x": [1.0]}, {"colour": "red"}, "bad option"),
        ({"x": [True, False]}, {"numeric": ["x"]}, "booleans"),
        ({"x": [1.0]}, {"allowed_ranges": {"x": (2, 1)}}, "low <= high"),
        ({"x": [1.0]}, {"allowed_categories": {"x": ["a"]}}, "not categorical"),
        ({"x": []}, {}, "no data rows"),
        ({"x": [1.0], "y": [1.0]}, {"exclude": ["x", "y"]}, "no feature columns"),
    ],
)
def test_bad_data_raises_one_clear_error(data, options, message) -> None:
    with pytest.raises(ProfilingError, match=message):
        _profile(data, **options)


def test_unsupported_inputs_are_refused() -> None:
    with pytest.raises(ProfilingError, match="2-D array"):
        _profile(np.arange(3))
    with pytest.raises(ProfilingError, match="equal lengths"):
        _profile({"a": [1, 2], "b": [1]})
    with pytest.raises(ProfilingError, match="3 values for 2 rows"):
        _profile({"a": [1, 2]}, predictions=[1, 2, 3])
    with pytest.raises(ProfilingError, match="dates"):
        _profile({"d": pd.to_datetime(["2026-01-01", "2026-01-02"])})
