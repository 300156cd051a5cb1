"""Column accumulators: chunks of one column in, one profile entry out.

Each accumulator takes the column chunk by chunk (a whole DataFrame is one chunk), so files of any
length stream through the same code as in-memory data and give the same profile. Numeric values
are kept as float64 arrays until `finish` (8 bytes per finite cell) while a memory budget allows,
because the quantile edges are exact; past the budget, files are read again in passes that give
the same bytes (`mlmon.profiling.passes`). Categories and tokens are kept as counts.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mlmon.exporter.profile import (
    Binned,
    CategoricalFeature,
    NumericFeature,
    TextFeature,
    widened_range,
)
from mlmon.exporter.values import canonical_category, tokenize
from mlmon.profiling.labels import naming
from mlmon.profiling.passes import MemoryBudget, StreamedStats, error_means, fingerprint
from mlmon.profiling.sums import moments, pairwise_sum

_MASK_64 = (1 << 64) - 1
# pandas dtypes whose value_counts keys are safe to canonicalise one by one. Mixed object
# columns are counted value by value instead, because pandas hashes True and 1 as one key.
_HOMOGENEOUS = {"string", "integer", "floating", "mixed-integer-float", "boolean", "decimal"}


class ProfilingError(ValueError):
    """Data that cannot be profiled; the message names the column and says what is wrong."""


class ProfilingWarning(UserWarning):
    """Data profiled with a caveat the user should see (cells that are not numbers, counted
    as nulls); the message names the column, the rows and the option that decides."""


# A numeric column may hold at most this share of non-null cells that are not numbers (a typo,
# "n/a" spelled out): they are then counted as nulls and named in a ProfilingWarning. Above it
# the column is refused, so a column of words is never binned as if it were numbers.
MAX_NON_NUMERIC_SHARE = 0.01
# How many of those cells a message quotes (with their rows).
QUOTED_CELLS = 5


def null_mask(series: pd.Series) -> np.ndarray:
    """True for None, NaN and empty-string cells: what the profile counts as null."""
    mask = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        mask = mask | (series.to_numpy(dtype=object) == "")
    return mask


def parse_floats(series: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 with NaN for nulls and for cells that are not numbers, and the mask
    of those cells (booleans among other values are not numbers either)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise ProfilingError(
            f"column {name!r}: holds booleans, not numbers; profile it as categorical"
        )
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(values.size, dtype=bool)
    raw = series.to_numpy(dtype=object)
    is_bool = np.fromiter((type(v) is bool for v in raw), dtype=bool, count=len(raw))
    coerced = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = is_bool | (np.isnan(coerced) & ~null_mask(series))
    # "nan" spelled as text is a null, as pandas would read it; anything else is a wrong value.
    bad &= np.array([not (isinstance(v, str) and v.strip().lower() == "nan") for v in raw], bool)
    if bad.any():  # booleans coerce to 0 and 1: not numbers here
        coerced = np.where(bad, np.nan, coerced)
    return coerced, bad


def to_float(series: pd.Series, name: str, offset: int) -> np.ndarray:
    """The column as float64 with NaN for nulls; a value that is not a number is an error."""
    values, bad = parse_floats(series, name)
    if bad.any():
        pos = int(np.argmax(bad))
        raw = series.iloc[pos]
        raise ProfilingError(
            f"column {name!r}: {raw!r} (row {offset + pos + 1}) is not a number; "
            "profile the column as categorical or text instead"
        )
    return values


def quoted_cells(cells: list[tuple[Any, int]], total: int) -> str:
    """`'abc' (row 301), 'x' (row 9)` and how many more, for a message."""
    text = ", ".join(f"{value!r} (row {row})" for value, row in cells[:QUOTED_CELLS])
    more = total - min(len(cells), QUOTED_CELLS)
    return text + (f" and {more:,} more" if more else "")


def ranked(counts: Counter[str], limit: int) -> list[tuple[str, int]]:
    """The `limit` most frequent keys, ties broken by the key, most frequent first."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def binned(values: np.ndarray, bins: int) -> Binned:
    """Exact quantile edges of finite `values` and the share of each (edges[i-1], edges[i]] bin.

    Edges are `inverted_cdf` quantiles, i.e. values that occur in the data, so discrete data gets
    one edge per value instead of empty bins between values. Repeated edges are merged.
    """
    quantiles = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = np.unique(quantiles) + 0.0  # + 0.0 turns -0.0 into 0.0: one spelling per edge
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    mean, std = moments(values)
    return Binned(
        edges=tuple(float(e) for e in edges),
        bin_shares=tuple(float(c) for c in counts / values.size),
        min=float(values.min()) + 0.0,  # min and max of [-0.0, 0.0] could be either: say 0.0
        max=float(values.max()) + 0.0,
        mean=mean,
        std=std,
    )


def binned_streamed(stats: StreamedStats) -> Binned:
    """The same Binned as `binned`, from the statistics gathered over passes."""
    edges, at_most, mean, std = stats.distribution()
    counts = np.diff([0, *at_most, stats.count])
    return Binned(
        edges=tuple(edges),
        bin_shares=tuple(float(c) for c in counts / stats.count),
        min=stats.low,
        max=stats.high,
        mean=mean,
        std=std,
    )


class FloatValues:
    """Finite float64 values gathered chunk by chunk; non-finite cells are counted as nulls.

    The values are kept while `budget` allows (no budget: always). Past it they are dropped and
    only the count, min and max go on; `start_passes` then prepares reading the data again, and
    from then on `add_floats` feeds those passes (see `mlmon.profiling.passes`).
    """

    def __init__(self, name: str, budget: MemoryBudget | None = None, binned: bool = True,
                 sums: bool = False) -> None:
        self.name = name
        self.binned_stats = binned
        self.error_sums = sums  # residuals: the sums of |e| and e**2 too, for MAE and RMSE
        self.rows = 0
        self.nulls = 0  # null or infinite
        self.infinite = 0
        self.count = 0
        self.checksum = 0  # of the finite values' bits, to check that later passes read them
        self.low, self.high = math.inf, -math.inf
        self._budget = budget
        self._chunks: list[np.ndarray] | None = []  # None once dropped
        self.streamed: StreamedStats | None = None

    def add_floats(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        kept = values[finite]
        if self.streamed is not None:  # a later pass over the same data
            self.streamed.add(kept)
            return
        self.rows += values.size
        if kept.size < values.size:
            self.nulls += values.size - kept.size
            self.infinite += int(np.isinf(values).sum())
        if not kept.size:
            return
        self.count += kept.size
        self.checksum = (self.checksum + fingerprint(kept)) & _MASK_64
        # + 0.0: the min of [-0.0, 0.0] is either, depending on the order; always say 0.0
        self.low = min(self.low, float(kept.min()) + 0.0)
        self.high = max(self.high, float(kept.max()) + 0.0)
        if self._chunks is not None:
            if self._budget is None or self._budget.keep(kept.nbytes):
                self._chunks.append(kept)
            else:
                self._chunks = None

    def start_passes(self, bins: int) -> StreamedStats | None:
        """Drop the kept values; the statistics later passes feed (None: none needed)."""
        self._chunks = None
        if not self.count:
            return None
        self.streamed = StreamedStats(self.count, self.low, self.high, bins, self.binned_stats,
                                      self.checksum, self.name, self.error_sums)
        return self.streamed

    def check_finite(self) -> None:
        """Raise when no value was finite, saying whether they were null or infinite."""
        if self.count:
            return
        if self.infinite:
            raise ProfilingError(
                f"column {self.name!r}: no finite value ({self.infinite} infinite, "
                f"{self.nulls - self.infinite} null)"
            )
        raise ProfilingError(f"column {self.name!r}: every value is null")

    def take(self) -> np.ndarray:
        """All kept values, once."""
        if self._chunks is None:
            raise RuntimeError(f"column {self.name!r}: the values were not kept")
        values = np.concatenate(self._chunks) if self._chunks else np.empty(0)
        self._chunks = []
        return values

    def binned(self, bins: int) -> Binned:
        """Edges, shares, min, max and moments, from the kept values or from the passes."""
        self.check_finite()
        if self.streamed is not None:
            return binned_streamed(self.streamed)
        return binned(self.take(), bins)

    def residuals(self, bins: int) -> tuple[dict[str, float], tuple[float, ...] | None]:
        """For residuals (prediction - target): MAE, RMSE and bias (their mean), and their
        quantile edges (as a numeric feature's, so deterministic); ({}, None) when there is no
        finite one."""
        if not self.count:
            return {}, None
        if self.streamed is not None:
            metrics = self.streamed.error_metrics()
            dist = binned_streamed(self.streamed)
        else:
            errors = self.take()
            with np.errstate(over="ignore"):
                sums = pairwise_sum(np.abs(errors)), pairwise_sum(np.square(errors))
            metrics = error_means(*sums, errors.size)
            dist = binned(errors, bins)
        if math.isfinite(dist.mean):
            metrics["bias"] = dist.mean
        return metrics, dist.edges

    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


class NumericColumn(FloatValues):
    """A numeric feature: exact quantile edges, bin shares, moments and an allowed range.

    Cells that are not numbers are counted as nulls while they are at most
    MAX_NON_NUMERIC_SHARE of the non-null cells (judged on the whole column at `finish`, so the
    chunk size cannot change the verdict), and named in a ProfilingWarning; above it the
    column is refused.
    """

    def __init__(self, name: str, budget: MemoryBudget | None = None) -> None:
        super().__init__(name, budget)
        self.non_numeric = 0
        self.non_numeric_cells: list[tuple[Any, int]] = []  # (value, 1-based row), the first few

    def add(self, series: pd.Series, offset: int) -> None:
        values, bad = parse_floats(series, self.name)
        if self.streamed is None and bad.any():  # later passes read the same cells again
            self.non_numeric += int(bad.sum())
            for pos in np.flatnonzero(bad)[:QUOTED_CELLS - len(self.non_numeric_cells)]:
                self.non_numeric_cells.append((series.iloc[pos], offset + int(pos) + 1))
        self.add_floats(values)

    def check_numbers(self) -> None:
        """Refuse a column with too many cells that are not numbers; warn about a few."""
        if not self.non_numeric:
            return
        non_null = self.rows - self.nulls + self.non_numeric
        share = self.non_numeric / non_null
        cells = quoted_cells(self.non_numeric_cells, self.non_numeric)
        verb = "is not a number" if self.non_numeric == 1 else "are not numbers"
        counted = (f"{cells} {verb} ({self.non_numeric:,} of its {non_null:,} non-null values, "
                   f"{share:.2%})")
        categorical = naming("categorical", self.name)
        if share > MAX_NON_NUMERIC_SHARE:
            raise ProfilingError(
                f"column {self.name!r}: {counted}: more than the {MAX_NON_NUMERIC_SHARE:.0%} a "
                f"numeric column may have; profile it as categories with {categorical} (or as "
                "text), or fix those cells"
            )
        warnings.warn(ProfilingWarning(
            f"column {self.name!r}: {counted}: counted as nulls (a numeric column may have up "
            f"to {MAX_NON_NUMERIC_SHARE:.0%}); fix them, or profile the column as categories "
            f"with {categorical}"), stacklevel=2)

    def finish(
        self, bins: int, margin: float, allowed: tuple[float, float] | None
    ) -> NumericFeature:
        self.check_numbers()
        dist = self.binned(bins)
        allowed_range = allowed or widened_range(dist.min, dist.max, margin)
        return NumericFeature(self.name, self.count, self.null_rate(), dist, allowed_range)


def category_counts(series: pd.Series, name: str) -> Counter[str]:
    """Counts of the canonical category strings of the non-null cells."""
    values = series[~null_mask(series)]
    if pd.api.types.infer_dtype(values, skipna=True) in _HOMOGENEOUS:
        tallies: Iterable[tuple[Any, int]] = values.value_counts(sort=False).items()
    else:
        tallies = Counter(_Exact(v) for v in values).items()
    counts: Counter[str] = Counter()
    for value, count in tallies:
        raw = value.value if isinstance(value, _Exact) else value
        category = str(raw) if isinstance(raw, str) else canonical_category(raw)
        if category is None:
            raise ProfilingError(f"column {name!r}: {raw!r} cannot be a category")
        if count:
            counts[category] += int(count)
    return counts


class _Exact:
    """Hash key that keeps True apart from 1 (Python and pandas treat them as one key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Exact) and (type(self.value), self.value) == (
            type(other.value),
            other.value,
        )


class CategoricalColumn:
    """A categorical feature: top-K shares, the other share, the seen set, the allowed list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows = 0
        self.counts: Counter[str] = Counter()

    def add(self, series: pd.Series, offset: int) -> None:
        self.rows += len(series)
        self.counts.update(category_counts(series, self.name))

    def finish(
        self, top_k: int, max_seen: int, allowed: tuple[str, ...] | None
    ) -> CategoricalFeature:
        total = sum(self.counts.values())
        if not total:
            raise ProfilingError(f"column {self.name!r}: every value is null")
        top = ranked(self.counts, top_k)
        top_count = sum(count for _, count in top)
        # When capped, `seen` keeps the most frequent categories (the top-K always among them).
        seen = sorted(category for category, _ in ranked(self.counts, max_seen))
        return CategoricalFeature(
            name=self.name,
            count=total,
            null_rate=(self.rows - total) / self.rows,
            top_categories=tuple(category for category, _ in top),
            top_shares=tuple(count / total for _, count in top),
            other_share=(total - top_count) / total,
            seen=tuple(seen),
            allowed=allowed,
        )


class TextColumn:
    """A text feature: the top-N token vocabulary and the reference out-of-vocabulary rate."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows = 0
        self.texts = 0
        self.tokens: Counter[str] = Counter()

    def add(self, series: pd.Series, offset: int) -> None:
        texts = series[~null_mask(series)]
        self.rows += len(series)
        self.texts += len(texts)
        self.tokens.update(itertools.chain.from_iterable(tokenize(str(t)) for t in texts))

    def finish(self, vocabulary_size: int) -> TextFeature:
        if not self.texts:
            raise ProfilingError(f"column {self.name!r}: every value is null")
        vocabulary = ranked(self.tokens, vocabulary_size)
        total = sum(self.tokens.values())
        in_vocabulary = sum(count for _, count in vocabulary)
        return TextFeature(
            name=self.name,
            count=self.texts,
            null_rate=(self.rows - self.texts) / self.rows,
            vocabulary=tuple(token for token, _ in vocabulary),
            oov_rate=(total - in_vocabulary) / total if total else 0.0,
        )
