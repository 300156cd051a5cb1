"""Value normalisation shared by profiling and the exporter.

Both sides must turn a raw value into the same category string or tokens, or live traffic would
look drifted against its own training data.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Tokenizing a 1 MB string on the prediction path would cost milliseconds; the head of a text is
# enough to estimate its out-of-vocabulary rate.
MAX_TEXT_CHARS = 10_000

_TOKEN = re.compile(r"\w+")

WRONG_TYPE = None  # returned by canonical_category for values that cannot be a category


def canonical_category(value: Any) -> str | None:
    """The category string for `value`, or None when the value cannot be a category.

    `3`, `3.0` and `"3"` are the same category; booleans are `"true"`/`"false"`.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value) if math.isfinite(value) else None
    # numpy scalars and other number-likes
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        try:
            return canonical_category(value.item())
        except Exception:  # noqa: BLE001 - any failure means "not a category"
            return None
    return None


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of the first MAX_TEXT_CHARS characters of `text`."""
    return _TOKEN.findall(text[:MAX_TEXT_CHARS].lower())
