"""Column accumulators: chunks of one column in, one profile entry out.

Each accumulator takes the column chunk by chunk (a whole DataFrame is one chunk), so files of any
length stream through the same code as in-memory data and give the same profile. Numeric values
are kept as float64 arrays until `finish`, because the quantile edges must be exact on the data
(8 bytes per non-null numeric cell); categories and tokens are kept as counts.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from exporter.profile import Binned, CategoricalFeature, NumericFeature, TextFeature
from exporter.values import canonical_category, tokenize

# Above this magnitude, squares (for the std) could overflow float64: scale first.
_SCALE_ABOVE = 1e150
_FLOAT_MAX = float(np.finfo(np.float64).max)
# pandas dtypes whose value_counts keys are safe to canonicalise one by one. Mixed object
# columns are counted value by value instead, because pandas hashes True and 1 as one key.
_HOMOGENEOUS = {"string", "integer", "floating", "mixed-integer-float", "boolean", "decimal"}


class ProfilingError(ValueError):
    """Data that cannot be profiled; the message names the column and says what is wrong."""


def null_mask(series: pd.Series) -> np.ndarray:
    """True for None, NaN and empty-string cells: what the profile counts as null."""
    mask = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        mask = mask | (series.to_numpy(dtype=object) == "")
    return mask


def to_float(series: pd.Series, name: str, offset: int) -> np.ndarray:
    """The column as float64 with NaN for nulls; a value that is not a number is an error."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise ProfilingError(
            f"column {name!r}: holds booleans, not numbers; profile it as categorical"
        )
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    raw = series.to_numpy(dtype=object)
    is_bool = np.fromiter((type(v) is bool for v in raw), dtype=bool, count=len(raw))
    coerced = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = is_bool | (np.isnan(coerced) & ~null_mask(series))
    # "nan" spelled as text is a null, as pandas would read it; anything else is a wrong value.
    bad &= np.array([not (isinstance(v, str) and v.strip().lower() == "nan") for v in raw], bool)
    if bad.any():
        pos = int(np.argmax(bad))
        raise ProfilingError(
            f"column {name!r}: {raw[pos]!r} (row {offset + pos + 1}) is not a number; "
            "profile the column as categorical or text instead"
        )
    return coerced


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
    mean, std = _moments(values)
    return Binned(
        edges=tuple(float(e) for e in edges),
        bin_shares=tuple(float(c) for c in counts / values.size),
        min=float(values.min()),
        max=float(values.max()),
        mean=mean,
        std=std,
    )


def _moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and population std that stay finite for any finite input."""
    scale = float(np.max(np.abs(values)))
    if scale <= _SCALE_ABOVE:
        return float(np.mean(values)), float(np.std(values))
    scaled = values / scale
    return float(np.mean(scaled) * scale), float(np.std(scaled) * scale)


def widened_range(low: float, high: float, margin: float) -> tuple[float, float]:
    """[low, high] widened by margin * (high - low) each side, kept finite."""
    width = margin * (high - low) if margin else 0.0
    return (float(max(low - width, -_FLOAT_MAX)), float(min(high + width, _FLOAT_MAX)))


class FloatValues:
    """Finite float64 values gathered chunk by chunk; non-finite cells are counted as nulls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows = 0
        self.nulls = 0
        self._chunks: list[np.ndarray] = []

    def add_floats(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        self.rows += values.size
        self.nulls += int(values.size - finite.sum())
        self._chunks.append(values[finite])

    def take(self) -> np.ndarray:
        """All values, once; raises when every value was null."""
        values = np.concatenate(self._chunks) if self._chunks else np.empty(0)
        self._chunks = []
        if values.size == 0:
            raise ProfilingError(f"column {self.name!r}: every value is null")
        return values

    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


class NumericColumn(FloatValues):
    """A numeric feature: exact quantile edges, bin shares, moments and an allowed range."""

    def add(self, series: pd.Series, offset: int) -> None:
        self.add_floats(to_float(series, self.name, offset))

    def finish(
        self, bins: int, margin: float, allowed: tuple[float, float] | None
    ) -> NumericFeature:
        values = self.take()
        dist = binned(values, bins)
        allowed_range = allowed or widened_range(dist.min, dist.max, margin)
        return NumericFeature(self.name, int(values.size), self.null_rate(), dist, allowed_range)


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
