"""The pure chunker: count, bytes and age, with the clock passed in."""

from __future__ import annotations

import pytest

from log_shipper.chunking import Chunker


def test_chunk_by_count() -> None:
    chunker: Chunker[int] = Chunker(max_docs=3, max_bytes=1000, max_age_s=10)
    ready = [c.items for i in range(7) for c in chunker.add(i, 1, now=0.0)]
    assert ready == [[0, 1, 2], [3, 4, 5]]
    assert chunker.flush().items == [6]  # type: ignore[union-attr]
    assert chunker.flush() is None


def test_an_item_that_would_overflow_bytes_starts_the_next_chunk() -> None:
    chunker: Chunker[str] = Chunker(max_docs=100, max_bytes=10, max_age_s=10)
    assert chunker.add("a", 6, 0.0) == []
    (first,) = chunker.add("b", 6, 0.0)
    assert first.items == ["a"] and first.nbytes == 6
    (big,) = chunker.add("c", 4, 0.0)  # b + c = 10 bytes: full
    assert big.items == ["b", "c"]
    both = chunker.add("d", 8, 0.0) + chunker.add("e", 20, 0.0)
    assert [c.items for c in both] == [["d"], ["e"]]


def test_chunk_by_age() -> None:
    chunker: Chunker[int] = Chunker(max_docs=100, max_bytes=1000, max_age_s=1.0)
    assert chunker.deadline() is None
    chunker.add(1, 1, now=5.0)
    chunker.add(2, 1, now=5.5)
    assert chunker.deadline() == 6.0
    assert chunker.poll(5.99) is None
    assert chunker.poll(6.0).items == [1, 2]  # type: ignore[union-attr]
    assert len(chunker) == 0


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Chunker(max_docs=0, max_bytes=1, max_age_s=1)
