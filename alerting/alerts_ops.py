"""Serving alerts: latency against its SLO, failed requests, no traffic, and exporters that
cannot be scraped (which blinds every other alert)."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import WHERE, pct
from mlmon.alerting.config import QUANTILES
from mlmon.alerting.render import Group


def group(a: AlertBuilder) -> Group:
    slo = a.c.alert("MlmonLatencySLOBreach")
    err = a.c.alert("MlmonHighErrorRatio")
    zero = a.c.alert("MlmonThroughputZero")
    sel = a.c.exporter_selector
    assert slo["quantile"] in QUANTILES
    return Group("mlmon.alerts.ops", "Serving: latency, errors, traffic, scrapes.", (
        a.rule(
            "MlmonLatencySLOBreach",
            f"{N.latency_quantile(slo['quantile']).at(slo['window'])} > "
            f"{slo['max_seconds']}",
            "Inference latency is above its SLO.",
            f"Model {WHERE}: {slo['quantile']} latency over the last {slo['window']} is "
            "{{ humanizeDuration $value }} (SLO " + f"{slo['max_seconds']}s).",
            "Latency SLO breach."),
        a.rule(
            "MlmonHighErrorRatio",
            f"{N.REQUESTS_ERRORS_RATIO.at(err['window'])} > {err['max_ratio']}",
            "Too many inference requests fail.",
            f"Model {WHERE}: {pct()} of requests failed over the last {err['window']} "
            f"(threshold {err['max_ratio']}).",
            "Error ratio of inference requests."),
        a.rule(
            "MlmonThroughputZero",
            f"{N.OBSERVATIONS_RATE.at(zero['window'])} == 0",
            "A model receives no traffic.",
            f"Model {WHERE} observed no record in the last {zero['window']} while its "
            "exporter is up.",
            "Traffic stopped, or the instrumentation stopped calling observe()."),
        a.rule(
            "MlmonExporterDown",
            f"up{{{sel}}} == 0\nor\nabsent(up{{{sel}}})",
            "An mlmon exporter cannot be scraped.",
            "{{ if $labels.instance }}Target {{ $labels.instance }} of job {{ $labels.job }} "
            "is down.{{ else }}Job {{ $labels.job }} has no target at all.{{ end }}",
            "Without scrapes every other mlmon alert is blind."),
    ))
