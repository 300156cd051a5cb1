"""Value normalisation and classification shared by profiling, the exporter and the log record.

Profiling and the exporter must turn a raw value into the same category string or tokens, or live
traffic would look drifted against its own training data. `observe()`, `observe_batch()` and the
Elasticsearch record must reach the same verdict on a live value (counted, or missing, or invalid
for the same reason): the `classify_*` functions below make that decision, once. The exporter's
hot path inlines only the happy case (a Python float, int or str) and calls them for the rest;
`observe_batch()` decides float columns with numpy, and its tests prove the same verdicts.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

# re-exported beside the other reasons; defined in mlmon.names because an alert selects it
from mlmon.names import OUT_OF_RANGE as OUT_OF_RANGE

# Tokenizing a 1 MB string on the prediction path would cost milliseconds; the head of a text is
# enough to estimate its out-of-vocabulary rate.
MAX_TEXT_CHARS = 10_000

_TOKEN = re.compile(r"\w+")

# Why a value is not counted as a feature value or a prediction: the `reason` label values of
# mlmon_feature_invalid_total / mlmon_prediction_invalid_total and the record's flags.
MISSING = "missing"  # absent, None, pandas NA/NaT; for a feature (any kind) a NaN too
NAN, INF, WRONG_TYPE = "nan", "inf", "wrong_type"
NOT_ALLOWED, UNSEEN = "not_allowed", "unseen"  # and OUT_OF_RANGE, imported above

# pandas' nulls, recognised by type name so that nothing here imports pandas
_NULL_TYPE_NAMES = frozenset(("NAType", "NaTType"))


def canonical_category(value: Any) -> str | None:
    """The category string for `value`, or None when the value cannot be a category.

    `3`, `3.0` and `"3"` are the same category; booleans are `"true"`/`"false"`; a str subclass
    (numpy's `np.str_`) is its plain string.
    """
    kind = type(value)
    if kind is str:
        text: str = value  # the exact type is checked: no str() call on the hot path
        return text
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        try:
            return str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits(): not a usable category
            return None
    if isinstance(value, str):
        return str(value)
    if kind is float:
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value) if math.isfinite(value) else None
    # numpy scalars and other number-likes
    scalar = python_scalar(value)
    if scalar is not value:
        return canonical_category(scalar)
    return None


def is_null(value: Any) -> bool:
    """None or a pandas null (NA, NaT): "no value", as opposed to a value that is wrong."""
    return value is None or type(value).__name__ in _NULL_TYPE_NAMES


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds; anything else (0-d arrays too) unchanged."""
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        try:
            return value.item()
        except Exception:  # noqa: BLE001 - an odd .item(): the value stays as it is
            return value
    return value


# What the classify_* functions return: the usable value and no reason, or a reason (and for a
# NaN/Inf number the float itself). Callers that unpack the pair assert what the reason implies.
NumberVerdict = tuple[float, str | None] | tuple[None, str]
Verdict = tuple[str, None] | tuple[None, str]


def classify_number(value: Any) -> NumberVerdict:
    """`(x, None)` for a value counted as the finite float x, else `(x, reason)`.

    The reason is MISSING (null), NAN or INF (x is then that float), or WRONG_TYPE (bools,
    strings, Decimal, 0-d arrays...: anything that is not a real number; x is None). An int too
    large for a float is INF, as numpy would make it.
    """
    if type(value) is not float:
        if isinstance(value, float):  # numpy's float64 (a DataFrame's records): the common case
            value = float(value)
        elif is_null(value):
            return None, MISSING
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None, WRONG_TYPE  # numbers.Real excludes np.bool_, Decimal, 0-d arrays
        else:
            try:
                value = float(value)
            except OverflowError:
                value = math.inf if value > 0 else -math.inf
            except Exception:  # noqa: BLE001 - a Real whose float() fails is no usable number
                return None, WRONG_TYPE
    if value - value:  # NaN or +-Inf (finite values give 0.0)
        return value, NAN if value != value else INF
    return value, None


def classify_feature_number(value: Any) -> NumberVerdict:
    """`classify_number` for a numeric *feature*: a NaN is MISSING there (x is None).

    Profiling counts a NaN cell as null (pandas and numpy spell a missing number that way), so
    the live value is compared with the reference null rate, not counted as invalid. A model's
    NaN prediction stays invalid `nan` (`classify_number`): no data is ever missing there.
    """
    verdict = classify_number(value)
    if verdict[1] == NAN:
        return None, MISSING
    return verdict


def _is_nan(value: Any) -> bool:
    value = python_scalar(value)
    return type(value) is float and value != value


def classify_category(value: Any) -> Verdict:
    """`(category, None)` for a categorical feature's value, else `(None, MISSING | WRONG_TYPE)`.

    A NaN is MISSING: pandas spells a missing string as NaN, and profiling counts it as null.
    """
    if type(value) is str:
        return value, None
    if is_null(value) or _is_nan(value):
        return None, MISSING
    category = canonical_category(value)
    return (category, None) if category is not None else (None, WRONG_TYPE)


def classify_label(value: Any) -> Verdict:
    """`(class label, None)` for a classifier's prediction, else `(None, reason)`.

    MISSING means no prediction (nothing is counted); a NaN or +-Inf float (numpy's too) is NAN
    or INF; anything else that is not a category is WRONG_TYPE.
    """
    if type(value) is str:
        return value, None
    if is_null(value):
        return None, MISSING
    label = canonical_category(value)
    if label is not None:
        return label, None
    value = python_scalar(value)
    if type(value) is float:  # canonical_category takes every finite float
        return None, NAN if value != value else INF
    return None, WRONG_TYPE


def classify_text(value: Any) -> Verdict:
    """`(text, None)` for a text feature's value, else `(None, MISSING | WRONG_TYPE)` (NaN is
    MISSING, as for categories)."""
    if isinstance(value, str):
        return str(value), None
    if is_null(value) or _is_nan(value):
        return None, MISSING
    return None, WRONG_TYPE


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of the first MAX_TEXT_CHARS characters of `text`."""
    return _TOKEN.findall(text[:MAX_TEXT_CHARS].lower())
