"""Sums, means and standard deviations that are the same bits whether data is whole or streamed.

numpy sums a contiguous float64 array by pairwise summation: an array of more than 128 values is
split at `n // 2` rounded down to a multiple of 8 and both halves are summed the same way. The
tree depends only on `n`, so once `n` is known the values can arrive in any pieces: `PairwiseSum`
cuts them into the tree's subtrees of at most `LEAF` values, sums each with `np.add.reduce` (which
walks that subtree exactly as it would inside the whole array) and adds the subtree sums up the
tree. Both the in-memory and the streamed profile use this, so they agree byte for byte; with
today's numpy it also equals `np.sum`, `np.mean` and `np.std` of the whole array bit for bit
(tested), so profiles keep the bytes they had when numpy computed them directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

LEAF = 16_384  # values per subtree summed by numpy; any size >= _BLOCK gives the same result
_BLOCK = 128  # numpy sums up to this many values without splitting them
# Above this magnitude, squares (for the std) could overflow float64: scale first.
SCALE_ABOVE = 1e150


def leaf_sizes(n: int, leaf: int = LEAF) -> list[int]:
    """Sizes, in order, of the subtrees of at most `leaf` values in numpy's tree over n values."""
    if leaf < _BLOCK:
        raise ValueError(f"leaf must be >= {_BLOCK}: numpy does not split smaller subtrees")
    sizes: list[int] = []
    stack = [n]
    while stack:
        size = stack.pop()
        if size <= leaf:
            sizes.append(size)
            continue
        half = size // 2
        half -= half % 8
        stack += [size - half, half]  # the left half is popped (and emitted) first
    return sizes


def _combine(n: int, sums: Iterator[float], leaf: int) -> float:
    """The subtree sums added up numpy's tree, left + right at every node."""
    if n <= leaf:
        return next(sums)
    half = n // 2
    half -= half % 8
    left = _combine(half, sums, leaf)
    return left + _combine(n - half, sums, leaf)


class PairwiseSum:
    """numpy's sum of `n` float64 values that arrive in pieces, in order.

    >>> total = PairwiseSum(5)
    >>> total.add(np.array([1.0, 2.0])); total.add(np.array([3.0, 4.0, 5.0]))
    >>> total.result()
    15.0
    """

    def __init__(self, n: int, leaf: int = LEAF) -> None:
        self.n, self._leaf = n, leaf
        self._sizes = leaf_sizes(n, leaf) if n else []
        self._sums: list[float] = []
        self._pending: list[np.ndarray] = []  # the start of the current subtree
        self._pending_n = 0

    def add(self, values: np.ndarray) -> None:
        start = 0
        while start < values.size:
            if len(self._sums) >= len(self._sizes):
                raise ValueError(f"more than the {self.n} values announced")
            need = self._sizes[len(self._sums)] - self._pending_n
            piece = values[start:start + need]
            start += piece.size
            if piece.size < need:
                self._pending.append(piece.copy())
                self._pending_n += piece.size
                return
            if self._pending:
                piece = np.concatenate([*self._pending, piece])
                self._pending, self._pending_n = [], 0
            self._sums.append(float(np.add.reduce(piece)))

    def result(self) -> float:
        if len(self._sums) != len(self._sizes):
            raise ValueError(f"{self.n} values announced, fewer added")
        return _combine(self.n, iter(self._sums), self._leaf) if self.n else 0.0


def pairwise_sum(values: np.ndarray) -> float:
    """np.sum of a 1-D float64 array, computed the streamable way."""
    total = PairwiseSum(values.size)
    total.add(values)
    return total.result()


def scale_of(low: float, high: float) -> float:
    """What to divide values by before squaring them: 1.0 unless they are huge."""
    scale = max(abs(low), abs(high))
    return scale if scale > SCALE_ABOVE else 1.0


class Moments:
    """Mean and population std as np.mean and np.std compute them, over two passes.

    Pass 1 feeds every value to `add_first` (the sum, hence the mean); pass 2 feeds the same
    values in the same order to `add_second` (the squared deviations from that mean). Values
    above SCALE_ABOVE in magnitude are divided by the largest magnitude first, as before.
    """

    def __init__(self, n: int, low: float, high: float) -> None:
        self.n = n
        self.scale = scale_of(low, high)
        self._first = PairwiseSum(n)
        self._second = PairwiseSum(n)
        self._mean: float | None = None  # of the scaled values

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        return values / self.scale if self.scale != 1.0 else values

    def add_first(self, values: np.ndarray) -> None:
        self._first.add(self._scaled(values))

    def end_first(self) -> None:
        self._mean = self._first.result() / self.n

    def add_second(self, values: np.ndarray) -> None:
        assert self._mean is not None, "end_first() comes before add_second()"
        deviations = self._scaled(values) - self._mean
        self._second.add(deviations * deviations)

    def result(self) -> tuple[float, float]:
        """(mean, std); the std is sqrt(sum of squared deviations / n), as np.std."""
        assert self._mean is not None
        std = math.sqrt(self._second.result() / self.n)
        if self.scale == 1.0:
            return self._mean, std
        return self._mean * self.scale, std * self.scale


def moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and population std of finite values in memory: the same bits as the streamed ones."""
    low, high = float(values.min()), float(values.max())
    result = Moments(values.size, low, high)
    result.add_first(values)
    result.end_first()
    result.add_second(values)
    return result.result()
