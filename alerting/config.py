"""The rules configuration (alerting/config.yaml): loaded and validated once, loudly.

A missing or unknown key is an error, never a silent default: the config is the one place where
thresholds live, so a typo must not quietly fall back to something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

CONFIG_PATH = Path(__file__).with_name("config.yaml")

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SEVERITIES = ("critical", "warning", "info")
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

# alert name -> the keys its section must have (besides `for` and `severity`).
ALERT_KEYS: dict[str, tuple[str, ...]] = {
    "MlmonFeatureDrift": ("window", "alpha", "psi_floor", "keep_firing_for"),
    "MlmonPredictionDrift": ("window", "alpha", "psi_floor", "keep_firing_for"),
    "MlmonNotEnoughData": ("window",),
    "MlmonFeatureMissing": ("window", "max_increase"),
    "MlmonUnseenCategoriesRising": ("window", "max_share"),
    "MlmonInvalidValuesRising": ("window", "reasons", "max_ratio"),
    "MlmonTextOOVRising": ("window", "max_increase"),
    "MlmonPredictionNaN": ("window",),
    "MlmonMultipleModelVersions": (),
    "MlmonUnexpectedModelVersion": ("expected_versions",),
    "MlmonModelStale": ("max_age_days",),
    "MlmonTrainedModelNotDeployed": ("max_undeployed_hours",),
    "MlmonTrainingFailed": (),
    "MlmonTrainingLate": ("schedules",),
    "MlmonPushgatewayDown": ("selector",),
    "MlmonHostDiskFilling": ("selector", "min_free_ratio", "predict_free_ratio", "lookback",
                             "horizon"),
    "MlmonLatencySLOBreach": ("window", "quantile", "max_seconds"),
    "MlmonHighErrorRatio": ("window", "max_ratio"),
    "MlmonThroughputZero": ("window",),
    "MlmonExporterDown": (),
    "MlmonWorkerFileErrors": ("lookback",),
    "MlmonChallengerDisagreement": ("window", "max_disagreement"),
    "MlmonPerformanceBelowBaseline": ("window", "min_labelled", "accuracy_drop", "mae_increase"),
    "MlmonLabelsStopped": ("window", "lookback"),
    "MlmonPredictionOutOfRange": ("window", "max_ratio"),
    # batch jobs (the `:batch` rules); thresholds and alpha are the services' alerts' above
    "MlmonBatchFeatureDrift": (),
    "MlmonBatchPredictionDrift": (),
    "MlmonBatchDataQuality": (),
    "MlmonBatchJobFailed": (),
    "MlmonBatchJobMissed": ("schedules",),
    "MlmonEstimatedPerformanceBelowBaseline": ("window", "min_scored", "accuracy_drop"),
}
# The alerts on realized performance: their `window` (and `lookback`) are outcome windows.
OUTCOME_ALERTS = ("MlmonPerformanceBelowBaseline", "MlmonLabelsStopped")
_TOP_KEYS = ("windows", "outcome_windows", "outcome_evaluation_interval", "restart_grace",
             "exporter_selector", "epsilon", "min_samples", "alerts", "demo", "runbook_base_url")


class ConfigError(ValueError):
    """The rules configuration is missing a key, has an unknown one, or a bad value."""


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration with a single unit (`5m`, `1h`)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"bad duration {text!r}: use one number and one unit, e.g. 5m or 1h")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class Config:
    """The validated configuration; `alerts[name]` is that alert's section as a dict."""

    windows: tuple[str, ...]
    # The windows of the realized-performance rules (labels arrive in bursts: long windows).
    outcome_windows: tuple[str, ...]
    outcome_evaluation_interval: str
    restart_grace: str
    exporter_selector: str
    epsilon: float
    min_samples: int
    alerts: dict[str, dict[str, Any]]
    runbook_base_url: str
    # alert name -> its `for:` in the demo timing profile (the `demo:` section).
    demo_for: dict[str, str]

    def alert(self, name: str) -> dict[str, Any]:
        return self.alerts[name]

    @property
    def exporter_jobs(self) -> tuple[str, ...]:
        """The scrape jobs `exporter_selector` names (`job="..."`); empty when it names none."""
        return tuple(re.findall(r'job="([^"]+)"', self.exporter_selector))

    def demo(self) -> Config:
        """The same rules with the demo's `for:` durations (prometheus/demo/alert_rules.yml)."""
        alerts = {name: ({**section, "for": self.demo_for[name]} if name in self.demo_for
                         else section) for name, section in self.alerts.items()}
        return replace(self, alerts=alerts)


def _check_keys(section: dict[str, Any], required: tuple[str, ...], where: str) -> None:
    missing = [k for k in required if k not in section]
    unknown = [k for k in section if k not in required]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _check_alert(name: str, section: Any, windows: tuple[str, ...],
                 outcome_windows: tuple[str, ...]) -> dict[str, Any]:
    where = f"alerts.{name}"
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: must be a mapping")
    _check_keys(section, (*ALERT_KEYS[name], "for", "severity"), where)
    duration_seconds(section["for"])
    if "keep_firing_for" in section:
        duration_seconds(section["keep_firing_for"])
    if section["severity"] not in SEVERITIES:
        raise ConfigError(f"{where}.severity: one of {', '.join(SEVERITIES)}")
    # An outcome alert's `lookback` is a second outcome window; elsewhere (the disk alert's
    # predict_linear range) a lookback is any duration, checked below.
    allowed, which, keys = ((outcome_windows, "outcome_windows", ("window", "lookback"))
                            if name in OUTCOME_ALERTS else (windows, "windows", ("window",)))
    for key in keys:
        if key in section and section[key] not in allowed:
            raise ConfigError(f"{where}.{key}: {section[key]!r} is not in {which} {allowed}")
    if "lookback" in section and "window" in section and (
            duration_seconds(section["lookback"]) <= duration_seconds(section["window"])):
        raise ConfigError(f"{where}.lookback: must be longer than its window")
    if "alpha" in section and not 0 < float(section["alpha"]) < 1:
        raise ConfigError(f"{where}.alpha: must be in (0, 1)")
    if "quantile" in section and section["quantile"] not in QUANTILES:
        raise ConfigError(f"{where}.quantile: one of {', '.join(QUANTILES)}")
    if "schedules" in section:
        schedules = section["schedules"]
        if not isinstance(schedules, dict) or not all(isinstance(j, str) for j in schedules):
            kind, example = (("batch job", "nightly: 26h") if name.startswith("MlmonBatch")
                             else ("training job", "retrain: 8d"))
            raise ConfigError(f"{where}.schedules: {kind} name -> duration (e.g. {example})")
        for duration in schedules.values():
            duration_seconds(duration)
    for key in ("lookback", "horizon"):
        if key in section:
            duration_seconds(section[key])
    if "expected_versions" in section:
        versions = section["expected_versions"]
        if not isinstance(versions, dict) or not all(
            isinstance(v, str) for v in versions.values()
        ):
            raise ConfigError(f"{where}.expected_versions: model -> version string (quote it)")
    return section


def _check_thin_window_handover(alerts: dict[str, Any]) -> None:
    """Drift alerts keep firing at least until MlmonNotEnoughData can fire.

    When a window thins below min_samples the drift condition stops holding; without this a
    drifted model would go silent for the `for:` of MlmonNotEnoughData.
    """
    needed = duration_seconds(alerts["MlmonNotEnoughData"]["for"])
    for name in ("MlmonFeatureDrift", "MlmonPredictionDrift"):
        keep = alerts[name]["keep_firing_for"]
        if duration_seconds(keep) < needed:
            raise ConfigError(
                f"alerts.{name}.keep_firing_for: {keep} is shorter than the `for:` of "
                f"MlmonNotEnoughData ({alerts['MlmonNotEnoughData']['for']}), so a thinning "
                "window would silence the alert before the no-data alert fires")


def _check_demo(section: Any) -> dict[str, str]:
    if not isinstance(section, dict):
        raise ConfigError("demo: must be a mapping")
    _check_keys(section, ("for",), "demo")
    durations = section["for"]
    if not isinstance(durations, dict) or not durations:
        raise ConfigError("demo.for: a non-empty mapping of alert name -> duration")
    unknown = [name for name in durations if name not in ALERT_KEYS]
    if unknown:
        raise ConfigError(f"demo.for: unknown alert(s) {', '.join(map(str, unknown))}")
    for duration in durations.values():
        duration_seconds(duration)
    return {str(name): str(duration) for name, duration in durations.items()}


def _windows(data: dict[str, Any], key: str) -> tuple[str, ...]:
    windows = tuple(str(w) for w in data[key] or ())
    if not windows or len(set(windows)) != len(windows):
        raise ConfigError(f"{key}: a non-empty list of distinct durations")
    for window in windows:
        duration_seconds(window)
    return windows


def parse(data: Any) -> Config:
    """Validate a loaded YAML document."""
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping")
    _check_keys(data, _TOP_KEYS, "config")
    windows = _windows(data, "windows")
    outcome_windows = _windows(data, "outcome_windows")
    duration_seconds(data["outcome_evaluation_interval"])
    duration_seconds(data["restart_grace"])
    alerts = data["alerts"]
    if not isinstance(alerts, dict):
        raise ConfigError("alerts: must be a mapping")
    _check_keys(alerts, tuple(ALERT_KEYS), "alerts")
    checked = {name: _check_alert(name, alerts[name], windows, outcome_windows)
               for name in ALERT_KEYS}
    _check_thin_window_handover(checked)
    epsilon = float(data["epsilon"])
    if not 0 < epsilon < 0.01:
        raise ConfigError("epsilon: must be in (0, 0.01)")
    return Config(
        windows=windows,
        outcome_windows=outcome_windows,
        outcome_evaluation_interval=str(data["outcome_evaluation_interval"]),
        restart_grace=str(data["restart_grace"]),
        exporter_selector=str(data["exporter_selector"]),
        epsilon=epsilon,
        min_samples=int(data["min_samples"]),
        alerts=checked,
        runbook_base_url=str(data["runbook_base_url"]),
        demo_for=_check_demo(data["demo"]),
    )


def check_scrape_interval(config: Config, prometheus: Any) -> None:
    """The exporter's scrape interval must be at most half of `restart_grace`.

    A process that loaded its profile just before a window started is first scraped at most one
    scrape interval later; the grace must cover that (twice, for a slow start or a missed
    scrape), or its counts fall through to increase() instead of its whole counter.
    `prometheus` is the loaded prometheus.yml; the jobs checked are those `exporter_selector`
    names (`job="..."`), or every job when it names none.
    """
    if not isinstance(prometheus, dict):
        raise ConfigError("prometheus.yml: must be a mapping")
    default = (prometheus.get("global") or {}).get("scrape_interval", "1m")
    names = set(config.exporter_jobs)
    jobs = [job for job in prometheus.get("scrape_configs") or []
            if not names or job.get("job_name") in names]
    grace = duration_seconds(config.restart_grace)
    for job in jobs:
        interval = str(job.get("scrape_interval", default))
        if 2 * duration_seconds(interval) > grace:
            raise ConfigError(
                f"restart_grace {config.restart_grace} is less than twice the scrape interval "
                f"{interval} of job {job.get('job_name')!r}: raise restart_grace")


def load(path: str | Path = CONFIG_PATH) -> Config:
    """Read and validate the config file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
