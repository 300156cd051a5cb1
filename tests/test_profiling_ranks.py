"""Order statistics found over passes equal np.quantile(method="inverted_cdf"), for any data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmon.profiling.ranks import OrderStatistics, key_value, quantile_ranks, sort_keys

TINY = 5e-324
BIG = float(np.finfo(np.float64).max)


def test_ranks_are_the_ones_numpy_picks() -> None:
    for bins in (2, 3, 7, 10, 13, 100):
        q = np.arange(1, bins) / bins
        for n in range(1, 1200):
            expected = np.quantile(np.arange(n), q, method="inverted_cdf")
            assert quantile_ranks(n, bins) == list(expected), (n, bins)


def test_sort_keys_follow_float_order_and_map_back() -> None:
    values = np.array([-BIG, -1.0, -TINY, -0.0, 0.0, TINY, 1.0, BIG])
    keys = sort_keys(values)
    assert (np.diff(keys) >= 0).all() and keys[3] == keys[4]  # -0.0 is 0.0
    assert [key_value(int(k)) for k in keys] == [-BIG, -1.0, -TINY, 0.0, 0.0, TINY, 1.0, BIG]


def _passes(values: np.ndarray, bins: int, collect_at_most: int, cells: int, piece: int):
    ranks = quantile_ranks(values.size, bins)
    stats = OrderStatistics(values.size, float(values.min()), float(values.max()), ranks)
    passes = 0
    while not stats.done:
        stats.begin([count <= collect_at_most for count in stats.pending_counts()], cells)
        for start in range(0, values.size, piece):
            stats.add(values[start:start + piece])
        stats.end()
        passes += 1
    return stats, ranks, passes


def _check(values: np.ndarray, bins: int, collect_at_most: int, cells: int, piece: int) -> int:
    stats, ranks, passes = _passes(values, bins, collect_at_most, cells, piece)
    expected = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf") + 0.0
    assert [stats.values[r] for r in ranks] == list(expected)
    for edge in np.unique(expected):
        assert stats.at_most[float(edge)] == int(np.sum(values <= edge))
    return passes


@pytest.mark.parametrize("collect_at_most, cells", [(0, 2), (0, 16), (40, 64), (10**9, 4096)])
def test_skewed_discrete_and_constant_data(collect_at_most, cells) -> None:
    rng = np.random.default_rng(11)
    samples = [
        rng.normal(size=3000),
        rng.standard_cauchy(3000) ** 3,  # heavy tails
        np.concatenate([rng.random(2998), [1e300, -BIG]]),  # huge outliers
        rng.integers(-3, 4, 3000).astype(float),  # discrete
        np.full(500, 2.5),
        rng.choice([-0.0, 0.0, TINY, -TINY, 1.0], 3000),  # signed zeros, denormals
    ]
    for values in samples:
        _check(values, 10, collect_at_most, cells, piece=777)


def test_passes_are_bounded_however_skewed_the_data() -> None:
    # Every value in its own binade: equal-width value cells would need a pass per binade.
    values = np.concatenate([2.0 ** np.arange(-1000, 1000, 7), -(2.0 ** np.arange(-900, 1000, 3))])
    passes = _check(values, 10, collect_at_most=0, cells=16, piece=100)
    assert passes <= 1 + 64 // 4  # a value-space pass, then key cells shrinking 16x per pass


def test_one_pass_when_everything_fits() -> None:
    values = np.random.default_rng(3).normal(size=5000)
    assert _check(values, 10, collect_at_most=5000, cells=4096, piece=1000) == 1
    assert _passes(np.full(9, 7.0), 10, 0, 16, 4)[2] == 0  # a single value needs no pass


@settings(max_examples=120, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
    bins=st.integers(2, 15),
    collect_at_most=st.integers(0, 50),
    cells=st.integers(2, 40),
    piece=st.integers(1, 64),
)
def test_any_finite_data(values, bins, collect_at_most, cells, piece) -> None:
    _check(np.array(values), bins, collect_at_most, cells, piece)
