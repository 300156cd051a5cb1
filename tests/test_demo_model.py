"""The demo model and data: deterministic, and robust to the inputs the drift scenario sends."""

from __future__ import annotations

import math

import pandas as pd

from mlmon.demo.model import (
    CATEGORICAL_FEATURES,
    CLINICS,
    FEATURES,
    reference_frame,
    to_frame,
    train,
)


def test_reference_frame_is_deterministic_for_a_seed() -> None:
    pd.testing.assert_frame_equal(reference_frame(3), reference_frame(3))
    assert not reference_frame(3)["clinic"].equals(reference_frame(4)["clinic"])


def test_rare_category_is_rare_in_training() -> None:
    shares = reference_frame()["clinic"].value_counts(normalize=True)
    assert set(shares.index) == set(CLINICS)
    assert shares["island"] < 0.05


def test_predictions_follow_the_target() -> None:
    model = train()
    predicted = model.predict(model.reference)
    assert pd.Series(predicted).corr(model.reference["target"].reset_index(drop=True)) > 0.6


def test_predict_one_answers_on_drifted_and_broken_inputs() -> None:
    model = train()
    record = model.records()[0]
    for broken in ({**record, "bp": None}, {**record, "channel": "kiosk"},
                   {**record, "bmi": "heavy"}, {**record, "age": float("nan")}, {}):
        assert math.isfinite(model.predict_one(broken))


def test_to_frame_types_values_for_the_model() -> None:
    frame = to_frame([{"age": 50, "bmi": True, "sex": 2, "clinic": None}])
    assert list(frame.columns) == list(FEATURES)
    assert frame.loc[0, "age"] == 50.0
    assert math.isnan(frame.loc[0, "bmi"])  # a bool is not a number for the model
    assert frame.loc[0, "sex"] == "2"
    assert all(pd.isna(frame.loc[0, name]) for name in CATEGORICAL_FEATURES[1:])


def test_the_challenger_agrees_on_reference_rows_and_less_under_drift() -> None:
    # the numbers demo/model.py states: ~95 % agreement on the reference, ~67 % under drift
    import random

    import numpy as np

    from mlmon.demo.model import train_challenger
    from mlmon.demo.scenario import drifted
    from mlmon.exporter.challenger import DEFAULT_TOLERANCE_STD

    champion, challenger = train(), train_challenger()
    assert (challenger.name, challenger.version) == (champion.name, "2")
    tolerance = DEFAULT_TOLERANCE_STD * float(np.std(champion.predict(champion.reference)))

    def agreement(frame: pd.DataFrame) -> float:
        d = challenger.predict(frame) - champion.predict(frame)
        return float(np.mean(np.abs(d) <= tolerance))

    rng = random.Random(1)
    drift = to_frame([drifted(r, rng) for r in champion.records()])
    assert 0.93 < agreement(champion.reference) < 0.97
    assert 0.6 < agreement(drift) < 0.75
