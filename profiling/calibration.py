"""Calibration of a classifier's scores on the reference, for estimated performance.

For each predicted class: how often a prediction of that class with score s was right. Rows are
counted into a fixed grid of score bins (so the result is the same whatever the chunking, in
bounded memory), then the pool-adjacent-violators algorithm turns the per-bin hit rates into a
non-decreasing step function (isotonic regression weighted by the bin counts). Pooled values are
ratios of integer counts, compared exactly: the same data always gives the same profile bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from mlmon.exporter.estimation import other_class_shares
from mlmon.exporter.profile import ClassCalibration

# Score bins (edges[i-1], edges[i]] of width 1/GRID_BINS over [0, 1], plus the open ends: fine
# enough that the grid hardly coarsens a calibration fitted on the ~10^4-10^6 rows of a reference.
GRID_BINS = 1000
GRID_EDGES = np.arange(1, GRID_BINS) / GRID_BINS


def pool_adjacent_violators(hits: Sequence[int], counts: Sequence[int]
                            ) -> list[tuple[int, int, int]]:
    """Blocks `(hits, count, last bin)` over the bins with a count, whose rates hits/count are
    strictly increasing: adjacent bins are pooled while a rate does not rise."""
    blocks: list[tuple[int, int, int]] = []
    for i, (h, n) in enumerate(zip(hits, counts, strict=True)):
        if not n:
            continue
        block = (int(h), int(n), i)
        # previous rate >= this rate (exact, as integers): pool the two
        while blocks and blocks[-1][0] * block[1] >= block[0] * blocks[-1][1]:
            ph, pn, _ = blocks.pop()
            block = (ph + block[0], pn + block[1], block[2])
        blocks.append(block)
    return blocks


class CalibrationCounts:
    """Hits and counts per (predicted class, score bin), and the class pairs of wrong rows."""

    def __init__(self) -> None:
        self.hits: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.errors: Counter[tuple[str, str]] = Counter()

    def add(self, predicted: Sequence[str | None], actual: Sequence[str | None],
            scores: np.ndarray | None) -> None:
        """One chunk: canonical classes per row (None: null) and the scores (NaN: none)."""
        pred = np.array([p if p is not None else "" for p in predicted], dtype=object)
        act = np.array([a if a is not None else "" for a in actual], dtype=object)
        labelled = (pred != "") & (act != "")
        right = labelled & (pred == act)
        self.errors.update(zip(pred[labelled & ~right], act[labelled & ~right], strict=True))
        if scores is None:
            return
        usable = labelled & np.isfinite(scores)
        bins = np.searchsorted(GRID_EDGES, scores[usable], side="left")
        for cls in set(pred[usable]):
            mine = pred[usable] == cls
            if cls not in self.counts:
                self.counts[cls] = np.zeros(GRID_BINS, dtype=np.int64)
                self.hits[cls] = np.zeros(GRID_BINS, dtype=np.int64)
            self.counts[cls] += np.bincount(bins[mine], minlength=GRID_BINS)
            self.hits[cls] += np.bincount(bins[mine & right[usable]], minlength=GRID_BINS)

    def finish(self, classes: Sequence[str], shares: Sequence[float]
               ) -> tuple[ClassCalibration, ...] | None:
        """One calibration per class, or None when no row had a class, a target and a score.

        A class with no such row keeps its raw scores (no steps: values (0, 1) around the
        score, see `ClassCalibration`); its error shares fall back to the other classes'
        prediction shares when the reference has no wrong prediction of it.
        """
        if not self.counts:
            return None
        out = []
        for k, cls in enumerate(classes):
            wrong = [self.errors[(cls, c)] for c in classes]
            error_shares = other_class_shares(wrong if sum(wrong) else shares, k)
            if cls in self.counts:
                blocks = pool_adjacent_violators(self.hits[cls].tolist(),
                                                 self.counts[cls].tolist())
                thresholds = tuple(float(GRID_EDGES[last]) for _, _, last in blocks[:-1])
                values = tuple(h / n for h, n, _ in blocks)
            else:
                thresholds, values = (), ()
            out.append(ClassCalibration(thresholds, values, error_shares))
        return tuple(out)
