"""Pure chunking of serialized documents by count, bytes and age.

No clock and no I/O: the caller passes `now`, so the rules are testable without sleeping.
A chunk is released when it reaches `max_docs`, when the next document would push it past
`max_bytes` (that document starts the next chunk), or when its oldest document is `max_age_s` old.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Chunk(Generic[T]):
    """Documents released together, with their total size in bytes."""

    items: list[T] = field(default_factory=list)
    nbytes: int = 0

    def __len__(self) -> int:
        return len(self.items)


class Chunker(Generic[T]):
    """Groups items into chunks.

    >>> chunker = Chunker(max_docs=500, max_bytes=5 << 20, max_age_s=1.0)
    >>> ready = chunker.add(doc, len(doc), now)   # the chunks now full
    >>> ready = chunker.poll(now)                  # the pending chunk once it is old enough
    """

    def __init__(self, *, max_docs: int, max_bytes: int, max_age_s: float) -> None:
        if max_docs < 1 or max_bytes < 1 or max_age_s < 0:
            raise ValueError("max_docs and max_bytes must be >= 1 and max_age_s >= 0")
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._pending: Chunk[T] = Chunk()
        self._started = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: T, nbytes: int, now: float) -> list[Chunk[T]]:
        """Add one item; return the chunks (zero, one or two) this item made ready."""
        ready: list[Chunk[T]] = []
        if self._pending.items and self._pending.nbytes + nbytes > self.max_bytes:
            ready.append(self._take())
        if not self._pending.items:
            self._started = now
        self._pending.items.append(item)
        self._pending.nbytes += nbytes
        if len(self._pending) >= self.max_docs or self._pending.nbytes >= self.max_bytes:
            ready.append(self._take())
        return ready

    def deadline(self) -> float | None:
        """When the pending chunk becomes due by age; None when nothing is pending."""
        return self._started + self.max_age_s if self._pending.items else None

    def poll(self, now: float) -> Chunk[T] | None:
        """The pending chunk when its oldest item is at least `max_age_s` old."""
        due = self.deadline()
        return self._take() if due is not None and now >= due else None

    def flush(self) -> Chunk[T] | None:
        """The pending chunk regardless of age (shutdown, explicit flush)."""
        return self._take() if self._pending.items else None

    def _take(self) -> Chunk[T]:
        chunk, self._pending = self._pending, Chunk()
        return chunk
