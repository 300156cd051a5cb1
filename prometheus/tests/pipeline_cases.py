"""Builds pipeline_alerts_test.yml: promtool tests of the training-pipeline and host alerts.

Same form as alert_cases.py (whose Case it reuses): each case has series that break the rule and
series that do not, and checks one evaluation before the alert's `for:` elapses (nothing) and at
it (exactly the expected alert). Times are promtool's: the test starts at Unix time 0, so a
model trained a day earlier has a negative timestamp. `python prometheus/tests/pipeline_cases.py`
rewrites the file; tests/test_rules.py checks that the committed file equals `render()`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlmon.names as N

sys.path.insert(0, str(Path(__file__).parent))
import alert_cases as A  # noqa: E402 (the directory is not a package)

PATH = Path(__file__).with_name("pipeline_alerts_test.yml")
MINUTES = A.MINUTES
HOUR, DAY = 3600, 86400


def _pushed(job: str, model: str) -> dict[str, str]:
    """The labels a series pushed by `mlmon training-run` carries once scraped (honor_labels:
    the grouping key's job and model; the Pushgateway's empty instance is dropped)."""
    return {"job": job, "model": model}


def _steps(*values: tuple[int, float]) -> str:
    """A gauge holding each value from its minute on: ((0, a), (30, b)) is a until 29m, then b."""
    tokens = []
    for (start, value), (stop, _next) in zip(values, [*values[1:], (MINUTES + 1, 0.0)],
                                             strict=True):
        tokens.append(f"{value!r}+0x{stop - start - 1}")
    return " ".join(tokens)


def trained_model_not_deployed() -> A.Case:
    # churn: live version 3 trained 10 days before t=0; retrain pushed version 4, trained 23h
    # before t=0, so it has waited more than 24h from 61m and fires after 5m more, at 66m.
    # fraud: the newest trained model is the live one (same trained time): silent.
    # spam: a newer model trained 1h before t=0 has not waited 24h yet: silent.
    case = A.Case("MlmonTrainedModelNotDeployed fires after 5m once a newer model waited 24h")
    for model, live_trained, version, trained in (("churn", -10 * DAY, "4", -23 * HOUR),
                                                  ("fraud", -5 * DAY, "7", -5 * DAY),
                                                  ("spam", -5 * DAY, "2", -HOUR)):
        case.add(N.MODEL_TRAINED.name, {"model": model, "model_version": "live",
                                        "instance": "a", "job": "mlmon"},
                 A._const(float(live_trained)))
        case.add(N.TRAINING_MODEL_TRAINED.name,
                 _pushed("retrain", model) | {"model_version": version, "profile_sha": "abc"},
                 A._const(float(trained)))
    return case.expect("MlmonTrainedModelNotDeployed", "65m", "66m", [A._alert(
        {"severity": "warning", "job": "retrain", "model": "churn", "model_version": "4",
         "profile_sha": "abc"},
        "A newer trained model has not been deployed.",
        "Model churn version 4 (job retrain, trained 1969-12-31 01:00:00 +0000 UTC) is newer "
        "than every live version and has waited more than 24h to be deployed.",
        "MlmonTrainedModelNotDeployed")])


def training_failed() -> A.Case:
    # churn's run ending at 30m fails; the next one, at 60m, succeeds: the alert fires at 30m
    # (for: 0m) and resolves at 60m. fraud's runs succeed.
    case = A.Case("MlmonTrainingFailed fires at the failed run and resolves at the next success")
    churn, fraud = _pushed("retrain", "churn"), _pushed("retrain", "fraud")
    case.add(N.TRAINING_RUN_SUCCESS.name, churn, _steps((0, 1.0), (30, 0.0), (60, 1.0)))
    case.add(N.TRAINING_RUN_TIMESTAMP.name, churn, _steps((0, 0.0), (30, 1800.0), (60, 3600.0)))
    case.add(N.TRAINING_RUN_SUCCESS.name, fraud, A._const(1.0))
    case.expect("MlmonTrainingFailed", "29m", "30m", [A._alert(
        {"severity": "warning", **churn}, "A training run failed.",
        "The last run of training job retrain for model churn failed (ended 1970-01-01 "
        "00:30:00 +0000 UTC).", "MlmonTrainingFailed")])
    case.checks.append({"eval_time": "60m", "alertname": "MlmonTrainingFailed", "exp_alerts": []})
    return case


def training_late() -> A.Case:
    # retrain (schedule 8d) last succeeded for churn 691000 s before t=0: older than 8d
    # (691200 s) from 4m, fires after 5m at 9m, 691540 s = 8d 0h 5m 40s after that success.
    # fraud succeeded 1000 s before t=0; job manual is not configured, however old.
    case = A.Case("MlmonTrainingLate fires after 5m for a job past its schedule")
    case.add(N.TRAINING_LAST_SUCCESS.name, _pushed("retrain", "churn"), A._const(-691000.0))
    case.add(N.TRAINING_LAST_SUCCESS.name, _pushed("retrain", "fraud"), A._const(-1000.0))
    case.add(N.TRAINING_LAST_SUCCESS.name, _pushed("manual", "churn"), A._const(-100 * DAY))
    return case.expect("MlmonTrainingLate", "8m", "9m", [A._alert(
        {"severity": "warning", **_pushed("retrain", "churn")},
        "A training job has not succeeded within its schedule.",
        "Training job retrain last succeeded for model churn 8d 0h 5m 40s ago (schedule 8d).",
        "MlmonTrainingLate")])


def training_never_succeeded() -> A.Case:
    # Nothing was ever pushed for the configured job retrain (only for manual): late after 5m.
    case = A.Case("MlmonTrainingLate fires after 5m for a configured job with no success at all")
    case.add(N.TRAINING_LAST_SUCCESS.name, _pushed("manual", "churn"), A._const(-1000.0))
    case.add(N.TRAINING_RUN_SUCCESS.name, _pushed("retrain", "churn"), A._const(0.0))
    return case.expect("MlmonTrainingLate", "4m", "5m", [A._alert(
        {"severity": "warning", "job": "retrain"},
        "A training job has not succeeded within its schedule.",
        "Training job retrain has no successful run recorded.", "MlmonTrainingLate")])


def pushgateway_down() -> A.Case:
    case = A.Case("MlmonPushgatewayDown fires after 5m for the Pushgateway target that is down")
    case.add("up", {"instance": "pushgateway:9091", "job": "pushgateway"}, A._const(0.0))
    case.add("up", {"instance": "b:9091", "job": "pushgateway"}, A._const(1.0))
    case.add("up", {"instance": "a:8000", "job": "mlmon"}, A._const(0.0))
    return case.expect("MlmonPushgatewayDown", "4m", "5m", [A._alert(
        {"severity": "warning", "instance": "pushgateway:9091", "job": "pushgateway"},
        "The Pushgateway cannot be scraped.",
        "Pushgateway pushgateway:9091 (job pushgateway) is down: batch and training runs pushed "
        "to it are not seen.", "MlmonPushgatewayDown")])


def _filesystem(case: A.Case, instance: str, mountpoint: str, size: float, avail: str,
                readonly: float = 0.0) -> dict[str, str]:
    at = {"device": "/dev/vda", "fstype": "ext4", "instance": instance, "job": "node",
          "mountpoint": mountpoint}
    case.add("node_filesystem_size_bytes", at, A._const(size))
    case.add("node_filesystem_avail_bytes", at, avail)
    case.add("node_filesystem_readonly", at, A._const(readonly))
    return at


def host_disk_filling() -> A.Case:
    # a:/ has 30% free and loses 0.1 GB a minute (144 GB a day): below 40% and predicted to run
    # out within 24h from 1m (two samples), fires after 15m at 16m with 28.4% free.
    # b:/ has 60% free and fills as fast (not below 40%); c:/ has 5% free but is read-only;
    # a:/boot fills but is not the selected mountpoint: all silent.
    case = A.Case("MlmonHostDiskFilling fires after 15m for the root filesystem running out")
    falling = f"30e9-0.1e9x{MINUTES}"
    fills = _filesystem(case, "a:9100", "/", 100e9, falling)
    _filesystem(case, "b:9100", "/", 100e9, f"60e9-0.1e9x{MINUTES}")
    _filesystem(case, "c:9100", "/", 100e9, A._const(5e9), readonly=1.0)
    _filesystem(case, "a:9100", "/boot", 1e9, f"0.3e9-0.001e9x{MINUTES}")
    return case.expect("MlmonHostDiskFilling", "15m", "16m", [A._alert(
        {"severity": "warning", **fills},
        "A filesystem of the monitoring host is filling up.",
        "Filesystem / on a:9100 has 28.4% free (below 0.1, or below 0.4 and running out within "
        "24h at the rate of the last 6h).", "MlmonHostDiskFilling")])


def host_disk_full() -> A.Case:
    # a:/ holds steady at 5% free (below 10%): fires after 15m without any trend.
    case = A.Case("MlmonHostDiskFilling fires after 15m for a root filesystem below 10% free")
    full = _filesystem(case, "a:9100", "/", 100e9, A._const(5e9))
    return case.expect("MlmonHostDiskFilling", "14m", "15m", [A._alert(
        {"severity": "warning", **full},
        "A filesystem of the monitoring host is filling up.",
        "Filesystem / on a:9100 has 5% free (below 0.1, or below 0.4 and running out within "
        "24h at the rate of the last 6h).", "MlmonHostDiskFilling")])


CASES = (trained_model_not_deployed, training_failed, training_late, training_never_succeeded,
         pushgateway_down, host_disk_filling, host_disk_full)


def render() -> str:
    return A.render("# GENERATED by prometheus/tests/pipeline_cases.py: the training-pipeline "
                    "and host alerts.", CASES)


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
