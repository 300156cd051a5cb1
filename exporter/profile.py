"""The reference profile: what the training data looked like, as plain validated data.

This module is the only code that parses or writes profile JSON (schema in docs/design.md).
Everything else receives a `Profile`. Validation happens here, once, and raises `ProfileError`
with a message that names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal

SCHEMA_VERSION = 1

# Final: each is its literal string to mypy, so `f.kind == NUMERIC` narrows a Feature to
# NumericFeature (each class's `kind` is a Literal, and mypy checks it matches the default).
NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"
TEXT: Final = "text"
REGRESSION: Final = "regression"
CLASSIFICATION: Final = "classification"

# Shares are floats computed from counts; allow float noise when checking they sum to one.
_SHARE_TOLERANCE = 1e-6


_FLOAT_MAX = 1.7976931348623157e308


def widened_range(low: float, high: float, margin: float) -> tuple[float, float]:
    """[low, high] widened by margin * (high - low) each side, kept finite."""
    width = margin * (high - low) if margin else 0.0
    return (float(max(low - width, -_FLOAT_MAX)), float(min(high + width, _FLOAT_MAX)))


class ProfileError(ValueError):
    """A profile that cannot be used: corrupt, inconsistent, or of an unknown schema version."""


@dataclass(frozen=True)
class Binned:
    """A distribution over bins (edges[i-1], edges[i]], with an open bin either side."""

    edges: tuple[float, ...]
    bin_shares: tuple[float, ...]
    min: float
    max: float
    mean: float
    std: float

    def cumulative_shares(self) -> tuple[float, ...]:
        """Share of reference values <= each edge, then 1.0 for +Inf."""
        total, out = 0.0, []
        for share in self.bin_shares[:-1]:
            total += share
            out.append(min(total, 1.0))
        out.append(1.0)
        return tuple(out)


@dataclass(frozen=True)
class NumericFeature:
    name: str
    count: int
    null_rate: float
    binned: Binned
    allowed_range: tuple[float, float]
    kind: Literal["numeric"] = field(default=NUMERIC, init=False)


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    count: int
    null_rate: float
    top_categories: tuple[str, ...]
    top_shares: tuple[float, ...]
    other_share: float
    seen: tuple[str, ...]
    allowed: tuple[str, ...] | None  # None: "seen in training"
    kind: Literal["categorical"] = field(default=CATEGORICAL, init=False)


@dataclass(frozen=True)
class TextFeature:
    name: str
    count: int
    null_rate: float
    vocabulary: tuple[str, ...]
    oov_rate: float
    kind: Literal["text"] = field(default=TEXT, init=False)


Feature = NumericFeature | CategoricalFeature | TextFeature


# Without residual edges in the profile (built without `--target-column`, or by an older
# mlmon), the error histogram gets edges at these multiples of the reference predictions'
# standard deviation, either side of 0: errors are judged against the spread of what the model
# predicts, the only scale such a profile knows.
DEFAULT_ERROR_EDGE_STDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class RegressionPrediction:
    """Regression predictions: their distribution, and for outcomes and section 3 of the
    profile docs the residual edges (quantiles of prediction - target) and the allowed range.

    `allowed_range` ends are None when open (`--prediction-range 0:`); the whole range is None
    in profiles written before it existed (then `Profile.prediction_range()` derives it).
    """

    count: int
    binned: Binned
    residual_edges: tuple[float, ...] | None = None
    allowed_range: tuple[float | None, float | None] | None = None
    kind: Literal["regression"] = field(default=REGRESSION, init=False)

    def error_edges(self) -> tuple[float, ...]:
        """Edges of the outcome error histogram: the residual edges, else spread-based ones."""
        if self.residual_edges:
            return self.residual_edges
        std = self.binned.std if self.binned.std > 0 else 1.0
        half = tuple(k * std for k in DEFAULT_ERROR_EDGE_STDS)
        return (*(-h for h in reversed(half)), 0.0, *half)


@dataclass(frozen=True)
class ClassCalibration:
    """How often a prediction of one class was right on the reference, given its score.

    A non-decreasing step function (isotonic): a score s <= thresholds[0] maps to values[0],
    thresholds[i-1] < s <= thresholds[i] to values[i], above the last threshold to values[-1].
    No values (and no thresholds): the reference had no scored, labelled prediction of this
    class, and its raw score (clipped to [0, 1]) stands in.
    `error_shares`: when a prediction of this class is wrong, the share of each other class (the
    profile's classes without this one, in order) among the actual ones.
    """

    thresholds: tuple[float, ...]
    values: tuple[float, ...]
    error_shares: tuple[float, ...]


@dataclass(frozen=True)
class ClassificationPrediction:
    count: int
    classes: tuple[str, ...]
    class_shares: tuple[float, ...]
    score: Binned | None
    # one per class, fitted on the reference's target and scores; None: estimation uses the raw
    # scores (docs/estimation.md)
    calibration: tuple[ClassCalibration, ...] | None = None
    kind: Literal["classification"] = field(default=CLASSIFICATION, init=False)


Prediction = RegressionPrediction | ClassificationPrediction


@dataclass(frozen=True)
class Options:
    bins: int = 10
    top_k: int = 20
    vocabulary_size: int = 1000
    range_margin: float = 0.1
    max_seen_categories: int = 10_000


@dataclass(frozen=True)
class Profile:
    """A validated reference profile.

    >>> profile = Profile.load("profile.json")
    >>> profile.model_name, profile.model_version, [f.name for f in profile.features]
    """

    model_name: str
    model_version: str
    rows: int
    features: tuple[Feature, ...]
    prediction: Prediction | None
    trained_at: str | None = None
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    options: Options = field(default_factory=Options)

    # ---- reading -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Profile:
        """Read and validate a profile file; errors name the file."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from exc
        try:
            return cls.loads(text)
        except ProfileError as exc:
            raise ProfileError(f"{path}: {exc}") from exc

    @classmethod
    def loads(cls, text: str) -> Profile:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"not a profile: invalid JSON ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, dict):
            raise ProfileError("not a profile: the top level must be a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProfileError("not a profile: schema_version is missing")
        if version > SCHEMA_VERSION:
            raise ProfileError(
                f"profile schema_version {version} is newer than this mlmon understands "
                f"({SCHEMA_VERSION}); upgrade mlmon"
            )
        if version < 1:
            raise ProfileError(f"unknown profile schema_version {version}")
        return _parse_profile(data)

    # ---- writing -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "trained_at": self.trained_at,
                "baseline_metrics": dict(self.baseline_metrics),
            },
            "options": {
                "bins": self.options.bins,
                "top_k": self.options.top_k,
                "vocabulary_size": self.options.vocabulary_size,
                "range_margin": self.options.range_margin,
                "max_seen_categories": self.options.max_seen_categories,
            },
            "rows": self.rows,
            "features": [_feature_to_dict(f) for f in self.features],
            "prediction": _prediction_to_dict(self.prediction),
        }

    def dumps(self) -> str:
        """Canonical JSON: sorted keys, fixed indentation, so equal profiles are equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    def dump(self, path: str | os.PathLike[str]) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.dumps())
        os.replace(tmp, path)

    @property
    def sha(self) -> str:
        """Short content hash: tells which profile a running exporter loaded."""
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:12]

    def prediction_range(self) -> tuple[float, float] | None:
        """The allowed regression prediction range, open ends as -inf / inf; None for a
        classifier or no prediction. Profiles without one: the reference min and max widened
        by `options.range_margin`, as for numeric features."""
        pred = self.prediction
        if not isinstance(pred, RegressionPrediction):
            return None
        if pred.allowed_range is None:
            return widened_range(pred.binned.min, pred.binned.max, self.options.range_margin)
        low, high = pred.allowed_range
        return (-math.inf if low is None else low, math.inf if high is None else high)

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


# ---- parsing helpers (private) ------------------------------------------------------------


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ProfileError(f"{where}: missing field {key!r}")
    return obj[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProfileError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _share(value: Any, where: str) -> float:
    share = _number(value, where)
    if not 0.0 <= share <= 1.0 + _SHARE_TOLERANCE:
        raise ProfileError(f"{where}: a share must be within [0, 1], got {value!r}")
    return share


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: expected a list of strings")
    if len(set(value)) != len(value):
        raise ProfileError(f"{where}: duplicate entries")
    return tuple(value)


def _shares(value: Any, where: str, length: int, total: float = 1.0) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise ProfileError(f"{where}: expected a list of {length} shares")
    shares = tuple(_share(v, f"{where}[{i}]") for i, v in enumerate(value))
    if length and abs(sum(shares) - total) > _SHARE_TOLERANCE:
        raise ProfileError(f"{where}: shares sum to {sum(shares)!r}, expected {total!r}")
    return shares


def _binned(obj: dict[str, Any], where: str) -> Binned:
    edges_raw = _require(obj, "edges", where)
    if not isinstance(edges_raw, list):
        raise ProfileError(f"{where}.edges: expected a list of numbers")
    edges = tuple(_number(e, f"{where}.edges[{i}]") for i, e in enumerate(edges_raw))
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ProfileError(f"{where}.edges: must be strictly increasing")
    return Binned(
        edges=edges,
        bin_shares=_shares(
            _require(obj, "bin_shares", where), f"{where}.bin_shares", len(edges) + 1
        ),
        min=_number(_require(obj, "min", where), f"{where}.min"),
        max=_number(_require(obj, "max", where), f"{where}.max"),
        mean=_number(_require(obj, "mean", where), f"{where}.mean"),
        std=_number(_require(obj, "std", where), f"{where}.std"),
    )


def _parse_feature(obj: Any, index: int) -> Feature:
    if not isinstance(obj, dict):
        raise ProfileError(f"features[{index}]: expected an object")
    name = _require(obj, "name", f"features[{index}]")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"features[{index}].name: expected a non-empty string")
    where = f"feature {name!r}"
    kind = _require(obj, "kind", where)
    count = _count(_require(obj, "count", where), f"{where}.count")
    null_rate = _share(_require(obj, "null_rate", where), f"{where}.null_rate")
    if kind == NUMERIC:
        allowed = _require(obj, "allowed_range", where)
        if not isinstance(allowed, list) or len(allowed) != 2:
            raise ProfileError(f"{where}.allowed_range: expected [low, high]")
        low, high = (_number(v, f"{where}.allowed_range") for v in allowed)
        if low > high:
            raise ProfileError(f"{where}.allowed_range: low {low!r} is above high {high!r}")
        return NumericFeature(name, count, null_rate, _binned(obj, where), (low, high))
    if kind == CATEGORICAL:
        top = _strings(_require(obj, "top_categories", where), f"{where}.top_categories")
        other = _share(_require(obj, "other_share", where), f"{where}.other_share")
        top_shares = _shares(
            _require(obj, "top_shares", where), f"{where}.top_shares", len(top), 1.0 - other
        )
        seen = _strings(_require(obj, "seen", where), f"{where}.seen")
        allowed_raw = _require(obj, "allowed", where)
        allowed = None if allowed_raw is None else _strings(allowed_raw, f"{where}.allowed")
        return CategoricalFeature(name, count, null_rate, top, top_shares, other, seen, allowed)
    if kind == TEXT:
        vocabulary = _strings(_require(obj, "vocabulary", where), f"{where}.vocabulary")
        oov = _share(_require(obj, "oov_rate", where), f"{where}.oov_rate")
        return TextFeature(name, count, null_rate, vocabulary, oov)
    raise ProfileError(f"{where}.kind: unknown kind {kind!r} (numeric, categorical or text)")


def _parse_prediction(obj: Any) -> Prediction | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ProfileError("prediction: expected an object or null")
    kind = _require(obj, "kind", "prediction")
    count = _count(_require(obj, "count", "prediction"), "prediction.count")
    if kind == REGRESSION:
        return RegressionPrediction(count, _binned(obj, "prediction"),
                                    _residual_edges(obj.get("residual_edges")),
                                    _open_range(obj.get("allowed_range")))
    if kind == CLASSIFICATION:
        classes = _strings(_require(obj, "classes", "prediction"), "prediction.classes")
        shares = _shares(
            _require(obj, "class_shares", "prediction"), "prediction.class_shares", len(classes)
        )
        score_raw = obj.get("score")
        score = None if score_raw is None else _binned(score_raw, "prediction.score")
        calibration = _calibration(obj.get("calibration"), len(classes))
        if calibration is not None and score is None:
            raise ProfileError("prediction.calibration: a calibration needs a score")
        return ClassificationPrediction(count, classes, shares, score, calibration)
    raise ProfileError(f"prediction.kind: unknown kind {kind!r} (regression or classification)")


def _calibration(obj: Any, n_classes: int) -> tuple[ClassCalibration, ...] | None:
    if obj is None:
        return None
    where = "prediction.calibration"
    if not isinstance(obj, list) or len(obj) != n_classes:
        raise ProfileError(f"{where}: expected a list of {n_classes} class calibrations or null")
    out = []
    for i, item in enumerate(obj):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ProfileError(f"{at}: expected an object")
        thresholds_raw, values_raw = _require(item, "thresholds", at), _require(item, "values", at)
        if not isinstance(thresholds_raw, list) or not isinstance(values_raw, list) or len(
                values_raw) != len(thresholds_raw) + bool(values_raw):
            raise ProfileError(f"{at}: expected n thresholds and n + 1 values (or neither)")
        thresholds = tuple(_number(t, f"{at}.thresholds") for t in thresholds_raw)
        if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise ProfileError(f"{at}.thresholds: must be strictly increasing")
        values = tuple(_share(v, f"{at}.values") for v in values_raw)
        if any(b < a for a, b in zip(values, values[1:], strict=False)):
            raise ProfileError(f"{at}.values: must be non-decreasing")
        errors = _shares(_require(item, "error_shares", at), f"{at}.error_shares",
                         n_classes - 1)
        out.append(ClassCalibration(thresholds, values, errors))
    return tuple(out)


def _residual_edges(value: Any) -> tuple[float, ...] | None:
    """Optional (profiles before outcomes have none): strictly increasing numbers."""
    if value is None:
        return None
    where = "prediction.residual_edges"
    if not isinstance(value, list):
        raise ProfileError(f"{where}: expected a list of numbers or null")
    edges = tuple(_number(e, f"{where}[{i}]") for i, e in enumerate(value))
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ProfileError(f"{where}: must be strictly increasing")
    return edges


def _open_range(value: Any) -> tuple[float | None, float | None] | None:
    """Optional `[low, high]`, either end null for an open end."""
    if value is None:
        return None
    where = "prediction.allowed_range"
    if not isinstance(value, list) or len(value) != 2:
        raise ProfileError(f"{where}: expected [low, high] (null for an open end)")
    low, high = (None if v is None else _number(v, where) for v in value)
    if low is not None and high is not None and low > high:
        raise ProfileError(f"{where}: low {low!r} is above high {high!r}")
    return (low, high)


def _parse_profile(data: dict[str, Any]) -> Profile:
    model = _require(data, "model", "profile")
    if not isinstance(model, dict):
        raise ProfileError("model: expected an object")
    name, version = _require(model, "name", "model"), _require(model, "version", "model")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ProfileError("model: name and version must be non-empty strings")
    trained_at = model.get("trained_at")
    if trained_at is not None and not isinstance(trained_at, str):
        raise ProfileError("model.trained_at: expected an ISO-8601 string or null")
    metrics_raw = model.get("baseline_metrics") or {}
    if not isinstance(metrics_raw, dict):
        raise ProfileError("model.baseline_metrics: expected an object")
    metrics = {str(k): _number(v, f"model.baseline_metrics.{k}") for k, v in metrics_raw.items()}
    options_raw = data.get("options") or {}
    if not isinstance(options_raw, dict):
        raise ProfileError("options: expected an object")
    try:
        options = Options(**options_raw)
    except TypeError as exc:
        raise ProfileError(f"options: {exc}") from exc
    features_raw = _require(data, "features", "profile")
    if not isinstance(features_raw, list):
        raise ProfileError("features: expected a list")
    features = tuple(_parse_feature(f, i) for i, f in enumerate(features_raw))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ProfileError("features: duplicate feature names")
    return Profile(
        model_name=name,
        model_version=version,
        rows=_count(_require(data, "rows", "profile"), "rows"),
        features=features,
        prediction=_parse_prediction(data.get("prediction")),
        trained_at=trained_at,
        baseline_metrics=metrics,
        options=options,
    )


def _binned_to_dict(b: Binned) -> dict[str, Any]:
    return {
        "edges": list(b.edges),
        "bin_shares": list(b.bin_shares),
        "min": b.min,
        "max": b.max,
        "mean": b.mean,
        "std": b.std,
    }


def _feature_to_dict(f: Feature) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f.name, "kind": f.kind, "count": f.count, "null_rate": f.null_rate
    }
    if isinstance(f, NumericFeature):
        out.update(_binned_to_dict(f.binned), allowed_range=list(f.allowed_range))
    elif isinstance(f, CategoricalFeature):
        out.update(
            top_categories=list(f.top_categories),
            top_shares=list(f.top_shares),
            other_share=f.other_share,
            seen=list(f.seen),
            allowed=None if f.allowed is None else list(f.allowed),
        )
    else:
        out.update(vocabulary=list(f.vocabulary), oov_rate=f.oov_rate)
    return out


def _prediction_to_dict(p: Prediction | None) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, RegressionPrediction):
        out = {"kind": p.kind, "count": p.count, **_binned_to_dict(p.binned)}
        # written only when set, so a profile without them keeps its bytes (and its sha)
        if p.residual_edges is not None:
            out["residual_edges"] = list(p.residual_edges)
        if p.allowed_range is not None:
            out["allowed_range"] = list(p.allowed_range)
        return out
    classifier: dict[str, Any] = {
        "kind": p.kind,
        "count": p.count,
        "classes": list(p.classes),
        "class_shares": list(p.class_shares),
        "score": None if p.score is None else _binned_to_dict(p.score),
    }
    if p.calibration is not None:  # absent, not null: profiles without one keep their bytes
        classifier["calibration"] = [
            {"thresholds": list(c.thresholds), "values": list(c.values),
             "error_shares": list(c.error_shares)} for c in p.calibration]
    return classifier
