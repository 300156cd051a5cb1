"""Host alerts: the monitoring host's disks (node exporter) and its Pushgateway, without which
the batch and training alerts are blind."""

from __future__ import annotations

from mlmon.alerting.alerts_base import AlertBuilder
from mlmon.alerting.alerts_text import pct
from mlmon.alerting.config import duration_seconds
from mlmon.alerting.render import Group


def group(a: AlertBuilder) -> Group:
    pushgateway = a.c.alert("MlmonPushgatewayDown")["selector"]
    disk = a.c.alert("MlmonHostDiskFilling")
    sel = disk["selector"]
    free = f"node_filesystem_avail_bytes{{{sel}}} / node_filesystem_size_bytes{{{sel}}}"
    horizon = duration_seconds(disk["horizon"])
    return Group("mlmon.alerts.host", "The host the stack runs on, and its Pushgateway.", (
        a.rule(
            "MlmonPushgatewayDown",
            f"up{{{pushgateway}}} == 0",
            "The Pushgateway cannot be scraped.",
            "Pushgateway {{ $labels.instance }} (job {{ $labels.job }}) is down: batch and "
            "training runs pushed to it are not seen.",
            "Batch jobs and training runs reach Prometheus only through it: their alerts go "
            "blind, and the late-run ones report jobs as never run."),
        a.rule(
            "MlmonHostDiskFilling",
            f"(\n  {free} < {disk['min_free_ratio']}\n  or\n"
            f"  ({free} < {disk['predict_free_ratio']}\n"
            f"   and predict_linear(node_filesystem_avail_bytes{{{sel}}}"
            f"[{disk['lookback']}], {horizon}) < 0)\n)\n"
            f"and node_filesystem_readonly{{{sel}}} == 0",
            "A filesystem of the monitoring host is filling up.",
            "Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} has "
            f"{pct()} free (below {disk['min_free_ratio']}, or below "
            f"{disk['predict_free_ratio']} and running out within {disk['horizon']} "
            f"at the rate of the last {disk['lookback']}).",
            "A full disk stops the shipper's spool (records are then dropped, counted) "
            "and Prometheus' storage."),
    ))
