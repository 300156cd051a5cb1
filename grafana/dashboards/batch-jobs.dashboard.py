"""Batch jobs: the latest pushed run of each batch scoring job, its drift per feature, rows,
duration and age (mlmon batch / BatchRun, through the Pushgateway)."""

from panels import (
    MODEL,
    RED,
    YELLOW,
    alert_config,
    dashboard,
    layout,
    psi_steps,
    q,
    stat,
    steps,
    table,
    timeseries,
)

import mlmon.names as N

config = alert_config()
BATCH = "batch"  # the `:batch` rules: the statistic of each batch job's latest pushed run
selector = "{" + MODEL + "}"
by_job = f"{N.BATCH_LABEL}, model, model_version"
HOUR, DAY = 3600, 86400


def run(series: N.Series) -> str:
    return f"{series.name}{selector}"


latest_runs = table("Latest run of each batch job", [
    q(run(N.BATCH_RUN_SUCCESS), "ok", "A", instant=True, table=True),
    q(run(N.BATCH_RUN_ROWS), "rows", "B", instant=True, table=True),
    q(run(N.BATCH_RUN_DURATION), "duration (s)", "C", instant=True, table=True),
    q(f"time() - {run(N.BATCH_RUN_END)}", "age (s)", "D", instant=True, table=True),
    q(f"time() - {run(N.BATCH_LAST_SUCCESS)}", "since last success (s)", "E", instant=True,
      table=True)],
    description="One row per batch job and model version, as last pushed: whether the run "
    "succeeded, the rows it scored, how long it took, and how long ago it ended.",
    columns={"ok": [{"color": RED, "value": None}, {"color": "green", "value": 0.5}],
             "since last success (s)": steps((DAY, YELLOW), (2 * DAY, RED))},
    hide=("Time", "instance", "job"))

feature_drift = table("Drift per feature in the latest batch", [
    q(f"{N.FEATURE_PSI.at(BATCH)}{selector}", "PSI", "A", instant=True, table=True),
    q(f"{N.FEATURE_KS.at(BATCH)}{selector}", "KS", "B", instant=True, table=True)],
    description="The same statistics as for the online model (one definition in the rule "
    "generator), on the counts of each batch job's latest run. PSI coloured as on every "
    "dashboard: yellow from half the drift alert's floor, red from it.",
    columns={"PSI": psi_steps(config)})

panels = layout([
    [(latest_runs, 24)],
    [(feature_drift, 16),
     (stat("Prediction PSI, latest batch", [
         q(f"{N.PREDICTION_PSI.at(BATCH)}{selector}", "{{batch_job}} v{{model_version}}")],
         thresholds=psi_steps(config)), 8)],
    [(timeseries("Feature PSI of each batch run", [
        q(f"{N.FEATURE_PSI.at(BATCH)}{selector}", "{{batch_job}} {{feature}}")],
        thresholds=psi_steps(config),
        description="Steps at each push: a new run replaces its job's counts."), 12),
     (timeseries("Rows and duration of each batch run", [
         q(run(N.BATCH_RUN_ROWS), "rows {{batch_job}}", "A"),
         q(run(N.BATCH_RUN_DURATION), "seconds {{batch_job}}", "B")]), 12)],
])

dashboard = dashboard(
    "mlmon / Batch jobs", "mlmon-batch-jobs",
    f"Each batch scoring job's latest pushed run ({by_job}): outcome, rows, duration, age, and "
    "its drift per feature and for the prediction from the `:batch` recording rules.", panels)
