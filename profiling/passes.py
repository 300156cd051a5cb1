"""Profiling files bigger than the memory budget: extra passes over the file, bounded memory.

The first pass over a file keeps each numeric column's finite values while they fit in the
`MemoryBudget`; then the in-memory statistics apply. Past the budget the values are dropped and
each float stream keeps only its count, min and max; `Passes` then reads the file again:

- pass 2: the sum for the mean (`sums`, needs the count), the first histogram of the
  quantile ranks (`ranks`, needs min and max), MAE/RMSE sums of residuals;
- pass 3: the squared deviations from that mean (the std), and the values of the histogram cells
  holding the ranks (or finer histograms of cells too big for the budget);
- more passes only while some rank is still in a cell too big to collect (skewed data).

Every statistic is computed as the in-memory path computes it, so both give the same bytes.
Each later pass must see the very values of the first (count and a checksum of their bits, per
stream); a file that changed meanwhile raises `DataChanged` instead of giving a wrong profile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlmon.profiling.ranks import CELLS, OrderStatistics, quantile_ranks
from mlmon.profiling.sums import Moments, PairwiseSum

DEFAULT_MAX_MEMORY_MB = 256  # float values a profile keeps in memory before reading in passes
_MIN_CELLS = 16
_MASK_64 = (1 << 64) - 1


class DataChanged(RuntimeError):
    """A later pass read other values than the first one did."""


def fingerprint(values: np.ndarray) -> int:
    """Order-free checksum of float64 values: the sum of their bit patterns, modulo 2**64."""
    return int(np.add.reduce(values.view(np.uint64), dtype=np.uint64))


class MemoryBudget:
    """Bytes of float values the first pass may keep, shared by every column of a profile."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.used = 0
        self.exceeded = False

    def keep(self, nbytes: int) -> bool:
        """Reserve `nbytes`; False (from then on) once the budget would be exceeded."""
        if self.exceeded or self.used + nbytes > self.max_bytes:
            self.exceeded = True
            return False
        self.used += nbytes
        return True


def error_means(sum_abs: float, sum_square: float, n: int) -> dict[str, float]:
    """MAE and RMSE from the sums of |e| and e**2 (as np.mean would), finite ones only."""
    metrics = {"mae": sum_abs / n, "rmse": math.sqrt(sum_square / n)}
    return {name: value for name, value in metrics.items() if math.isfinite(value)}


class StreamedStats:
    """The statistics of one float stream (a column, predictions, scores, residuals) over passes.

    `binned=True`: mean, std, quantile edges and the counts <= each edge; `sums=True`
    (residuals) the sums of |e| and e**2 for MAE and RMSE as well.
    """

    def __init__(
        self, count: int, low: float, high: float, bins: int, binned: bool, checksum: int,
        name: str = "", sums: bool = False,
    ) -> None:
        self.count, self.low, self.high = count, low, high
        self.name, self.checksum = name, checksum
        self._seen = self._sum = 0
        self.binned = binned
        self.sums = sums or not binned
        self.passes_done = 0
        self.ranks = quantile_ranks(count, bins) if binned else []
        self.moments = Moments(count, low, high) if binned else None
        self.order = OrderStatistics(count, low, high, self.ranks) if binned else None
        self._abs = PairwiseSum(count)
        self._square = PairwiseSum(count)

    def needs_pass(self) -> bool:
        if self.passes_done == 0:
            return True
        if not self.binned:
            return False
        assert self.order is not None
        return self.passes_done == 1 or not self.order.done

    def pending_counts(self) -> list[int]:
        return self.order.pending_counts() if self.order is not None else []

    def begin(self, collect: Sequence[bool], cells: int) -> None:
        self._seen = self._sum = 0
        if self.needs_pass() and self.order is not None:
            self.order.begin(collect, cells)

    def add(self, values: np.ndarray) -> None:
        """The stream's finite values, in file order, in any pieces."""
        self._seen += values.size
        self._sum = (self._sum + fingerprint(values)) & _MASK_64
        if self._seen > self.count or not self.needs_pass():
            return  # too many values: end() says so
        if self.sums and self.passes_done == 0:
            with np.errstate(over="ignore"):
                self._abs.add(np.abs(values))
                self._square.add(np.square(values))
        if self.moments is None:
            return
        if self.passes_done == 0:
            self.moments.add_first(values)
        elif self.passes_done == 1:
            self.moments.add_second(values)
        assert self.order is not None
        self.order.add(values)

    def end(self) -> None:
        """Check that the pass read the same values; finish what it computed."""
        if (self._seen, self._sum) != (self.count, self.checksum):
            raise DataChanged(
                f"column {self.name!r}: the data changed between passes over the file "
                f"({self._seen:,} finite values where the first pass had {self.count:,})"
            )
        if not self.needs_pass():
            return
        if self.moments is not None and self.passes_done == 0:
            self.moments.end_first()
        if self.order is not None:
            self.order.end()
        self.passes_done += 1

    def error_metrics(self) -> dict[str, float]:
        return error_means(self._abs.result(), self._square.result(), self.count)

    def distribution(self) -> tuple[list[float], list[int], float, float]:
        """(edges, values <= each edge, mean, std) once every pass is done."""
        assert self.moments is not None and self.order is not None and self.order.done
        edges = sorted({self.order.values[rank] for rank in self.ranks})
        mean, std = self.moments.result()
        return edges, [self.order.at_most[edge] for edge in edges], mean, std


class Passes:
    """Plans each extra pass over the file for a set of streams, within the memory budget.

    A pass collects the smallest pending regions whose values fit in the budget (8 bytes each,
    and as much again to sort them); the others are counted in histograms.
    """

    def __init__(self, streams: Sequence[StreamedStats], max_bytes: int) -> None:
        self.streams = list(streams)
        self.max_bytes = max_bytes
        self.number = 1  # the first pass was the one that read everything

    def begin(self) -> bool:
        """Plan the next pass; False when no stream needs one."""
        active = [stream for stream in self.streams if stream.needs_pass()]
        if not active:
            return False
        self.number += 1
        regions = sorted(
            (count, s, r)
            for s, stream in enumerate(self.streams)
            for r, count in enumerate(stream.pending_counts())
        )
        room, collect = self.max_bytes // 16, set()
        for count, s, r in regions:
            if count > room:
                break
            room -= count
            collect.add((s, r))
        histograms = max(1, len(regions) - len(collect))
        cells = max(_MIN_CELLS, min(CELLS, self.max_bytes // 4 // (16 * histograms)))
        for s, stream in enumerate(self.streams):
            flags = [(s, r) in collect for r in range(len(stream.pending_counts()))]
            stream.begin(flags, cells)
        return True

    def end(self) -> None:
        for stream in self.streams:
            stream.end()
