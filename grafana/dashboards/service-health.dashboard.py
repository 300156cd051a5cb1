"""Service and pipeline health: the processes, the scrapes, the rules, and the log shipper."""

from grafanalib.elasticsearch import CountMetricAgg, DateHistogramGroupBy, ElasticsearchTarget
from panels import (
    ELASTICSEARCH,
    RED,
    YELLOW,
    alert_config,
    dashboard,
    layout,
    q,
    steps,
    table,
    timeseries,
)

import mlmon.names as N

rate = "[$__rate_interval]"
am_integrations = '{integration=~"webhook|slack|email"}'


def shipper(counter: str) -> str:
    """Per-second rate of a shipper counter (a ShipperStats field), per process."""
    return f"sum by (job, instance) (rate({N.SHIPPER_COUNTERS[counter].sample}{rate}))"


# The host (node exporter): the filesystems the disk-filling alert watches, coloured at its
# free-space thresholds (as used space).
disk = alert_config().alert("MlmonHostDiskFilling")
watched = "{" + disk["selector"] + "}"
host_cpu = f'1 - avg by (instance) (rate(node_cpu_seconds_total{{job="node", mode="idle"}}{rate}))'
host_memory = ('1 - node_memory_MemAvailable_bytes{job="node"} '
               '/ node_memory_MemTotal_bytes{job="node"}')
disk_io = 'sum by (instance, device) (rate({metric}{{job="node"}}{rate}))'

# Training runs (mlmon training-run): one row per (job, model), the last run and the newest model.
training_runs = table("Training runs: the last run of each job", [
    q(N.TRAINING_RUN_SUCCESS.name, "last run ok", "A", instant=True, table=True),
    q(f"time() - {N.TRAINING_LAST_SUCCESS.name}", "since last success (s)", "B", instant=True,
      table=True),
    q(N.TRAINING_RUN_DURATION.name, "duration (s)", "C", instant=True, table=True),
    q(N.TRAINING_RUN_ROWS.name, "rows", "D", instant=True, table=True)],
    description="Pushed by `mlmon training-run` at the end of each run (one Pushgateway group "
    "per job and model). `last run ok` 0 is MlmonTrainingFailed; the time since the last "
    "success against the job's schedule is MlmonTrainingLate.",
    columns={"last run ok": [{"color": RED, "value": None}, {"color": "green", "value": 0.5}]})

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
    [(timeseries("Host CPU busy", [q(host_cpu, "{{instance}}")], unit="percentunit",
                 soft_max=1, description="Node exporter: share of CPU time not idle."), 6),
     (timeseries("Host memory used", [q(host_memory, "{{instance}}")], unit="percentunit",
                 soft_max=1, description="1 - MemAvailable / MemTotal."), 6),
     (timeseries("Host disk IO", [
         q(disk_io.format(metric="node_disk_read_bytes_total", rate=rate),
           "read {{device}} {{instance}}", "A"),
         q(disk_io.format(metric="node_disk_written_bytes_total", rate=rate),
           "written {{device}} {{instance}}", "B")], unit="Bps",
         description="Bytes read and written per second, per block device."), 6),
     (timeseries("Host disk busy and space used", [
         q(disk_io.format(metric="node_disk_io_time_seconds_total", rate=rate),
           "busy {{device}} {{instance}}", "A"),
         q(f"1 - node_filesystem_avail_bytes{watched} / node_filesystem_size_bytes{watched}",
           "space used {{mountpoint}} {{instance}}", "B")], unit="percentunit", soft_max=1,
         thresholds=steps((1 - disk["predict_free_ratio"], YELLOW),
                          (1 - disk["min_free_ratio"], RED)),
         description="Busy: share of time the device had IO in flight (utilisation). Space "
         "used: the filesystems MlmonHostDiskFilling watches (its selector in "
         "alerting/config.yaml); yellow and red at its free-space thresholds."), 6)],
    [(training_runs, 12),
     (timeseries("Training: newest model's metrics and age", [
         q(N.TRAINING_MODEL_METRIC.name, "{{job}} {{model}} {{metric}}", "A"),
         q(f"(time() - {N.TRAINING_MODEL_TRAINED.name}) / 3600",
           "{{job}} {{model}} v{{model_version}} age (h)", "B")],
         description="The evaluation metrics and the age in hours of the newest model each "
         "training job produced (successful runs only)."), 12)],
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
    "Process CPU, memory and GC, scrape health, rule evaluation, the log shipper's queue, spool "
    "and losses, the host (CPU, memory, disk IO and space), training runs, and notifications "
    "(Prometheus' and Alertmanager's side).", panels)
