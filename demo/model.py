"""The demo model: a small regressor on scikit-learn's bundled diabetes data (no downloads).

The data set has ten numeric columns and a disease-progression target. To show categorical
drift we add two synthetic categorical features, drawn with a fixed seed so that every process
(service, traffic generator, tests) sees the same rows:
- `clinic`: four common values and one rare one (`island`, ~2 %) that the drift makes common;
- `channel`: three values; the drift adds values never seen in training.
`sex` (coded 1/2 in the data) is kept as a categorical feature too, and a free-text `note`
(short phrases from a small vocabulary) shows out-of-vocabulary drift; the model ignores it.

Training takes a few milliseconds, so the service trains at start-up instead of shipping a pickle.

The challenger (`train_challenger`) is the same pipeline trained differently: a ridge with a
ten times stronger penalty (alpha 10 instead of 1), as version 2. It shrinks the predictions
towards the mean: on the reference rows the two agree within the default tolerance (0.1 x the
champion's prediction std) on 95 % of the rows, on the drift scenario's inputs on about 67 %,
so the drift also shows as disagreement (tests/test_demo_model.py checks both).

The classifier demo (`train_risk`, `mlmon demo --model risk`, below) predicts "high" or "low"
progression risk from the same features, with probabilities and a calibrated profile, so the
stack shows estimated accuracy before any label (docs/estimation.md); its challenger is
`train_risk_challenger`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

if TYPE_CHECKING:
    from mlmon.exporter.profile import Profile

MODEL_NAME = "diabetes"
MODEL_VERSION = "1"
CHALLENGER_VERSION = "2"
CHAMPION_ALPHA, CHALLENGER_ALPHA = 1.0, 10.0
SEED = 7

NUMERIC_FEATURES = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
CATEGORICAL_FEATURES = ("sex", "clinic", "channel")
TEXT_FEATURES = ("note",)
MODEL_FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
FEATURES = MODEL_FEATURES + TEXT_FEATURES

# value -> probability; `island` is the rare category the drift scenario makes common.
CLINICS = {"north": 0.40, "south": 0.30, "east": 0.18, "west": 0.10, "island": 0.02}
CHANNELS = {"web": 0.5, "app": 0.3, "phone": 0.2}
NOTES = ("routine check", "follow up visit", "reports fatigue", "asks about diet",
         "routine check with lab results", "medication review")
# A small effect so the synthetic features matter to the model (and to its predictions).
_CLINIC_EFFECT = {"north": 0.0, "south": 8.0, "east": -6.0, "west": 4.0, "island": 25.0}


def reference_frame(seed: int = SEED) -> pd.DataFrame:
    """The full data set with the synthetic columns and the `target`, deterministic for a seed."""
    data: pd.DataFrame = load_diabetes(scaled=False, as_frame=True).frame  # sklearn: untyped
    rng = np.random.default_rng(seed)
    n = len(data)
    frame: pd.DataFrame = data[list(NUMERIC_FEATURES)].astype(float).copy()
    frame["sex"] = data["sex"].astype(int).astype(str)
    frame["clinic"] = rng.choice(list(CLINICS), size=n, p=list(CLINICS.values()))
    frame["channel"] = rng.choice(list(CHANNELS), size=n, p=list(CHANNELS.values()))
    frame["note"] = rng.choice(NOTES, size=n)
    frame["target"] = data["target"].astype(float) + frame["clinic"].map(_CLINIC_EFFECT)
    return frame


def _columns() -> ColumnTransformer:
    # Imputation and handle_unknown="ignore" keep the model answering on the drifted inputs
    # (nulls, unseen categories): monitoring should see the drift, not a crashing service.
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ])
    return ColumnTransformer([
        ("numeric", numeric, list(NUMERIC_FEATURES)),
        ("categorical", categorical, list(CATEGORICAL_FEATURES)),
    ])  # remainder="drop": the text note is monitored, not used


def _pipeline(alpha: float = CHAMPION_ALPHA) -> Pipeline:
    return Pipeline([("columns", _columns()), ("ridge", Ridge(alpha=alpha))])


@dataclass(frozen=True)
class _Trained:
    """A trained pipeline plus the reference rows it was trained on (either demo model)."""

    pipeline: Pipeline
    reference: pd.DataFrame  # features and target of the training rows
    name: str = MODEL_NAME
    version: str = MODEL_VERSION

    def features(self) -> pd.DataFrame:
        features: pd.DataFrame = self.reference[list(FEATURES)]
        return features

    def records(self) -> list[dict[str, Any]]:
        """The reference rows as JSON-ready dicts (what the traffic generator replays)."""
        # pandas types record keys as Hashable; these are the str names in FEATURES
        return cast("list[dict[str, Any]]", self.features().to_dict(orient="records"))


@dataclass(frozen=True)
class DemoModel(_Trained):
    """The regression demo model.

    >>> model = train()
    >>> round(model.predict_one(model.records()[0])) > 0
    True
    """

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        predictions: np.ndarray = self.pipeline.predict(frame[list(MODEL_FEATURES)])
        return predictions

    def predict_one(self, record: dict[str, Any]) -> float:
        """Predict one record; absent, null or wrongly typed values become nulls for the model."""
        return float(self.predict(to_frame([record]))[0])


def to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records to a model-ready frame: numbers as float (else NaN), categories as str (else NaN)."""
    rows = []
    for record in records:
        row: dict[str, Any] = {}
        for name in NUMERIC_FEATURES:
            value = record.get(name)
            if (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value)):
                row[name] = float(value)
            else:
                row[name] = np.nan
        for name in CATEGORICAL_FEATURES:
            value = record.get(name)
            row[name] = str(value) if value is not None else np.nan
        for name in TEXT_FEATURES:
            row[name] = record.get(name) if isinstance(record.get(name), str) else None
        rows.append(row)
    frame: pd.DataFrame = pd.DataFrame(rows, columns=list(FEATURES))
    return frame


def train(seed: int = SEED, *, alpha: float = CHAMPION_ALPHA,
          version: str = MODEL_VERSION) -> DemoModel:
    """Train on the whole data set: the demo shows monitoring, not model selection."""
    frame = reference_frame(seed)
    pipeline = _pipeline(alpha).fit(frame[list(MODEL_FEATURES)], frame["target"])
    return DemoModel(pipeline=pipeline, reference=frame, version=version)


def train_challenger(seed: int = SEED) -> DemoModel:
    """The demo's challenger: the same data, a ridge penalised 10 times more, version 2."""
    return train(seed, alpha=CHALLENGER_ALPHA, version=CHALLENGER_VERSION)


def build_profile(model: DemoModel) -> Profile:
    """The reference profile of the training rows and the model's predictions on them."""
    from mlmon.profiling import profile_data

    return profile_data(
        model.features(), predictions=model.predict(model.reference),
        targets=model.reference["target"], model_name=model.name, model_version=model.version,
        categorical=list(CATEGORICAL_FEATURES), text=list(TEXT_FEATURES),
        prediction_kind="regression",
    )


# ---- the classifier demo (`mlmon demo --model risk`) -----------------------------------------
# A binary classifier with probabilities on the same rows, so that the stack shows estimated
# performance (docs/estimation.md), which needs a classifier's scores. "high" progression risk
# is a target in the top 15 % of the reference's (above its 0.85 quantile), "low" the rest. The
# top rather than the median because the drift scenario (demo/scenario.py) raises `bmi` and
# makes the clinic with the largest effect common: that moves typical rows up towards a high
# threshold, where the model is unsure, so the estimated accuracy falls under the drift (below a
# median threshold it would rise, the shifted rows passing the boundary into confident "high").
RISK_MODEL_NAME = "diabetes-risk"
RISK_CLASSES = ("low", "high")
RISK_QUANTILE = 0.85
# The challenger is a logistic regression penalised 10 times more (C 0.1 instead of 1).
RISK_CHAMPION_C, RISK_CHALLENGER_C = 1.0, 0.1


def risk_labels(target: pd.Series) -> np.ndarray:
    """The true class of each row: "high" above the 0.85 quantile of `target`, else "low"."""
    labels: np.ndarray = np.where(target > target.quantile(RISK_QUANTILE), *RISK_CLASSES[::-1])
    return labels


@dataclass(frozen=True)
class DemoClassifier(_Trained):
    """The classifier demo model: "low" or "high" progression risk, with probabilities.

    >>> model = train_risk()
    >>> label, scores = model.predict_scored(model.records()[0])
    >>> label in RISK_CLASSES and abs(sum(scores.values()) - 1) < 1e-9
    True
    """

    name: str = RISK_MODEL_NAME

    def labels(self) -> np.ndarray:
        """The reference rows' true classes (what the model was trained on)."""
        return risk_labels(self.reference["target"])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities, one column per class in RISK_CLASSES order."""
        proba: np.ndarray = self.pipeline.predict_proba(frame[list(MODEL_FEATURES)])
        order = [list(self.pipeline.classes_).index(c) for c in RISK_CLASSES]
        return proba[:, order]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        classes: np.ndarray = np.asarray(RISK_CLASSES)[self.predict_proba(frame).argmax(axis=1)]
        return classes

    def predict_scored(self, record: dict[str, Any]) -> tuple[str, dict[str, float]]:
        """One record's class and every class's probability (the monitor scores the class's)."""
        proba = self.predict_proba(to_frame([record]))[0]
        return RISK_CLASSES[int(proba.argmax())], dict(zip(RISK_CLASSES, map(float, proba),
                                                           strict=True))


def train_risk(seed: int = SEED, *, c: float = RISK_CHAMPION_C,
               version: str = MODEL_VERSION) -> DemoClassifier:
    """Train the classifier on the whole data set, as `train` does the regression."""
    from sklearn.linear_model import LogisticRegression

    frame = reference_frame(seed)
    pipeline = Pipeline([("columns", _columns()),
                         ("logistic", LogisticRegression(C=c, max_iter=1000))])
    pipeline.fit(frame[list(MODEL_FEATURES)], risk_labels(frame["target"]))
    return DemoClassifier(pipeline=pipeline, reference=frame, version=version)


def train_risk_challenger(seed: int = SEED) -> DemoClassifier:
    """The classifier's challenger: the same data, penalised 10 times more, version 2."""
    return train_risk(seed, c=RISK_CHALLENGER_C, version=CHALLENGER_VERSION)


def build_risk_profile(model: DemoClassifier) -> Profile:
    """The classifier's reference profile, built with the target and the probabilities, so its
    scores are calibrated on the reference (what estimated performance reads)."""
    from mlmon.profiling import profile_data

    return profile_data(
        model.features(), predictions=model.predict(model.reference),
        targets=model.labels(), probabilities=model.predict_proba(model.reference),
        probability_classes=list(RISK_CLASSES), model_name=model.name,
        model_version=model.version, categorical=list(CATEGORICAL_FEATURES),
        text=list(TEXT_FEATURES), prediction_kind="classification",
    )
