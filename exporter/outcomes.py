"""Outcome counting: a prediction and the label that arrived for it, into the outcome series.

    verdict = monitor.observe_outcome("spam", "ham", predicted_at=t0)   # one label
    verdict.rejected, verdict.correct, verdict.delay_s                  # None, False, 5400.0
    batch = monitor.observe_outcomes(predictions, actuals, predicted_at=times)  # many, numpy

Classification counts the confusion matrix over the profile's classes plus `__unseen__`
(`mlmon_outcome_class_total{predicted_class, actual_class}`); regression counts the error
(prediction - actual) histogram on the profile's residual edges and the sums of |error| and
error^2. Both count the label delay (arrival - prediction time) when the prediction time is
given. The prediction and the actual are judged by `mlmon.exporter.values` (an actual is judged
like a prediction); whatever cannot be counted is counted under `mlmon_outcome_rejected_total`
by reason (`mlmon.exporter.layout.OUTCOME_REJECTED_REASONS`) and reported on the verdict. Nothing
the caller passes raises here.

The counting works on an `OutcomePlan` (slot offsets) over a `Storage`, so a full `ModelMonitor`
(whose layout holds the plan after its other slots, in one process or in a multi-process
directory) and an outcome-only `OutcomeMonitor` count with the same code.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from mlmon.exporter.batch import BadBatch, _as_list, _codes, _is_series, _prediction_column
from mlmon.exporter.layout import (
    BAD_BATCH,
    BAD_DELAY,
    INVALID_PREDICTION,
    MISSING_ACTUAL,
    MISSING_PREDICTION,
    NO_PREDICTION_IN_PROFILE,
    OUTCOME_REJECTED_REASONS,
    OutcomePlan,
)
from mlmon.exporter.multiprocess import Storage
from mlmon.exporter.values import (
    INF,
    MISSING,
    NAN,
    WRONG_TYPE,
    classify_label,
    classify_number,
    is_null,
)

INTERNAL_ERROR = "internal_error"
# A reason's code in the batch arrays: 0 = counted, i + 1 = OUTCOME_REJECTED_REASONS[i].
_CODE = {r: i + 1 for i, r in enumerate(OUTCOME_REJECTED_REASONS)}
_REASON_OF_CODE = (None, *OUTCOME_REJECTED_REASONS)
_REASON_ARRAY = np.array(_REASON_OF_CODE, dtype=object)  # fancy-indexed per batch: C speed


class OutcomeVerdict:
    """What one `observe_outcome()` counted.

    `rejected`: the reason when the label was not counted, else None. `correct` (classifier)
    and `error` (regression, prediction - actual) describe a counted label, for the record.
    `delay_s`: seconds from prediction to label when both times were usable, else None;
    `bad_delay` is True when they were given but unusable (counted as `bad_delay`).
    """

    __slots__ = ("rejected", "correct", "error", "delay_s", "bad_delay")

    def __init__(self, rejected: str | None = None, correct: bool | None = None,
                 error: float | None = None, delay_s: float | None = None,
                 bad_delay: bool = False) -> None:
        self.rejected = rejected
        self.correct = correct
        self.error = error
        self.delay_s = delay_s
        self.bad_delay = bad_delay

    def __repr__(self) -> str:
        return (f"OutcomeVerdict(rejected={self.rejected!r}, correct={self.correct!r}, "
                f"error={self.error!r}, delay_s={self.delay_s!r}, bad_delay={self.bad_delay!r})")


class OutcomeBatch:
    """What one `observe_outcomes()` counted, row-aligned with the input.

    `counted`: labels counted; `rejected`: reason -> labels not counted (and `bad_delay`:
    counted labels whose delay was not); `reasons[i]`: why row i was not counted, or None;
    `correct` (classifier, bool) and `errors` (regression, NaN for a row not counted) per row;
    `delays`: seconds per row, NaN when unknown or unusable. A batch whose structure is
    unusable (lengths differ, not one-dimensional) counts `bad_batch` once and `rows` is 0.
    """

    __slots__ = ("rows", "counted", "rejected", "reasons", "correct", "errors", "delays")

    def __init__(self, rows: int, counted: int, rejected: dict[str, int],
                 reasons: list[str | None], correct: np.ndarray | None = None,
                 errors: np.ndarray | None = None, delays: np.ndarray | None = None) -> None:
        self.rows = rows
        self.counted = counted
        self.rejected = rejected
        self.reasons = reasons
        self.correct = correct
        self.errors = errors
        self.delays = delays

    def __repr__(self) -> str:
        return (f"OutcomeBatch(rows={self.rows}, counted={self.counted}, "
                f"rejected={self.rejected!r})")


def timestamp_seconds(value: Any) -> float | None:
    """Unix seconds from a number, a `datetime` (naive = UTC), a numpy datetime64 or an
    ISO-8601 string; None when the value is none of these (or not finite)."""
    if type(value) is float:  # the common case first: Unix seconds
        return value if not value - value else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, str):
        try:
            return timestamp_seconds(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        return float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if hasattr(value, "timestamp") and hasattr(value, "tzinfo"):  # pandas Timestamp
        try:
            return timestamp_seconds(value.to_pydatetime())
        except Exception:  # noqa: BLE001 - NaT and odd objects: no usable time
            return None
    x, reason = classify_number(value)
    return x if reason is None else None


class OutcomeMethods:
    """The outcome API of a monitor that holds an `OutcomeCounter` as `_outcomes`."""

    _outcomes: OutcomeCounter

    def observe_outcome(self, prediction: Any, actual: Any, *, predicted_at: Any = None,
                        arrived_at: Any = None) -> OutcomeVerdict:
        """Count one label against its prediction; never raises.

        `predicted_at` / `arrived_at`: Unix seconds, datetimes, numpy datetime64 or ISO-8601
        strings, for the label delay (arrival defaults to now; no delay without
        `predicted_at`).
        """
        return self._outcomes.observe(prediction, actual, predicted_at, arrived_at)

    def observe_outcomes(self, predictions: Any, actuals: Any, *, predicted_at: Any = None,
                         arrived_at: Any = None) -> OutcomeBatch:
        """Count many labels at once (aligned columns: lists, numpy arrays, pandas Series),
        vectorised; never raises. `predicted_at`: a column; `arrived_at`: a column, one time
        for every row, or None for now."""
        return self._outcomes.observe_many(predictions, actuals, predicted_at, arrived_at)

    def reject_outcome(self, reason: str, n: int = 1) -> None:
        """Count `n` labels that could not be joined (`unknown_id`, `duplicate`, ...)."""
        self._outcomes.reject(reason, n)


class OutcomeCounter:
    """Counts outcomes into the slots of `plan` in `storage` (its lock and values are read at
    every call: a forked child re-opens the storage with new ones)."""

    def __init__(self, plan: OutcomePlan, storage: Storage,
                 clock: Callable[[], float] = time.time) -> None:
        self.plan = plan
        self.storage = storage
        self.clock = clock
        self._k = len(plan.classes)
        self._index = plan.class_index or {}
        self._edges = list(plan.error.edges) if plan.error is not None else []

    # ---- one label ------------------------------------------------------------------------

    def observe(self, prediction: Any, actual: Any, predicted_at: Any = None,
                arrived_at: Any = None) -> OutcomeVerdict:
        """Count one label; never raises."""
        try:
            return self._observe(prediction, actual, predicted_at, arrived_at)
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            return self.reject(INTERNAL_ERROR)

    def reject(self, reason: str, n: int = 1) -> OutcomeVerdict:
        """Count `n` labels not counted for `reason` (one of OUTCOME_REJECTED_REASONS; the
        join counts its own: `unknown_id`, `duplicate`, `unknown_model`)."""
        slot = self.plan.rejected.get(reason, self.plan.rejected[INTERNAL_ERROR])
        with self.storage.lock:
            self.storage.values[slot] += float(n)
        return OutcomeVerdict(reason)

    def _observe(self, prediction: Any, actual: Any, predicted_at: Any,
                 arrived_at: Any) -> OutcomeVerdict:
        plan = self.plan
        if plan.matrix >= 0:
            p, reason = classify_label(prediction)
            if reason is not None:
                return self.reject(MISSING_PREDICTION if reason is MISSING else INVALID_PREDICTION)
            a, reason = classify_label(actual)
            if reason is not None:
                return self.reject(MISSING_ACTUAL if reason is MISSING else reason)
            assert p is not None and a is not None  # no reason: labels
            unseen = self._k - 1
            slots = [plan.matrix + self._index.get(p, unseen) * self._k
                     + self._index.get(a, unseen)]
            sums: tuple[tuple[int, float], ...] = ()
            verdict = OutcomeVerdict(correct=p == a)
        elif plan.error is not None:
            y, reason = classify_number(prediction)
            if reason is not None:
                return self.reject(MISSING_PREDICTION if reason is MISSING else INVALID_PREDICTION)
            truth, reason = classify_number(actual)
            if reason is not None:
                return self.reject(MISSING_ACTUAL if reason is MISSING else reason)
            assert y is not None and truth is not None  # no reason: finite floats
            error = y - truth
            squared = error * error
            if squared - squared:  # 1e200 - -1e200 overflows: an infinite error
                return self.reject(INF)
            hist = plan.error
            slots = [hist.base + bisect_left(self._edges, error)]
            sums = ((hist.sum_slot, error), (plan.absolute, abs(error)), (plan.squared, squared))
            verdict = OutcomeVerdict(error=error)
        else:
            return self.reject(NO_PREDICTION_IN_PROFILE)
        delay_slot = -1
        if predicted_at is not None:
            delay = self._delay(predicted_at, arrived_at)
            if delay is None:
                verdict.bad_delay = True
                delay_slot = plan.rejected[BAD_DELAY]
            else:
                verdict.delay_s = delay
                delay_slot = plan.delay.base + bisect_left(plan.delay.edges, delay)
        storage = self.storage
        with storage.lock:
            c = storage.values
            for slot in slots:
                c[slot] += 1.0
            for slot, value in sums:
                c[slot] += value
            if delay_slot >= 0:
                c[delay_slot] += 1.0
                if verdict.delay_s is not None:
                    c[plan.delay.sum_slot] += verdict.delay_s
        return verdict

    def _delay(self, predicted_at: Any, arrived_at: Any) -> float | None:
        start = timestamp_seconds(predicted_at)
        end = self.clock() if arrived_at is None else timestamp_seconds(arrived_at)
        if start is None or end is None or end < start:
            return None
        return end - start

    # ---- many labels ----------------------------------------------------------------------

    def observe_many(self, predictions: Any, actuals: Any, predicted_at: Any = None,
                     arrived_at: Any = None) -> OutcomeBatch:
        """Count aligned columns of predictions and actuals (lists, numpy arrays, pandas
        Series); never raises. `predicted_at`: a column of prediction times (None / NaN / NaT
        for an unknown one); `arrived_at`: a column, one time for all, or None for now."""
        try:
            return self._observe_many(predictions, actuals, predicted_at, arrived_at)
        except BadBatch:
            self.reject(BAD_BATCH)
            return OutcomeBatch(0, 0, {BAD_BATCH: 1}, [])
        except Exception:  # noqa: BLE001 - the serving path must never see our failures
            self.reject(INTERNAL_ERROR)
            return OutcomeBatch(0, 0, {INTERNAL_ERROR: 1}, [])

    def _observe_many(self, predictions: Any, actuals: Any, predicted_at: Any,
                      arrived_at: Any) -> OutcomeBatch:
        plan = self.plan
        predictions, actuals = _prediction_column(predictions), _prediction_column(actuals)
        n = _length(predictions)
        if _length(actuals) != n:
            raise BadBatch(BAD_BATCH)
        delta = np.zeros(self.storage.layout.size)
        correct = errors = None
        if plan.matrix >= 0:
            codes, correct = self._judge_classes(predictions, actuals, n)
            k = self._k
            ok = codes[0] == 0
            cells = codes[1][ok] * k + codes[2][ok]
            delta[plan.matrix:plan.matrix + k * k] += np.bincount(cells, minlength=k * k)
            reason_codes = codes[0]
        elif plan.error is not None:
            reason_codes, errors = self._judge_errors(predictions, actuals, n)
            ok = reason_codes == 0
            e = errors[ok]
            hist = plan.error
            idx = np.searchsorted(np.asarray(hist.edges), e, side="left")
            delta[hist.base:hist.base + len(hist.edges) + 1] += np.bincount(
                idx, minlength=len(hist.edges) + 1)
            delta[hist.sum_slot] += float(e.sum())
            delta[plan.absolute] += float(np.abs(e).sum())
            delta[plan.squared] += float(np.square(e).sum())
        else:
            reason_codes = np.full(n, _CODE[NO_PREDICTION_IN_PROFILE], dtype=np.intp)
            ok = np.zeros(n, dtype=bool)
        delays = self._delays(predicted_at, arrived_at, n)
        counted_delays = delays[ok]
        usable = counted_delays[~np.isnan(counted_delays)]
        bad = int(np.count_nonzero(np.isinf(usable)))  # _delays marks unusable ones -inf
        usable = usable[np.isfinite(usable)]
        idx = np.searchsorted(np.asarray(plan.delay.edges), usable, side="left")
        delta[plan.delay.base:plan.delay.base + len(plan.delay.edges) + 1] += np.bincount(
            idx, minlength=len(plan.delay.edges) + 1)
        delta[plan.delay.sum_slot] += float(usable.sum())
        per_reason = np.bincount(reason_codes, minlength=len(_REASON_OF_CODE))
        rejected = {r: int(c) for r, c in zip(OUTCOME_REJECTED_REASONS, per_reason[1:],
                                              strict=True) if c}
        if bad:
            rejected[BAD_DELAY] = bad
        for reason, count in rejected.items():
            delta[plan.rejected[reason]] += count
        with self.storage.lock:
            self.storage.add(delta)
        delays = np.where(np.isinf(delays), np.nan, delays)
        reasons = _REASON_ARRAY[reason_codes].tolist()
        return OutcomeBatch(n, int(per_reason[0]), rejected, reasons, correct, errors, delays)

    def _judge_classes(self, predictions: Any, actuals: Any,
                       n: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """(reason codes, predicted index, actual index) per row, and `correct` per row."""
        k, index = self._k, self._index
        unseen = k - 1
        # label codes: 0..k-1 class index (k - 1 = unseen), k + 1 + i = reason i of _LABEL_REASONS

        def code_of(v: Any) -> int:
            label, reason = classify_label(v)
            if reason is not None:
                return k + 1 + _LABEL_REASONS.index(reason)
            assert label is not None
            return index.get(label, unseen)

        p = _codes(_as_list(predictions), code_of)
        a = _codes(_as_list(actuals), code_of)
        reasons = np.zeros(n, dtype=np.intp)
        bad_a = a > k
        a_reason = np.asarray([_CODE[MISSING_ACTUAL], _CODE[NAN], _CODE[INF], _CODE[WRONG_TYPE]])
        reasons[bad_a] = a_reason[a[bad_a] - k - 1]
        bad_p = p > k
        reasons[bad_p] = np.where(p[bad_p] == k + 1, _CODE[MISSING_PREDICTION],
                                  _CODE[INVALID_PREDICTION])
        ok = reasons == 0
        correct = ok & (p == a)
        both_unseen = np.flatnonzero(ok & (p == unseen) & (a == unseen))
        if both_unseen.size:  # two unseen classes share a cell: compare the labels themselves
            plist, alist = _as_list(predictions), _as_list(actuals)
            for i in both_unseen.tolist():
                correct[i] = classify_label(plist[i])[0] == classify_label(alist[i])[0]
        return (reasons, np.where(ok, p, 0), np.where(ok, a, 0)), correct

    def _judge_errors(self, predictions: Any, actuals: Any,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
        """Reason codes per row and the errors (NaN where not counted)."""
        y, y_reason = _aligned_floats(predictions, n)
        truth, t_reason = _aligned_floats(actuals, n)
        t_codes = np.asarray([0, _CODE[MISSING_ACTUAL], _CODE[NAN], _CODE[INF], _CODE[WRONG_TYPE]])
        reasons = t_codes[t_reason]
        bad_y = y_reason > 0
        reasons[bad_y] = np.where(y_reason[bad_y] == 1, _CODE[MISSING_PREDICTION],
                                  _CODE[INVALID_PREDICTION])
        with np.errstate(over="ignore", invalid="ignore"):
            errors = y - truth
            overflow = (reasons == 0) & ~np.isfinite(np.square(errors))
        reasons[overflow] = _CODE[INF]
        errors[reasons != 0] = np.nan
        return reasons, errors

    def _delays(self, predicted_at: Any, arrived_at: Any, n: int) -> np.ndarray:
        """Seconds per row: NaN when the prediction time is unknown, -inf when unusable."""
        if predicted_at is None:
            return np.full(n, np.nan)
        start, start_bad = _seconds(_prediction_column(predicted_at), n)
        if arrived_at is None or not _is_column(arrived_at):
            end_value = self.clock() if arrived_at is None else timestamp_seconds(arrived_at)
            end = np.full(n, np.nan if end_value is None else end_value)
            end_bad = np.full(n, end_value is None)
        else:
            end, end_bad = _seconds(_prediction_column(arrived_at), n)
        with np.errstate(invalid="ignore"):
            delays: np.ndarray = end - start
            unusable = start_bad | (~np.isnan(start) & (end_bad | (delays < 0)))
        delays[unusable] = -np.inf
        return delays


# The reasons classify_label / classify_number give, in the order of the label codes above.
_LABEL_REASONS = (MISSING, NAN, INF, WRONG_TYPE)


def _length(x: Any) -> int:
    try:
        return len(x)
    except TypeError as exc:
        raise BadBatch(BAD_BATCH) from exc


def _is_column(x: Any) -> bool:
    return isinstance(x, (list, tuple, np.ndarray)) or _is_series(x)


def _aligned_floats(col: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Floats per row and a code per row: 0 usable, 1 null, 2 NaN, 3 +-Inf, 4 wrong type
    (a NaN in a float column is `nan`, as observe_batch() judges predictions)."""
    if _is_series(col) and col.dtype.kind in "fiu" and isinstance(col.dtype, np.dtype):
        col = col.to_numpy()
    if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
        x = col.astype(np.float64)
        codes = np.where(np.isnan(x), 2, np.where(np.isinf(x), 3, 0))
        return x, codes.astype(np.intp)
    values = _as_list(col)
    x = np.full(n, np.nan)
    codes = np.zeros(n, dtype=np.intp)
    code_of = {MISSING: 1, NAN: 2, INF: 3, WRONG_TYPE: 4}
    for i, v in enumerate(values):
        number, reason = classify_number(v)
        if reason is None:
            x[i] = number
        else:
            codes[i] = code_of[reason]
    return x, codes


def _seconds(col: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds per row (NaN when unknown: None, NaN, NaT) and whether each is unusable."""
    if _is_series(col) and col.dtype.kind == "M":
        col = col.to_numpy()
    if isinstance(col, np.ndarray) and col.dtype.kind == "M":
        ns = col.astype("datetime64[ns]")
        x = ns.astype(np.int64).astype(np.float64) / 1e9
        x[np.isnat(ns)] = np.nan
        return x, np.zeros(n, dtype=bool)
    if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
        x = col.astype(np.float64)
        return np.where(np.isinf(x), np.nan, x), np.isinf(x)
    values = _as_list(col)
    if len(values) != n:
        raise BadBatch(BAD_BATCH)
    x = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        if is_null(v) or (type(v) is float and v != v):
            continue
        seconds = timestamp_seconds(v)
        if seconds is None:
            bad[i] = True
        else:
            x[i] = seconds
    return x, bad
