"""Pure batch rules for the sender: how big a bulk request may be and when one is due.

No clock and no I/O: the caller passes sizes and ages, so the rules are testable without
sleeping. A batch holds at most `max_docs` documents and at most `max_bytes` bytes, counting the
document that would cross the bound (it starts the next batch); a single document larger than
`max_bytes` goes alone, since it cannot be made smaller. A batch is due when a full one is
waiting, or when its oldest document has waited `max_age_s`.
"""

from __future__ import annotations

from dataclasses import dataclass


def fits(count: int, nbytes: int, size: int, max_docs: int, max_bytes: int) -> bool:
    """True when a document of `size` bytes may join a batch of `count` documents and `nbytes`
    bytes without crossing `max_docs` or `max_bytes`; the first document always fits."""
    if count == 0:
        return True  # one document alone always goes, however large: it cannot be smaller
    return count < max_docs and nbytes + size <= max_bytes


@dataclass(frozen=True)
class BatchLimits:
    """The size and age bounds of one bulk request.

    >>> limits = BatchLimits(max_docs=500, max_bytes=5 << 20, max_age_s=1.0)
    >>> limits.fits(count=10, nbytes=1000, size=200)    # may this document join the batch?
    True
    >>> limits.due(count=10, nbytes=1000, waited_s=0.2)  # worth sending now?
    False
    """

    max_docs: int
    max_bytes: int
    max_age_s: float

    def __post_init__(self) -> None:
        if self.max_docs < 1 or self.max_bytes < 1 or self.max_age_s < 0:
            raise ValueError("max_docs and max_bytes must be >= 1 and max_age_s >= 0")

    def fits(self, count: int, nbytes: int, size: int) -> bool:
        """True when a document of `size` bytes may join a batch of `count` docs, `nbytes`."""
        return fits(count, nbytes, size, self.max_docs, self.max_bytes)

    def due(self, count: int, nbytes: int, waited_s: float) -> bool:
        """True when a batch of this size, whose oldest document waited `waited_s`, should go."""
        if count == 0:
            return False
        return count >= self.max_docs or nbytes >= self.max_bytes or waited_s >= self.max_age_s
