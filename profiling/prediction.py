"""The prediction side of a profile: distribution, classes, scores, baseline metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlmon.exporter.profile import (
    CLASSIFICATION,
    ClassificationPrediction,
    Prediction,
    RegressionPrediction,
    widened_range,
)
from mlmon.exporter.values import canonical_category
from mlmon.profiling.calibration import CalibrationCounts
from mlmon.profiling.columns import (
    FloatValues,
    ProfilingError,
    category_counts,
    null_mask,
    to_float,
)
from mlmon.profiling.labels import option_label
from mlmon.profiling.passes import MemoryBudget


def categories(series: pd.Series) -> list[str | None]:
    """Canonical category per cell, None for nulls (row-aligned, unlike category_counts)."""
    nulls = null_mask(series)
    return [
        None if null else (str(v) if isinstance(v, str) else canonical_category(v))
        for v, null in zip(series.to_numpy(dtype=object), nulls, strict=True)
    ]


def scores_from_probabilities(
    prediction: pd.Series, probabilities: np.ndarray, classes: Sequence[str] | None
) -> np.ndarray:
    """The probability of each row's predicted class (the row maximum when classes are unknown)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(prediction):
        raise ProfilingError(
            f"probabilities: expected {len(prediction)} rows of class probabilities, "
            f"got shape {probabilities.shape}"
        )
    if classes is None:
        with np.errstate(invalid="ignore"):
            return np.where(null_mask(prediction), np.nan, np.fmax.reduce(probabilities, axis=1))
    if len(classes) != probabilities.shape[1]:
        raise ProfilingError(
            f"probabilities: {probabilities.shape[1]} columns for {len(classes)} classes"
        )
    column_of = {name: i for i, name in enumerate(classes)}
    scores = np.full(len(prediction), np.nan)
    for row, category in enumerate(categories(prediction)):
        if category is None:
            continue
        if category not in column_of:
            raise ProfilingError(f"predicted class {category!r} has no probability column")
        scores[row] = probabilities[row, column_of[category]]
    return scores


class PredictionColumn:
    """Predictions (and optional scores and targets) gathered chunk by chunk."""

    def __init__(
        self, name: str, kind: str, target_name: str | None, budget: MemoryBudget | None = None
    ) -> None:
        self.name, self.kind, self.target_name = name, kind, target_name
        self.classes: Counter[str] = Counter()
        self.values = FloatValues(name, budget)
        self.scores = FloatValues(f"{name} score", budget)
        self.has_scores = False
        # regression residuals: MAE, RMSE, bias and the edges of the outcome error histogram
        self.errors = FloatValues(f"{name} - {target_name}", budget, sums=True)
        self.compared = self.correct = 0  # classification rows with a target, and hits
        self.calibration = CalibrationCounts()
        self._metrics: dict[str, float] = {}  # regression's, computed with the residual edges

    def float_values(self) -> list[FloatValues]:
        """Every float stream of the prediction side."""
        return [self.values, self.scores, self.errors]

    def add(
        self,
        prediction: pd.Series,
        scores: np.ndarray | None,
        target: pd.Series | None,
        offset: int,
        replay: bool = False,
    ) -> None:
        """One chunk; `replay`: a later pass over the file, which only feeds the float streams."""
        if self.kind == CLASSIFICATION:
            if scores is not None:
                self.has_scores = True
                self.scores.add_floats(np.asarray(scores, dtype=np.float64))
            if replay:
                return
            self.classes.update(category_counts(prediction, self.name))
            if target is not None:
                predicted, actual = categories(prediction), categories(target)
                pairs = zip(predicted, actual, strict=True)
                both = [(p, t) for p, t in pairs if p is not None and t is not None]
                self.compared += len(both)
                self.correct += sum(p == t for p, t in both)
                self.calibration.add(predicted, actual, None if scores is None else
                                     np.asarray(scores, dtype=np.float64))
            return
        if scores is not None:
            raise ProfilingError("scores and probabilities are for classifiers only")
        values = to_float(prediction, self.name, offset)
        self.values.add_floats(values)
        if target is not None:
            self.errors.add_floats(values - to_float(target, str(self.target_name), offset))

    def finish(self, bins: int, margin: float,
               allowed: tuple[float | None, float | None] | None = None) -> Prediction:
        """The prediction side; a regression's allowed range is `allowed` (None ends open),
        else the reference min and max widened by `margin`, as for numeric features."""
        if self.kind == CLASSIFICATION and allowed is not None:
            raise ProfilingError(f"{option_label('prediction_range')} is for regression; column "
                                 f"{self.name!r} holds a classifier's predictions")
        if self.kind != CLASSIFICATION:
            dist = self.values.binned(bins)
            metrics, edges = self.residuals(bins)
            self._metrics = metrics
            allowed_range = allowed or widened_range(dist.min, dist.max, margin)
            return RegressionPrediction(self.values.count, dist, edges, allowed_range)
        total = sum(self.classes.values())
        if not total:
            raise ProfilingError(f"column {self.name!r}: every prediction is null")
        classes = sorted(self.classes)
        score = self.scores.binned(bins) if self.has_scores else None
        shares = tuple(self.classes[c] / total for c in classes)
        return ClassificationPrediction(
            count=total,
            classes=tuple(classes),
            class_shares=shares,
            score=score,
            calibration=self.calibration.finish(classes, shares) if score else None,
        )

    def residuals(self, bins: int) -> tuple[dict[str, float], tuple[float, ...] | None]:
        if self.target_name is None:
            return {}, None
        return self.errors.residuals(bins)

    def metrics(self) -> dict[str, float]:
        """Baseline metrics against the target (after `finish`): accuracy, or MAE, RMSE and
        bias (mean of prediction - target)."""
        if self.target_name is None:
            return {}
        if self.kind == CLASSIFICATION:
            return {"accuracy": self.correct / self.compared} if self.compared else {}
        return dict(self._metrics)
