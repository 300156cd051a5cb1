"""Streamed sums, means and stds are numpy's, bit for bit, however the values are cut up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmon.profiling.sums import LEAF, Moments, PairwiseSum, leaf_sizes, moments, pairwise_sum


def _pieces(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    bounds = sorted({0, values.size, *(c % (values.size + 1) for c in cuts)})
    return [values[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def test_leaf_sizes_cover_the_values_in_subtrees_of_at_most_a_leaf() -> None:
    for n in (1, 7, 128, 129, 16_384, 16_385, 1_000_003):
        sizes = leaf_sizes(n)
        assert sum(sizes) == n and max(sizes) <= LEAF
    assert leaf_sizes(300, leaf=128) == [72, 72, 72, 84]  # 300 -> 144 + 156 -> (72, 72), (72, 84)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 127, 128, 129, 1000, 16_385, 40_000, 300_007])
def test_sum_mean_and_std_equal_numpy_bit_for_bit(n) -> None:
    rng = np.random.default_rng(n)
    for values in (rng.normal(3, 2, n), rng.standard_cauchy(n) * 1e6, rng.normal(0, 1, n) * 1e200):
        assert pairwise_sum(values) == float(np.sum(values))
        mean, std = moments(values)
        scale = float(np.max(np.abs(values)))
        if scale <= 1e150:  # how profiles computed them before: np.mean / np.std directly
            assert (mean, std) == (float(np.mean(values)), float(np.std(values)))
        else:
            scaled = values / scale
            assert (mean, std) == (float(np.mean(scaled) * scale), float(np.std(scaled) * scale))
            assert np.isfinite([mean, std]).all()


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=700),
    cuts=st.lists(st.integers(0, 700), max_size=6),
    leaf=st.sampled_from([128, 200, 1000]),
)
def test_any_cut_of_any_values_gives_the_same_bits(values, cuts, leaf) -> None:
    array = np.array(values)
    total = PairwiseSum(array.size, leaf=leaf)
    for piece in _pieces(array, cuts):
        total.add(piece)
    assert total.result() == float(np.sum(array))
    streamed = Moments(array.size, float(array.min()), float(array.max()))
    for piece in _pieces(array, cuts):
        streamed.add_first(piece)
    streamed.end_first()
    for piece in _pieces(array, cuts[::-1]):
        streamed.add_second(piece)
    assert streamed.result() == moments(array)


def test_a_leaf_numpy_would_not_split_is_refused() -> None:
    with pytest.raises(ValueError, match="leaf must be >= 128"):
        PairwiseSum(10, leaf=64)


def test_more_or_fewer_values_than_announced_are_refused() -> None:
    total = PairwiseSum(3)
    total.add(np.ones(2))
    with pytest.raises(ValueError, match="fewer"):
        total.result()
    with pytest.raises(ValueError, match="more than the 3"):
        total.add(np.ones(2))
