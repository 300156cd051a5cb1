"""The dead-letter file: documents Elasticsearch rejected for their content, with the reason.

One JSON line per document: `{"@timestamp", "index", "id", "status", "reason", "document"}`.
Re-sending such a document cannot succeed (a string in a numeric field stays a string), so it
is kept here for a person to read, fix and re-index, instead of blocking the spool forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlmon.log_shipper.record import utc_timestamp
from mlmon.log_shipper.sender import Document


class DeadLetter:
    """Appends rejected documents to a JSON-lines file (opened on first use).

    >>> dead = DeadLetter("/var/lib/mlmon/spool/churn/dead-letter.ndjson")
    >>> dead.write("mlmon-predictions-churn", [(doc, 400, {"type": "document_parsing_exception"})])
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._clock = clock
        self._fd: int | None = None

    def write(self, index: str, rejected: Sequence[tuple[Document, int, Any]]) -> None:
        """Append one line per rejected document."""
        if not rejected:
            return
        stamp = utc_timestamp(self._clock())
        lines = []
        for doc, status, reason in rejected:
            try:
                document: Any = json.loads(doc.source)
            except ValueError:
                document = doc.source.decode("utf-8", "replace")
            lines.append(json.dumps({"@timestamp": stamp, "index": index, "id": doc.id,
                                     "status": status, "reason": reason, "document": document},
                                    sort_keys=True, ensure_ascii=False) + "\n")
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        data = memoryview("".join(lines).encode("utf-8"))
        while data:
            data = data[os.write(self._fd, data):]
        if self._fsync:
            os.fsync(self._fd)

    def forget_after_fork(self) -> None:
        """In a forked child: drop this process's copy of the descriptor (reopened on use)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Close the file (a later write reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_dead_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of a dead-letter file (for tools and tests)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]
