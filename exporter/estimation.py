"""Expected confusion counts from calibrated scores (confidence-based performance estimation).

A prediction of class i with score s is right with probability p = calibration_i(s) (the step
function fitted on the reference, `ClassCalibration`; the raw score clipped to [0, 1] when the
profile has none). Its expected contribution to the confusion matrix is p in cell (i, i) and
(1 - p) * error_share_ij in each cell (i, j), j != i: a row that sums to 1, added to the
`mlmon_estimated_outcome_class` counters (docs/estimation.md). For a binary classifier the
single error share is 1, so the row is exactly (p, 1 - p).

`observe()` inlines `Plan` (one bisect, two additions for a binary classifier); `observe_batch()`
calls `count_estimates` with numpy. Both compute the same expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mlmon.exporter.layout import Layout
from mlmon.exporter.profile import ClassificationPrediction


class Plan(NamedTuple):
    """One predicted class: its calibration steps (values None: raw scores), the slot of its
    diagonal cell, and the (slot, share) of each other cell of its row; `other` is that one
    cell's slot when there is only one (a binary classifier: share 1), else -1."""

    thresholds: list[float]
    values: list[float] | None
    diagonal: int
    other: int
    others: tuple[tuple[int, float], ...]


def other_class_shares(weights: Sequence[float], k: int) -> tuple[float, ...]:
    """The weights of every class but the k-th, normalised to sum to 1 (uniform when all 0)."""
    others = [w for j, w in enumerate(weights) if j != k]
    total = sum(others)
    return tuple(w / total for w in others) if total else tuple(1.0 / len(others)
                                                                for _ in others)


def error_shares(prediction: ClassificationPrediction) -> list[tuple[float, ...]]:
    """Per class, the shares of the other classes among its wrong predictions: the calibration's
    when the profile has one, else the other classes' reference prediction shares."""
    if prediction.calibration is not None:
        return [c.error_shares for c in prediction.calibration]
    return [other_class_shares(prediction.class_shares, k)
            for k in range(len(prediction.classes))]


def plans(layout: Layout) -> dict[str, Plan]:
    """Predicted class -> Plan; empty when the profile has no score (nothing to estimate)."""
    pred = layout.profile.prediction
    if layout.estimated < 0 or not isinstance(pred, ClassificationPrediction):
        return {}
    n = len(pred.classes)
    out = {}
    for i, (cls, shares) in enumerate(zip(pred.classes, error_shares(pred), strict=True)):
        cal = None if pred.calibration is None else pred.calibration[i]
        row = layout.estimated + i * n
        others = tuple((row + j, share) for j, share in zip(
            [j for j in range(n) if j != i], shares, strict=True))
        other = others[0][0] if len(others) == 1 else -1
        if cal is None or not cal.values:
            out[cls] = Plan([], None, row + i, other, others)
        else:
            out[cls] = Plan(list(cal.thresholds), list(cal.values), row + i, other, others)
    return out


def is_calibrated(layout: Layout) -> bool:
    pred = layout.profile.prediction
    return isinstance(pred, ClassificationPrediction) and pred.calibration is not None


def probability_right(plan: Plan, scores: np.ndarray) -> np.ndarray:
    """calibration(s) for each score (finite), as `observe()` computes it one at a time."""
    right: np.ndarray
    if plan.values is None:
        right = np.clip(scores, 0.0, 1.0)
    else:
        right = np.asarray(plan.values)[np.searchsorted(plan.thresholds, scores, side="left")]
    return right


def count_estimates(delta: np.ndarray, plans_by_code: list[Plan], codes: np.ndarray,
                    scores: np.ndarray) -> None:
    """Add the expected rows of predictions `codes` (index into plans_by_code, the profile's
    classes) with finite `scores` to `delta`."""
    for code, plan in enumerate(plans_by_code):
        mine = codes == code
        if not mine.any():
            continue
        p = probability_right(plan, scores[mine])
        right = float(p.sum())
        delta[plan.diagonal] += right
        wrong = float(mine.sum()) - right
        for slot, share in plan.others:
            delta[slot] += wrong * share
