"""How profiling messages name an option: as the caller typed it.

By default a message names the keyword (`prediction_column`); the CLI sets its flags
(`--prediction-column`) for the duration of a call, so that its errors name what the user typed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_LABELS: ContextVar[Mapping[str, str]] = ContextVar("option_labels",
                                                    default=MappingProxyType({}))


@contextlib.contextmanager
def option_labels(labels: Mapping[str, str]) -> Iterator[None]:
    """Within the block, messages name option `key` as `labels[key]` (e.g. a CLI flag)."""
    token = _LABELS.set(labels)
    try:
        yield
    finally:
        _LABELS.reset(token)


def option_label(option: str) -> str:
    """The name of `option` as the caller knows it: `--top-k` in the CLI, else `top_k`."""
    return _LABELS.get().get(option, option)


def naming(option: str, column: str) -> str:
    """How the caller puts `column` in a list option: `--categorical x` or `categorical=['x']`."""
    flag = _LABELS.get().get(option)
    return f"{flag} {column}" if flag else f"{option}=[{column!r}]"
