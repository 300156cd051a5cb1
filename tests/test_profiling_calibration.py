"""The calibration fitted on the reference (mlmon/profiling/calibration.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from mlmon.exporter.profile import Profile, ProfileError
from mlmon.profiling import profile_data, profile_file
from mlmon.profiling.calibration import GRID_BINS, GRID_EDGES, pool_adjacent_violators
from tests.estimation_data import binary_traffic

MODEL = {"model_name": "m", "model_version": "1"}


def reference(n: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, Profile]:
    t = binary_traffic(np.random.default_rng(seed), n)
    frame = pd.DataFrame({"x": t["x"], "pred": t["predicted"], "y": t["actual"],
                          "score": t["score"]})
    profile = profile_data(frame, **MODEL, prediction_column="pred", target_column="y",
                           score_column="score")
    return frame, profile


@pytest.mark.parametrize("seed", range(5))
def test_pool_adjacent_violators_equals_scikit_learn_isotonic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, 60)
    hits = rng.binomial(counts, np.linspace(0.2, 0.9, 60) ** rng.uniform(0.5, 2))
    blocks = pool_adjacent_violators(hits.tolist(), counts.tolist())
    ours = np.empty(60)
    first = 0
    for h, n, last in blocks:
        ours[first:last + 1] = h / n
        first = last + 1
    used = counts > 0
    iso = IsotonicRegression().fit(np.arange(60)[used], hits[used] / counts[used],
                                   sample_weight=counts[used])
    np.testing.assert_allclose(ours[used], iso.predict(np.arange(60)[used]), rtol=0, atol=1e-12)
    rates = [h / n for h, n, _ in blocks]
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False))
    assert sum(h for h, _, _ in blocks) == hits.sum()  # pooling keeps every hit


def test_each_reference_row_maps_to_the_isotonic_fit_of_its_class() -> None:
    frame, profile = reference()
    pred = profile.prediction
    assert pred.calibration is not None and pred.classes == ("no", "yes")
    for cal, cls in zip(pred.calibration, pred.classes, strict=True):
        rows = frame[frame["pred"] == cls]
        bins = np.searchsorted(GRID_EDGES, rows["score"], side="left")
        right = (rows["y"] == cls).to_numpy()
        counts = np.bincount(bins, minlength=GRID_BINS)
        hits = np.bincount(bins, weights=right, minlength=GRID_BINS)
        used = np.nonzero(counts)[0]
        iso = IsotonicRegression().fit(used, hits[used] / counts[used],
                                       sample_weight=counts[used])
        expected = iso.predict(bins)
        ours = np.asarray(cal.values)[np.searchsorted(cal.thresholds, rows["score"], side="left")]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
        assert cal.error_shares == (1.0,)  # binary: every wrong row is the other class


def test_calibration_is_close_to_the_truth_for_calibrated_scores() -> None:
    """The scores are calibrated by construction: the fitted map stays near the identity."""
    _, profile = reference(100_000)
    for cal in profile.prediction.calibration:
        mids = (np.asarray((0.5, *cal.thresholds)) + np.asarray((*cal.thresholds, 1.0))) / 2
        inside = (mids > 0.55) & (mids < 0.95)
        assert np.abs(np.asarray(cal.values)[inside] - mids[inside]).max() < 0.1


def test_same_bytes_from_a_file_in_small_chunks_and_from_memory(tmp_path) -> None:
    frame, profile = reference(5_000)
    path = tmp_path / "ref.csv"
    frame.to_csv(path, index=False)
    from_file = profile_file(path, **MODEL, prediction_column="pred", target_column="y",
                             score_column="score", chunk_rows=777, max_memory_mb=0)
    assert from_file.prediction.calibration == profile.prediction.calibration
    assert Profile.loads(profile.dumps()) == profile  # the round trip keeps the calibration


def test_without_a_target_or_scores_there_is_no_calibration() -> None:
    frame, _ = reference(2_000)
    no_target = profile_data(frame.drop(columns=["y"]), **MODEL, prediction_column="pred",
                             score_column="score")
    no_score = profile_data(frame.drop(columns=["score"]), **MODEL, prediction_column="pred",
                            target_column="y")
    assert no_target.prediction.calibration is None
    assert no_score.prediction.calibration is None
    assert "calibration" not in no_target.dumps()  # absent, so older profiles keep their bytes


def test_multiclass_error_shares_count_the_wrong_rows() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    pred = rng.choice(["a", "b", "c"], n)
    actual = np.where(rng.random(n) < 0.7, pred, rng.choice(["a", "b", "c"], n))
    profile = profile_data({"x": rng.normal(size=n)}, **MODEL, predictions=pred, targets=actual,
                           scores=rng.uniform(0.3, 1.0, n))
    for cal, cls in zip(profile.prediction.calibration, ("a", "b", "c"), strict=True):
        wrong = actual[(pred == cls) & (actual != cls)]
        others = [c for c in ("a", "b", "c") if c != cls]
        expected = [np.mean(wrong == c) for c in others]
        np.testing.assert_allclose(cal.error_shares, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("change, message", [
    ({"values": [0.9, 0.8], "thresholds": [0.7]}, "non-decreasing"),
    ({"values": [0.5, 1.5], "thresholds": [0.7]}, r"within \[0, 1\]"),
    ({"values": [0.5], "thresholds": [0.7]}, "n thresholds and n \\+ 1 values"),
    ({"thresholds": [0.8, 0.7], "values": [0.1, 0.2, 0.3]}, "strictly increasing"),
    ({"error_shares": [0.5]}, "sum to"),
])
def test_a_bad_calibration_is_refused(change, message) -> None:
    _, profile = reference(2_000)
    data = profile.to_dict()
    data["prediction"]["calibration"][0].update(change)
    with pytest.raises(ProfileError, match=message):
        Profile.from_dict(data)
