"""Records drawn from a profile's reference distribution: live-looking traffic for a new user.

Numeric values pick a bin by its reference share, then a uniform point inside it (the outer
bins are bounded by the reference min and max), so their histogram matches the reference and
drift panels start near zero. Categories follow the top-K shares (the `other` share spread over
the other seen categories), text draws words from the vocabulary.
"""

from __future__ import annotations

import random
from typing import Any

from mlmon.exporter.profile import (
    Binned,
    CategoricalFeature,
    ClassificationPrediction,
    NumericFeature,
    Profile,
    RegressionPrediction,
)


class RecordSampler:
    """`sample()` -> (features, prediction, scores) drawn from the reference profile.

    >>> features, prediction, scores = RecordSampler(profile, seed=1).sample()
    """

    def __init__(self, profile: Profile, seed: int | None = None) -> None:
        self.profile = profile
        self.random = random.Random(seed)

    def _binned(self, b: Binned) -> float:
        bounds = [min(b.min, b.edges[0] if b.edges else b.min), *b.edges,
                  max(b.max, b.edges[-1] if b.edges else b.max)]
        i = self.random.choices(range(len(b.bin_shares)), weights=b.bin_shares)[0]
        return self.random.uniform(bounds[i], bounds[i + 1])

    def _category(self, f: CategoricalFeature) -> str | None:
        others = [c for c in f.seen if c not in set(f.top_categories)]
        choices = list(f.top_categories) + (["\0other"] if others else [])
        weights = list(f.top_shares) + ([f.other_share] if others else [])
        if not choices or sum(weights) <= 0:
            return None
        pick = self.random.choices(choices, weights=weights)[0]
        return self.random.choice(others) if pick == "\0other" else pick

    def sample(self) -> tuple[dict[str, Any], Any, Any]:
        features: dict[str, Any] = {}
        for f in self.profile.features:
            if self.random.random() < f.null_rate:
                features[f.name] = None
            elif isinstance(f, NumericFeature):
                features[f.name] = self._binned(f.binned)
            elif isinstance(f, CategoricalFeature):
                features[f.name] = self._category(f)
            else:
                words = list(f.vocabulary) or ["text"]
                features[f.name] = " ".join(self.random.choices(words, k=5))
        pred = self.profile.prediction
        if isinstance(pred, RegressionPrediction):
            return features, self._binned(pred.binned), None
        if isinstance(pred, ClassificationPrediction) and pred.classes:
            label = self.random.choices(pred.classes, weights=pred.class_shares)[0]
            score = None if pred.score is None else min(1.0, self._binned(pred.score))
            return features, label, score
        return features, None, None
