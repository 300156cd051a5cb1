"""Serving alerts: latency against its SLO, failed requests, no traffic, exporters that
cannot be scraped (which blinds every other alert), and workers counting in memory because
they cannot open their multi-process file."""

from __future__ import annotations

import mlmon.names as N
from mlmon.alerting import promql as q
from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import WHERE, pct
from mlmon.alerting.config import QUANTILES
from mlmon.alerting.render import Group


def group(a: AlertBuilder) -> Group:
    slo = a.c.alert("MlmonLatencySLOBreach")
    err = a.c.alert("MlmonHighErrorRatio")
    zero = a.c.alert("MlmonThroughputZero")
    files = a.c.alert("MlmonWorkerFileErrors")
    sel = a.c.exporter_selector
    assert slo["quantile"] in QUANTILES
    return Group("mlmon.alerts.ops", "Serving: latency, errors, traffic, scrapes, worker files.", (
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
        a.rule(
            "MlmonWorkerFileErrors",
            # any rise: only the scrapes the failing worker answers show its failures, so the
            # counter also steps down (read as a reset, which adds nothing) while it lasts
            f"increase({q.online(N.WORKER_FILE_ERRORS.sample)}[{files['lookback']}]) > 0",
            "A worker process cannot open its multi-process file and counts in memory.",
            f"Model {WHERE} on {{{{ $labels.instance }}}}: a worker process failed to open its "
            f"file in the multi-process directory within the last {files['lookback']} (reason "
            "{{ $labels.reason }}). It counts in memory and retries; if it exits before a "
            "retry succeeds, what it counted is lost. Free disk space or inodes, make the "
            "directory writable, or raise the open-files limit, as the reason says.",
            "A worker's counts are at risk until its file opens."),
    ))
