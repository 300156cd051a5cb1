"""The classifier demo (`mlmon demo --model risk`): a calibrated profile, answers with a class
and a score, estimated counts from those scores, a challenger trained differently, and an
estimate that falls under the drift scenario."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from mlmon.alerting.config import load
from mlmon.cli import main
from mlmon.demo.model import (
    RISK_CLASSES,
    RISK_MODEL_NAME,
    build_risk_profile,
    to_frame,
    train_risk,
    train_risk_challenger,
)
from mlmon.demo.scenario import drifted
from mlmon.demo.service import create_app
from mlmon.exporter.profile import ClassificationPrediction, Profile
from mlmon.log_shipper.facade import PredictionLogger
from tests.estimation_data import calibrated_probabilities
from tests.integration.prom_servers import wait_until

MODEL = train_risk()
PROFILE = build_risk_profile(MODEL)
CHALLENGER = train_risk_challenger()
CHALLENGER_PROFILE = build_risk_profile(CHALLENGER)


def _estimated_accuracy(profile: Profile, model, frame) -> float:
    """What the calibrated scores expect: the mean probability that each prediction is right."""
    proba = model.predict_proba(frame)
    return float(calibrated_probabilities(profile, model.predict(frame), proba.max(axis=1)).mean())


@pytest.mark.parametrize(("model", "profile"), [(MODEL, PROFILE), (CHALLENGER, CHALLENGER_PROFILE)])
def test_the_profile_is_calibrated_on_the_reference(model, profile: Profile) -> None:
    pred = profile.prediction
    assert isinstance(pred, ClassificationPrediction)
    assert set(pred.classes) == set(RISK_CLASSES)
    assert pred.calibration is not None
    assert all(cal.values for cal in pred.calibration)  # both classes fitted, none raw
    # Isotonic on the reference: the calibrated scores expect exactly the accuracy the model has
    # there, which is the baseline the estimated alert compares with.
    actual = np.mean(model.predict(model.reference) == model.labels())
    assert profile.baseline_metrics["accuracy"] == pytest.approx(actual, abs=1e-12)
    assert _estimated_accuracy(profile, model, model.reference) == pytest.approx(actual, abs=1e-9)
    # "high" is the top 15 % of the target, and the model finds most of it
    assert 0.12 < np.mean(model.labels() == "high") < 0.18
    assert actual > 0.85


def test_the_challenger_is_the_same_model_trained_differently() -> None:
    assert (CHALLENGER.name, CHALLENGER.version) == (RISK_MODEL_NAME, "2")
    assert (MODEL.name, MODEL.version) == (RISK_MODEL_NAME, "1")
    ours, theirs = MODEL.predict_proba(MODEL.reference), CHALLENGER.predict_proba(MODEL.reference)
    assert np.abs(ours - theirs).max() > 0.05  # a stronger penalty: other probabilities
    assert np.mean(MODEL.predict(MODEL.reference) == CHALLENGER.predict(MODEL.reference)) > 0.9


@pytest.mark.parametrize(("model", "profile"), [(MODEL, PROFILE), (CHALLENGER, CHALLENGER_PROFILE)])
def test_the_estimate_falls_below_the_alert_line_under_the_drift_scenario(
        model, profile: Profile) -> None:
    """The drift scenario's inputs crowd the decision boundary: on them alone the estimate is
    more than the estimated alert's drop below the baseline (demo/model.py says why)."""
    rng = random.Random(1)
    drift = to_frame([drifted(r, rng) for r in model.records() * 5])
    drop = load().alert("MlmonEstimatedPerformanceBelowBaseline")["accuracy_drop"]
    estimated = _estimated_accuracy(profile, model, drift)
    assert estimated < profile.baseline_metrics["accuracy"] - drop - 0.02, estimated


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"model": RISK_MODEL_NAME, **labels})
    assert value is not None, (name, labels)
    return value


def test_predict_answers_a_class_and_its_score_and_counts_the_estimate() -> None:
    registry = CollectorRegistry()
    logger = PredictionLogger.from_profile(PROFILE, service_name="diabetes-risk-api",
                                           environment="test", registry=registry)
    logger.add_challenger(CHALLENGER_PROFILE, CHALLENGER.predict_scored, with_scores=True)
    records = MODEL.records()[:100]
    with TestClient(create_app(MODEL, logger, registry)) as client:
        for i, record in enumerate(records):
            answer = client.post("/predict", json={"features": record})
            assert answer.status_code == 200
            body = answer.json()
            label, scores = MODEL.predict_scored(record)
            assert (body["prediction"], body["score"]) == (label, pytest.approx(scores[label]))
            assert body["score"] >= 0.5  # the likelier of two classes
            assert (body["model"], body["model_version"]) == (RISK_MODEL_NAME, "1")
            if i == 0:
                assert client.get("/healthz").json()["model"] == RISK_MODEL_NAME
        # the challenger's child process starts with the first request, at a lower priority:
        # on a loaded machine that can outlast close()'s drain, so wait for it here
        wait_until(lambda: registry.get_sample_value("mlmon_observations_total", {
            "model": RISK_MODEL_NAME, "model_version": "2"}) == len(records), 120,
            "the challenger's observations", interval_s=0.2)
    frame = to_frame(records)
    for version, model, profile in (("1", MODEL, PROFILE), ("2", CHALLENGER, CHALLENGER_PROFILE)):
        assert _sample(registry, "mlmon_estimation_info", model_version=version,
                       calibrated="true") == 1
        counts = {(p, a): _sample(registry, "mlmon_estimated_outcome_class_total",
                                  model_version=version, predicted_class=p, actual_class=a)
                  for p in RISK_CLASSES for a in RISK_CLASSES}
        assert sum(counts.values()) == pytest.approx(len(records), abs=1e-9)
        right = sum(counts[c, c] for c in RISK_CLASSES)
        # what the calibrated scores of these rows expect, computed apart
        assert right / len(records) == pytest.approx(
            _estimated_accuracy(profile, model, frame), abs=1e-9)


def test_write_profile_of_the_classifier(tmp_path: Path) -> None:
    out = tmp_path / "risk.json"
    assert main(["demo", "--model", "risk", "--write-profile", str(out)]) == 0
    assert out.read_text() == PROFILE.dumps()  # deterministic: same data, same bytes
    assert Profile.load(out).model_name == RISK_MODEL_NAME
