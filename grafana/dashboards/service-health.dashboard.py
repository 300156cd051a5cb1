"""Service and pipeline health: the processes, the scrapes, the rules, and the log shipper."""

from grafanalib.elasticsearch import CountMetricAgg, DateHistogramGroupBy, ElasticsearchTarget
from panels import ELASTICSEARCH, RED, dashboard, layout, q, steps, timeseries

import mlmon.names as N

rate = "[$__rate_interval]"
am_integrations = '{integration=~"webhook|slack|email"}'


def shipper(counter: str) -> str:
    """Per-second rate of a shipper counter (a ShipperStats field), per process."""
    return f"sum by (job, instance) (rate({N.SHIPPER_COUNTERS[counter].sample}{rate}))"


records = timeseries("Records indexed in Elasticsearch", [], unit="short",
                     description="Records per interval in mlmon-predictions-* (Elasticsearch).")
records.dataSource = ELASTICSEARCH
records.targets = [ElasticsearchTarget(
    query='model.name:"$model"', metricAggs=[CountMetricAgg()], refId="A",
    bucketAggs=[DateHistogramGroupBy(field="@timestamp", minDocCount=0)],
    timeField="@timestamp", alias="records")]

panels = layout([
    [(timeseries("Scrape targets up", [q("up", "{{job}} {{instance}}")], soft_max=1,
                 thresholds=steps((0.5, "green")), points=True), 8),
     (timeseries("Scrape duration", [q("scrape_duration_seconds", "{{job}} {{instance}}")],
                 unit="s"), 8),
     (timeseries("Samples per scrape", [q("scrape_samples_scraped", "{{job}} {{instance}}")]),
      8)],
    [(timeseries("CPU", [q(f"rate(process_cpu_seconds_total{rate})", "{{job}} {{instance}}")],
                 unit="percentunit"), 8),
     (timeseries("Resident memory", [q("process_resident_memory_bytes", "{{job}} {{instance}}")],
                 unit="bytes"), 8),
     (timeseries("Garbage collections", [
         q(f"sum by (job, instance, generation) (rate(python_gc_collections_total{rate}))",
           "python gen {{generation}} {{job}}", "A"),
         q(f"sum by (job, instance) (rate(go_gc_duration_seconds_count{rate}))",
           "go {{job}}", "B")], unit="ops"), 8)],
    [(timeseries("Log shipper throughput", [
        q(shipper("queued"), "queued {{instance}}", "A"),
        q(shipper("shipped"), "shipped {{instance}}", "B"),
        q(shipper("spooled"), "spooled {{instance}}", "C"),
        q(shipper("replayed"), "replayed {{instance}}", "D")], unit="ops"), 8),
     (timeseries("Log shipper queue and spool", [
         q(N.SHIPPER_QUEUE_DEPTH.name, "queue {{instance}}", "A"),
         q(N.SHIPPER_SPOOL_BYTES.name, "spool bytes {{instance}}", "B")]), 8),
     (timeseries("Log shipper losses and retries", [
         q(f"sum by (job, instance, reason) (rate({N.SHIPPER_DROPPED.sample}{rate}))",
           "dropped {{reason}} {{instance}}", "A"),
         q(shipper("dead_lettered"), "dead-lettered {{instance}}", "B"),
         q(shipper("retried"), "retried {{instance}}", "C")],
         unit="ops", thresholds=steps((0.001, RED))), 8)],
    [(records, 8),
     (timeseries("Seconds since Elasticsearch accepted a bulk request", [
         q(f"time() - {N.SHIPPER_LAST_SUCCESS.name}", "{{instance}}")],
         unit="s", thresholds=steps((60, RED))), 8),
     (timeseries("Rule evaluation and notifications", [
         q(f"sum by (rule_group) (rate(prometheus_rule_evaluation_failures_total{rate}))",
           "rule failures {{rule_group}}", "A"),
         q("max by (rule_group) (prometheus_rule_group_last_duration_seconds)",
           "eval seconds {{rule_group}}", "B"),
         # Prometheus' side: alerts handed to Alertmanager (its own side is the next row).
         q(f"sum by (alertmanager) (rate(prometheus_notifications_sent_total{rate}))",
           "alerts sent {{alertmanager}}", "C"),
         q(f"sum by (alertmanager) (rate(prometheus_notifications_errors_total{rate}))",
           "send errors {{alertmanager}}", "D")]), 8)],
    # Alertmanager's own metrics (the `alertmanager` scrape job): whether notifications leave it.
    # Only the integrations alerting/amconfig.py can configure, not all ten it pre-creates.
    [(timeseries("Notifications sent by Alertmanager", [
        q(f"sum by (integration) (rate(alertmanager_notifications_total{am_integrations}{rate}))",
          "sent {{integration}}", "A"),
        q("sum by (integration) "
          f"(rate(alertmanager_notifications_failed_total{am_integrations}{rate}))",
          "failed {{integration}}", "B")], unit="ops", thresholds=steps((0.001, RED))), 12),
     (timeseries("Alerts in Alertmanager", [
         q("sum by (state) (alertmanager_alerts)", "{{state}}")]), 12)],
])

dashboard = dashboard(
    "mlmon / Service and pipeline health", "mlmon-service-health",
    "Process CPU, memory and GC, scrape health, rule evaluation, notifications (Prometheus' and "
    "Alertmanager's side), and the log shipper's queue, spool and losses.", panels)
