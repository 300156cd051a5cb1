"""Model alerts: prediction sanity (NaN, infinite) and the model's lifecycle (which versions
are live, and how old the live model is)."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import WHERE, num
from mlmon.alerting.render import Group


def group(a: AlertBuilder) -> Group:
    nan = a.c.alert("MlmonPredictionNaN")
    expected = a.c.alert("MlmonUnexpectedModelVersion")["expected_versions"]
    stale = a.c.alert("MlmonModelStale")
    # a challenger in shadow mode is a second live version by design, never the wrong one
    challengers = a.latest(f'{N.MODEL_ROLE_INFO.name}{{role="{N.CHALLENGER_ROLE}"}}')
    shadow = f"\nunless on (model, model_version)\n{challengers}"
    wrong = "\nor\n".join(
        a.latest(f'{N.MODEL_INFO.name}{{model="{model}", model_version!="{version}"}}')
        for model, version in sorted(expected.items())) or "vector(0) < 0"
    return Group("mlmon.alerts.model", "Prediction sanity and model lifecycle.", (
        a.rule(
            "MlmonPredictionNaN",
            N.PREDICTION_INVALID_INCREASE.at(nan["window"]) + '{reason=~"nan|inf"} > 0',
            "The model produces NaN or infinite predictions.",
            f"Model {WHERE} produced {num(fmt='%.0f')} {{{{ $labels.reason }}}} "
            f"predictions in the last {nan['window']}.",
            "Numerical instability: any NaN/Inf prediction is a bug."),
        a.rule(
            "MlmonMultipleModelVersions",
            "count by (model) (max by (model, model_version) "
            f"({a.latest(N.MODEL_INFO.name)}{shadow})) > 1",
            "More than one version of a model is live.",
            "Model {{ $labels.model }} has {{ $value }} versions exporting at once.",
            "A stuck rollout or a forgotten replica serving an old version."),
        a.rule(
            "MlmonUnexpectedModelVersion",
            f"max by (model, model_version) (\n(\n{wrong}\n){shadow}\n)",
            "A model version other than the expected one is live.",
            f"Model {WHERE} is live, but the expected version is another one "
            "(alerting/config.yaml expected_versions).",
            "The wrong model was deployed (expected versions come from the config)."),
        a.rule(
            "MlmonModelStale",
            "(time() - max by (model, model_version) "
            f"({a.latest(N.MODEL_TRAINED.name)}))"
            f" / 86400\n> {stale['max_age_days']}",
            "The live model was trained too long ago.",
            f"Model {WHERE} was trained {num(fmt='%.0f')} days ago "
            f"(limit {stale['max_age_days']}).",
            "A stale model: retrain on recent data."),
    ))
