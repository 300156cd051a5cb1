"""Data for the estimation tests: a binary classifier whose scores are calibrated by
construction, and an independent numpy implementation of the expected confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlmon.exporter.profile import ClassificationPrediction, Profile

CLASSES = ("no", "yes")


def binary_traffic(rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0,
                   concept_drift: bool = False) -> dict[str, np.ndarray]:
    """x ~ N(shift, scale); the world says P(yes | x) = sigmoid(2x), and so does the model,
    which predicts the likelier class with that probability as its score. `shift` and `scale`
    move the inputs only (covariate shift: a smaller scale crowds them near the decision
    boundary, where the model is unsure); `concept_drift` flips the world (P(yes | x) =
    sigmoid(-2x)) while the inputs and the model stay as they were."""
    x = rng.normal(shift, scale, n)
    p_yes = 1.0 / (1.0 + np.exp(-2.0 * x))
    world = 1.0 - p_yes if concept_drift else p_yes
    actual = np.where(rng.random(n) < world, "yes", "no")
    predicted = np.where(p_yes > 0.5, "yes", "no")
    score = np.where(predicted == "yes", p_yes, 1.0 - p_yes)
    return {"x": x, "actual": actual, "predicted": predicted, "score": score}


def expected_confusion(profile: Profile, predicted: Sequence[str], scores: np.ndarray
                       ) -> np.ndarray:
    """Rows predicted class, columns actual class: for every prediction with a finite score,
    p = calibration(score) on the diagonal and (1 - p) spread by the error shares."""
    pred = profile.prediction
    assert isinstance(pred, ClassificationPrediction)
    classes = list(pred.classes)
    n = len(classes)
    predicted_arr = np.asarray(predicted, dtype=object)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros((n, n))
    for i, cls in enumerate(classes):
        s = scores[(predicted_arr == cls) & np.isfinite(scores)]
        cal = None if pred.calibration is None else pred.calibration[i]
        if cal is not None and cal.values:
            p = np.asarray(cal.values)[np.searchsorted(cal.thresholds, s, side="left")]
            shares = np.asarray(cal.error_shares)
        else:
            p = np.clip(s, 0.0, 1.0)
            others = np.delete(np.asarray(pred.class_shares), i)
            shares = (others / others.sum() if cal is None else np.asarray(cal.error_shares))
        out[i, i] = p.sum()
        out[i, [j for j in range(n) if j != i]] = (1.0 - p).sum() * shares
    return out


def binomial_standard_error(p: np.ndarray) -> float:
    """The standard error of a realized accuracy around the estimate mean(p), when each
    prediction is right with its own probability p: sqrt(sum p(1 - p)) / n (<= 0.5 / sqrt(n))."""
    return float(np.sqrt(np.sum(p * (1.0 - p))) / p.size)


def calibrated_probabilities(profile: Profile, predicted: Sequence[str], scores: np.ndarray
                             ) -> np.ndarray:
    """Each prediction's calibrated probability of being right (the diagonal of its row)."""
    pred = profile.prediction
    assert isinstance(pred, ClassificationPrediction) and pred.calibration is not None
    out = []
    for y, s in zip(predicted, scores, strict=True):
        cal = pred.calibration[pred.classes.index(y)]
        out.append(cal.values[int(np.searchsorted(cal.thresholds, s, side="left"))])
    return np.asarray(out)
