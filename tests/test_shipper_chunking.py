"""The pure batch rules: count, bytes (the crossing document included) and age."""

from __future__ import annotations

import pytest

from mlmon.log_shipper.chunking import BatchLimits


def test_a_batch_stops_at_max_docs() -> None:
    limits = BatchLimits(max_docs=3, max_bytes=1000, max_age_s=10)
    assert limits.fits(2, 2, 1) and not limits.fits(3, 3, 1)


def test_the_document_that_would_cross_max_bytes_starts_the_next_batch() -> None:
    limits = BatchLimits(max_docs=100, max_bytes=10, max_age_s=10)
    assert limits.fits(1, 6, 4)        # exactly 10: fits
    assert not limits.fits(1, 6, 5)    # 11 would cross the bound: waits for the next batch
    assert limits.fits(0, 0, 50)       # alone, even past the bound: it cannot be smaller


def test_due_by_count_bytes_or_age() -> None:
    limits = BatchLimits(max_docs=3, max_bytes=100, max_age_s=1.0)
    assert not limits.due(0, 0, 99.0)  # nothing waiting
    assert not limits.due(2, 50, 0.99)
    assert limits.due(3, 3, 0.0) and limits.due(1, 100, 0.0) and limits.due(1, 1, 1.0)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_docs and max_bytes"):
        BatchLimits(max_docs=0, max_bytes=1, max_age_s=1)
