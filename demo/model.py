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


def _pipeline(alpha: float = CHAMPION_ALPHA) -> Pipeline:
    # Imputation and handle_unknown="ignore" keep the model answering on the drifted inputs
    # (nulls, unseen categories): monitoring should see the drift, not a crashing service.
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ])
    columns = ColumnTransformer([
        ("numeric", numeric, list(NUMERIC_FEATURES)),
        ("categorical", categorical, list(CATEGORICAL_FEATURES)),
    ])  # remainder="drop": the text note is monitored, not used
    return Pipeline([("columns", columns), ("ridge", Ridge(alpha=alpha))])


@dataclass(frozen=True)
class DemoModel:
    """A trained pipeline plus the reference rows it was trained on.

    >>> model = train()
    >>> round(model.predict_one(model.records()[0])) > 0
    True
    """

    pipeline: Pipeline
    reference: pd.DataFrame  # features and target of the training rows
    name: str = MODEL_NAME
    version: str = MODEL_VERSION

    def features(self) -> pd.DataFrame:
        features: pd.DataFrame = self.reference[list(FEATURES)]
        return features

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        predictions: np.ndarray = self.pipeline.predict(frame[list(MODEL_FEATURES)])
        return predictions

    def predict_one(self, record: dict[str, Any]) -> float:
        """Predict one record; absent, null or wrongly typed values become nulls for the model."""
        return float(self.predict(to_frame([record]))[0])

    def records(self) -> list[dict[str, Any]]:
        """The reference rows as JSON-ready dicts (what the traffic generator replays)."""
        # pandas types record keys as Hashable; these are the str names in FEATURES
        return cast("list[dict[str, Any]]", self.features().to_dict(orient="records"))


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
