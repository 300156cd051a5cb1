"""Exact order statistics of more values than memory holds, found over repeated passes.

`np.quantile(values, q, method="inverted_cdf")` is the value of rank `quantile_ranks(n, q)` in
sorted order. `OrderStatistics` finds those values without keeping the data: each pass over the
data either counts the values of a *region* (a range of values known to hold wanted ranks) in
histogram cells, which narrows the region to the cells holding the ranks, or, when the region is
small enough, collects its values and sorts them. Regions are ranges of *sort keys*, the float64
bit patterns made monotonic, so a cell's key range shrinks by the number of cells per pass: at
most ceil(64 / log2(cells)) histogram passes reach single values however skewed the data. The
first histogram has equal-width cells in value space, which suits ordinary data best.

It also gives, for each such value, how many values are <= it: the reference bin counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CELLS = 4096  # histogram cells per region and pass, at most
_LOW_63 = np.int64(0x7FFF_FFFF_FFFF_FFFF)


def quantile_ranks(n: int, bins: int) -> list[int]:
    """0-based ranks of the `i / bins` quantiles (i = 1 .. bins-1) of n values, as numpy picks
    them for method="inverted_cdf": the same float arithmetic, so the same ranks."""
    index = n * (np.arange(1, bins) / bins) - 1
    previous = np.floor(index)
    ranks = np.where(index - previous == 0, previous, previous + 1).astype(np.intp)
    ranks[ranks < 0] = 0
    return [int(r) for r in ranks]


def sort_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys in the order of the finite float64 `values` (-0.0 is taken as 0.0)."""
    bits = (values + 0.0).view(np.int64)
    # negative floats: reverse the magnitude order
    keys: np.ndarray = bits ^ ((bits >> 63) & _LOW_63)
    return keys


def key_value(key: int) -> float:
    """The float64 whose sort key is `key`."""
    bits = key ^ ((key >> 63) & 0x7FFF_FFFF_FFFF_FFFF)  # the key map is its own inverse
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


@dataclass
class _Region:
    """Values with keys in [low, high]: `count` of them, `below` values with smaller keys."""

    low: int
    high: int
    count: int
    below: int
    ranks: list[int]
    edges: np.ndarray | None = None  # int64; cell i holds keys [edges[i], edges[i+1])
    counts: np.ndarray | None = None
    # Keys collected so far, in one array of `count` keys (not a list of per-chunk pieces,
    # whose object overhead would grow with the number of chunks); `filled` of them are set.
    collected: np.ndarray | None = None
    filled: int = 0


class OrderStatistics:
    """The values of given ranks among n finite values, and how many values are <= each.

    >>> stats = OrderStatistics(n, low, high, quantile_ranks(n, 10))
    >>> while not stats.done:
    ...     stats.begin([count <= 1_000_000 for count in stats.pending_counts()])
    ...     for chunk in read_again(): stats.add(chunk)
    ...     stats.end()
    >>> stats.values, stats.at_most
    """

    def __init__(self, n: int, low: float, high: float, ranks: Sequence[int]) -> None:
        self.n = n
        self.values: dict[int, float] = {}  # rank -> value
        self.at_most: dict[float, int] = {}  # value -> number of values <= it
        self._first = True
        self._pending: list[_Region] = []
        root = _Region(int(sort_keys(np.array([low]))[0]), int(sort_keys(np.array([high]))[0]),
                       n, 0, sorted(set(ranks)))
        self._low, self._high = float(low) + 0.0, float(high) + 0.0
        self._settle(root)

    @property
    def done(self) -> bool:
        return not self._pending

    def pending_counts(self) -> list[int]:
        """How many values each pending region holds, in key order."""
        return [region.count for region in self._pending]

    def begin(self, collect: Sequence[bool], cells: int = CELLS) -> None:
        """Start a pass: collect the values of region i when collect[i], else count them in
        at most `cells` histogram cells."""
        for region, gather in zip(self._pending, collect, strict=True):
            if gather:
                region.collected, region.filled = np.empty(region.count, dtype=np.int64), 0
            else:
                region.edges = self._cell_edges(region, cells)
                region.counts = np.zeros(region.edges.size - 1, dtype=np.int64)
        bounds = [bound for r in self._pending for bound in (r.low, r.high + 1)]
        self._bounds = np.array(bounds, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        """Finite values of the pass, in any pieces."""
        if not self._pending or not values.size:
            return
        keys = sort_keys(values)
        if len(self._pending) == 1:
            region = self._pending[0]
            if region.count != self.n:
                keys = keys[(keys >= region.low) & (keys <= region.high)]
            self._take(region, keys)
            return
        slot = np.searchsorted(self._bounds, keys, side="right")
        inside = np.flatnonzero(slot & 1)  # odd slots fall inside a region
        owner = (slot[inside] - 1) >> 1
        order = np.argsort(owner, kind="stable")
        owner, keys = owner[order], keys[inside][order]
        starts = np.searchsorted(owner, np.arange(len(self._pending) + 1))
        for i, region in enumerate(self._pending):
            if starts[i + 1] > starts[i]:
                self._take(region, keys[starts[i]:starts[i + 1]])

    def end(self) -> None:
        """Finish the pass: resolve collected regions, narrow counted ones."""
        pending, self._pending = self._pending, []
        self._first = False
        for region in pending:
            if region.collected is not None:
                self._resolve(region)
            else:
                self._narrow(region)

    # ---- private ------------------------------------------------------------------------------

    def _take(self, region: _Region, keys: np.ndarray) -> None:
        if region.collected is not None:
            end = region.filled + keys.size
            if end <= region.collected.size:  # more keys than counted: _resolve says so
                region.collected[region.filled:end] = keys
            region.filled = end
        else:
            assert region.counts is not None and region.edges is not None
            cells = np.searchsorted(region.edges[1:-1], keys, side="right")
            region.counts += np.bincount(cells, minlength=region.counts.size)

    def _cell_edges(self, region: _Region, cells: int) -> np.ndarray:
        """Key edges of the cells: equal widths in value space the first time, else in keys."""
        span = region.high - region.low + 1
        m = max(1, min(cells, span))
        if self._first:
            low, high = self._low, self._high
            if high - low < 2.0**1020:
                points = np.linspace(low, high, m + 1)
            else:  # the width (nearly) overflows: in quarters, then back (only the order matters)
                points = np.linspace(low / 4, high / 4, m + 1) * 4
            edges = np.maximum.accumulate(sort_keys(points)).clip(region.low, region.high)
        else:  # span can exceed int64: Python ints, then int64 (every edge is a key or high + 1)
            edges = np.array([region.low + span * i // m for i in range(m + 1)], dtype=np.int64)
        edges[0], edges[-1] = region.low, region.high + 1
        return edges

    def _settle(self, region: _Region) -> None:
        """A region of one key is resolved on the spot; others wait for a pass."""
        if region.low == region.high:
            value = key_value(region.low)
            for rank in region.ranks:
                self.values[rank] = value
            self.at_most[value] = region.below + region.count
        else:
            self._pending.append(region)

    def _resolve(self, region: _Region) -> None:
        assert region.collected is not None
        keys, region.collected = region.collected, None
        if region.filled != region.count:
            raise RuntimeError(f"the data changed between passes: {region.filled} values where "
                               f"{region.count} were counted")
        keys.sort()  # in place: no second copy of the keys
        for rank in region.ranks:
            key = keys[rank - region.below]
            value = key_value(int(key))
            self.values[rank] = value
            self.at_most[value] = region.below + int(np.searchsorted(keys, key, side="right"))

    def _narrow(self, region: _Region) -> None:
        assert region.counts is not None and region.edges is not None
        counts, edges = region.counts, [int(e) for e in region.edges]
        if int(counts.sum()) != region.count:
            raise RuntimeError(f"the data changed between passes: {int(counts.sum())} values "
                               f"where {region.count} were counted")
        ends = region.below + np.cumsum(counts)  # values below the end of each cell
        cells: dict[int, list[int]] = {}
        for rank in region.ranks:
            cells.setdefault(int(np.searchsorted(ends, rank, side="right")), []).append(rank)
        for i, ranks in cells.items():
            count = int(counts[i])
            self._settle(_Region(edges[i], edges[i + 1] - 1, count, int(ends[i]) - count, ranks))
