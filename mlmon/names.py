"""Names several parts share, defined once: series, their labels, and recording-rule names.

A leaf module (imports nothing of mlmon): the exporter and the shipper export these series, the
rule generator and the dashboards query them, and the docs' metric tables are generated from
them (mlmon/doc_tables.py), so a name or a help text changed here changes everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass

# The labels every model series carries, and those of a feature's series.
MODEL_LABELS = ("model", "model_version")
FEATURE_LABELS = (*MODEL_LABELS, "feature")


@dataclass(frozen=True)
class Series:
    """One exported metric family.

    `name` is the family name as prometheus_client takes it (a counter without `_total`);
    `labels` are those beyond model and model_version (the shipper's carry none of those);
    `doc` is the longer text of the docs' table, `help` the exported HELP line.
    """

    name: str
    type: str  # gauge | counter | histogram | unknown (a counter not named ..._total)
    help: str
    labels: tuple[str, ...] = ()
    doc: str = ""

    @property
    def sample(self) -> str:
        """The name PromQL selects: `_total` appended to a counter."""
        return self.name + "_total" if self.type == "counter" else self.name

    @property
    def bucket(self) -> str:
        return self.name + "_bucket"

    @property
    def count(self) -> str:
        return self.name + "_count"

    @property
    def sum(self) -> str:
        return self.name + "_sum"


@dataclass(frozen=True)
class Reference:
    """The reference distribution of a histogram: cumulative shares, bin shares, le map."""

    cumulative: Series
    bins: Series
    previous_le: Series


def _reference(prefix: str, what: str, labels: tuple[str, ...], doc: str = "") -> Reference:
    return Reference(
        Series(f"{prefix}_reference_cumulative_share", "gauge",
               f"Reference share of {what} <= le (+Inf = 1).", (*labels, "le"),
               doc or "reference share <= le (`+Inf` = 1)"),
        Series(f"{prefix}_reference_bin_share", "gauge",
               f"Reference share of {what} in the bin ending at le.", (*labels, "le"),
               doc or "reference share of the bin that ends at `le`"),
        Series(f"{prefix}_bucket_previous_le_info", "gauge",
               "1; maps each bucket but the first to the bucket below it.",
               (*labels, "le", "previous_le"),
               doc or "1; maps each bucket (but the first) to the one below, so PromQL can turn "
               "cumulative buckets into bins"))


# ---- the exporter's series (mlmon/exporter/collector.py), in the order they are exported ----

MODEL_INFO = Series("mlmon_model_info", "gauge", "1 for each loaded profile.", ("profile_sha",))
MODEL_TRAINED = Series("mlmon_model_trained_timestamp_seconds", "gauge",
                       "When the model was trained.", doc="training time (absent when unknown)")
PROFILE_LOADED = Series("mlmon_profile_loaded_timestamp_seconds", "gauge",
                        "When this process loaded the profile.")
# When the counters this target exports last started from zero: the process's start in one
# process; in multi-process mode the first open of the profile's metadata in the directory,
# whichever worker answers. The restart-aware window counts (alerting/promql.py) key on it.
COUNTERS_START = Series(
    "mlmon_counters_start_timestamp_seconds", "gauge",
    "When the exported counters last started from zero.",
    doc="when the exported counters last started from zero: this process's load in one "
    "process; the profile's first use in the multi-process directory otherwise "
    "([multi-worker servers](multi-worker.md))")
REFERENCE_ROWS = Series("mlmon_reference_rows", "gauge", "Rows in the reference data.",
                        doc="m, rows in the reference data")
OBSERVATIONS = Series("mlmon_observations", "counter", "Records observed.",
                      doc="records observed (the denominator for rates)")
UNKNOWN_FEATURES = Series("mlmon_unknown_features", "counter",
                          "Values for feature names the profile does not know.")
REJECTED = Series("mlmon_rejected", "counter", "Inputs the exporter could not use at all.",
                  ("reason",),
                  "inputs the exporter could not use at all: `not_a_mapping`, "
                  "`batch_length_mismatch`, `bad_batch`, `bad_score`, `bad_latency`, "
                  "`internal_error` (a rejected batch counts 1)")
WORKER_FILE_ERRORS = Series(
    "mlmon_worker_file_errors", "counter",
    "Failed attempts of a worker process to open its own multi-process file.", ("reason",),
    "failed attempts of a worker process to open its own file in the multi-process directory: "
    "`no_space` (disk, inodes or quota full), `not_writable`, `no_file_descriptors`, `other`; "
    "counted in the process's memory, with its records, until a retry opens the file (the "
    "scrapes that process answers show them meanwhile, alert MlmonWorkerFileErrors); a "
    "challenger comparison's file counts under its champion's version "
    "([multi-worker servers](multi-worker.md#when-a-worker-cannot-open-its-file))")
FEATURE_MISSING = Series("mlmon_feature_missing", "counter", "Feature values absent or None.",
                         ("feature",), "absent, None, pandas NA or NaN (profiling counts a NaN "
                         "cell as null too)")
FEATURE_INVALID = Series("mlmon_feature_invalid", "counter", "Invalid feature values by reason.",
                         ("feature", "reason"), "numeric: out_of_range, inf, wrong_type; "
                         "categorical: not_allowed, wrong_type; text: wrong_type")
FEATURE_REFERENCE_COUNT = Series("mlmon_feature_reference_count", "gauge",
                                 "Non-null reference values.", ("feature",),
                                 "non-null reference values of the feature")
FEATURE_REFERENCE_NULL_RATE = Series("mlmon_feature_reference_null_rate", "gauge",
                                     "Reference null rate.", ("feature",))
FEATURE_VALUE = Series("mlmon_feature_value", "histogram",
                       "Numeric feature values on reference edges.", ("feature", "le"),
                       "numeric values on the reference edges (`_bucket`, `_count`, `_sum`)")
FEATURE_REFERENCE = _reference("mlmon_feature", "feature values", ("feature",))
FEATURE_CATEGORY = Series("mlmon_feature_category", "counter",
                          "Categorical values per reference category.", ("feature", "category"),
                          "per top-K category, `__other__`, `__unseen__`")
FEATURE_CATEGORY_REFERENCE_SHARE = Series(
    "mlmon_feature_category_reference_share", "gauge", "Reference category shares.",
    ("feature", "category"), "reference shares (`__unseen__` = 0)")
FEATURE_TEXT_TOKENS = Series("mlmon_feature_text_tokens", "counter", "Text tokens seen.",
                             ("feature",))
FEATURE_TEXT_OOV_TOKENS = Series("mlmon_feature_text_oov_tokens", "counter",
                                 "Text tokens outside the vocabulary.", ("feature",),
                                 "tokens outside the reference vocabulary")
FEATURE_TEXT_REFERENCE_OOV_RATE = Series("mlmon_feature_text_reference_oov_rate", "gauge",
                                         "Reference OOV token rate.", ("feature",))
PREDICTION_VALUE = Series("mlmon_prediction_value", "histogram", "Regression predictions.",
                          ("le",), "regression predictions on the reference edges")
PREDICTION_CENTERED_SUM_SQUARES = Series(
    "mlmon_prediction_centered_sum_squares", "unknown",
    "Sum of (y - c)^2, c = mlmon_prediction_center.",
    doc="sum of (y - c)^2, c = `mlmon_prediction_center`; untyped because prometheus_client "
    "would append `_total` to a counter")
PREDICTION_CENTER = Series("mlmon_prediction_center", "gauge", "c, the reference mean.",
                           doc="c, the reference mean (stable variance, below)")
PREDICTION_WINDOW_MIN = Series("mlmon_prediction_window_min", "gauge",
                               "Smallest prediction in the window.",
                               doc="min over the last 60 s (6 rotating 10 s slots); absent when "
                               "no prediction in the window")
PREDICTION_WINDOW_MAX = Series("mlmon_prediction_window_max", "gauge",
                               "Largest prediction in the window.", doc="max, likewise")
PREDICTION_REFERENCE = _reference("mlmon_prediction", "predictions", (), "as for features")
PREDICTION_CLASS = Series("mlmon_prediction_class", "counter", "Predicted classes.", ("class",),
                          "classifier classes; `__unseen__` for a class not in the profile")
PREDICTION_CLASS_REFERENCE_SHARE = Series(
    "mlmon_prediction_class_reference_share", "gauge", "Reference class shares.", ("class",),
    "reference shares (`__unseen__` = 0)")
PREDICTION_SCORE = Series("mlmon_prediction_score", "histogram",
                          "Probability of the predicted class.", ("le",),
                          "classifier score (probability of the predicted class) on the "
                          "reference score edges")
PREDICTION_SCORE_REFERENCE = _reference("mlmon_prediction_score", "scores", (),
                                        "as for features")
PREDICTION_INVALID = Series("mlmon_prediction_invalid", "counter",
                            "Unusable predictions by reason.", ("reason",),
                            "nan, inf, wrong_type predictions; out_of_range: a regression "
                            "prediction outside the profile's allowed range (also counted in "
                            "the histogram)")
# The `reason` of a regression prediction outside the profile's range: the exporter counts it
# (exporter/values.py), an alert and a dashboard panel select it.
OUT_OF_RANGE = "out_of_range"
INFERENCE_LATENCY = Series("mlmon_inference_latency_seconds", "histogram", "Request latency.",
                           ("le",), "request latency (prometheus_client's default buckets)")
REQUESTS = Series("mlmon_requests", "counter", "Requests by outcome.", ("outcome",),
                  "ok / error")
REQUESTS_IN_FLIGHT = Series("mlmon_requests_in_flight", "gauge", "Requests in progress.")

# ---- outcomes: realized performance once labels arrive (mlmon/exporter/outcomes.py) ---------
# Counted when a label is joined to its prediction (in the service, or by `mlmon outcomes`, which
# pushes them to the Pushgateway). Bounded by the profile: classes plus `__unseen__`, and error
# edges from the reference residuals.
OUTCOME_CLASS = Series("mlmon_outcome_class", "counter", "Labelled predictions by class pair.",
                       ("predicted_class", "actual_class"),
                       "labelled classifications: the confusion matrix over the profile's "
                       "classes plus `__unseen__`")
OUTCOME_ERROR = Series("mlmon_outcome_error", "histogram",
                       "Regression errors (prediction - actual).", ("le",),
                       "regression errors (prediction - actual) on edges from the reference "
                       "residuals; `_count` is the labelled count, `_sum` the summed error (bias)")
OUTCOME_ABSOLUTE_ERROR = Series("mlmon_outcome_absolute_error", "counter",
                                "Sum of |prediction - actual|.")
OUTCOME_SQUARED_ERROR = Series("mlmon_outcome_squared_error", "counter",
                               "Sum of (prediction - actual)^2.")
OUTCOME_LABEL_DELAY = Series("mlmon_outcome_label_delay_seconds", "histogram",
                             "Time from prediction to label arrival.", ("le",),
                             "time from prediction to label arrival, on fixed buckets from 1 s "
                             "to 90 days (counted when the prediction time is known)")
OUTCOME_REJECTED = Series("mlmon_outcome_rejected", "counter",
                          "Labels not counted, by reason.", ("reason",),
                          "labels not counted: `missing_prediction`, `invalid_prediction`, "
                          "`missing_actual`, `wrong_type`, `nan`, `inf` (the actual's, or an "
                          "overflowing error), `bad_batch`, `no_prediction_in_profile`, "
                          "`internal_error`; from the join: `unknown_id`, `duplicate`, "
                          "`unknown_model`, `bad_arrival`, `write_error`, `es_unavailable`, "
                          "`queue_full`, `join_error` (the join raised: a bug, logged), "
                          "`closed` (the service's worker closed before joining them); and "
                          "`bad_delay`: a label counted without its delay (unusable times, or "
                          "arrival before the prediction)")
BASELINE = Series("mlmon_model_baseline", "gauge", "A baseline metric on the reference data.",
                  ("metric",), "the profile's `baseline_metrics` (accuracy, mae, rmse, ...)")
# The Pushgateway job of `mlmon outcomes` runs (mlmon/outcomes/push.py): one group per run,
# `instance` = the run id.
OUTCOMES_PUSH_JOB = "mlmon_outcomes"

# ---- estimated performance before labels arrive (mlmon/exporter/estimation.py) ---------------
# The expected confusion matrix from calibrated scores (docs/estimation.md): the same label shape
# as OUTCOME_CLASS, so one rule builder turns either into accuracy, precision and recall.
ESTIMATED_CLASS = Series("mlmon_estimated_outcome_class", "counter",
                         "Expected labelled predictions by class pair, from calibrated scores.",
                         ("predicted_class", "actual_class"),
                         "the expected confusion matrix over the profile's classes: each scored "
                         "prediction adds the calibrated probability of each actual class "
                         "(summing to 1) to the row of its predicted class")
ESTIMATION_INFO = Series("mlmon_estimation_info", "gauge",
                         "1; whether estimation uses a calibration fitted on the reference.",
                         ("calibrated",),
                         "1, with `calibrated=\"true\"` when the profile holds a calibration "
                         "fitted on the reference's target and scores, `\"false\"` when "
                         "estimation uses the raw scores; absent for a profile without scores")
# ---- training runs: pushed by `mlmon training-run` / TrainingRun (mlmon/exporter/training.py) --
# One Pushgateway group per (job, model): the `job` and `model` labels come from the grouping
# key. Every run replaces the RUN series; only a successful one replaces the TRAINED series, so
# a failed run leaves the newest model's record as it was.
TRAINING_RUN_TIMESTAMP = Series("mlmon_training_run_timestamp_seconds", "gauge",
                                "When the last training run ended.",
                                doc="when the last run of the job ended, success or failure")
TRAINING_RUN_SUCCESS = Series("mlmon_training_run_success", "gauge",
                              "1 when the last training run succeeded, 0 when it failed.")
TRAINING_RUN_DURATION = Series("mlmon_training_run_duration_seconds", "gauge",
                               "How long the last training run took.")
TRAINING_RUN_ROWS = Series("mlmon_training_run_rows", "gauge",
                           "Rows the last training run trained on.",
                           doc="rows the last run trained on (NaN when a failed run did not say)")
TRAINING_LAST_SUCCESS = Series("mlmon_training_last_success_timestamp_seconds", "gauge",
                               "When a training run last succeeded.",
                               doc="when the job last succeeded (the late-retraining alert)")
TRAINING_MODEL_TRAINED = Series("mlmon_training_model_trained_timestamp_seconds", "gauge",
                                "When the newest trained model was trained.",
                                ("model_version", "profile_sha"),
                                "when the newest successfully trained model was trained (its "
                                "profile's `trained_at`), labelled with its version and "
                                "profile sha; compared with the live model's "
                                "`mlmon_model_trained_timestamp_seconds`")
TRAINING_MODEL_METRIC = Series("mlmon_training_model_metric", "gauge",
                               "Evaluation metrics of the newest trained model.", ("metric",),
                               "evaluation metrics of the newest successfully trained model "
                               "(accuracy, auc, rmse, ...)")
TRAINING_RUN_SERIES = (TRAINING_RUN_TIMESTAMP, TRAINING_RUN_SUCCESS, TRAINING_RUN_DURATION,
                       TRAINING_RUN_ROWS)
TRAINING_TRAINED_SERIES = (TRAINING_LAST_SUCCESS, TRAINING_MODEL_TRAINED, TRAINING_MODEL_METRIC)
TRAINING_SERIES = (*TRAINING_RUN_SERIES, *TRAINING_TRAINED_SERIES)


def _references(*refs: Reference) -> tuple[Series, ...]:
    return tuple(s for r in refs for s in (r.cumulative, r.bins, r.previous_le))


# Every exporter series, in the docs' order (the order they are exported).
EXPORTER_SERIES = (
    MODEL_INFO, MODEL_TRAINED, PROFILE_LOADED, COUNTERS_START, REFERENCE_ROWS, OBSERVATIONS,
    UNKNOWN_FEATURES, REJECTED, WORKER_FILE_ERRORS, FEATURE_MISSING, FEATURE_INVALID,
    FEATURE_REFERENCE_COUNT, FEATURE_REFERENCE_NULL_RATE, FEATURE_VALUE,
    *_references(FEATURE_REFERENCE),
    FEATURE_CATEGORY, FEATURE_CATEGORY_REFERENCE_SHARE, FEATURE_TEXT_TOKENS,
    FEATURE_TEXT_OOV_TOKENS, FEATURE_TEXT_REFERENCE_OOV_RATE, PREDICTION_VALUE,
    PREDICTION_CENTERED_SUM_SQUARES, PREDICTION_CENTER, PREDICTION_WINDOW_MIN,
    PREDICTION_WINDOW_MAX, *_references(PREDICTION_REFERENCE), PREDICTION_CLASS,
    PREDICTION_CLASS_REFERENCE_SHARE, PREDICTION_SCORE, *_references(PREDICTION_SCORE_REFERENCE),
    PREDICTION_INVALID, ESTIMATION_INFO, ESTIMATED_CLASS, INFERENCE_LATENCY, REQUESTS,
    REQUESTS_IN_FLIGHT,
    BASELINE, OUTCOME_CLASS, OUTCOME_ERROR, OUTCOME_ABSOLUTE_ERROR, OUTCOME_SQUARED_ERROR,
    OUTCOME_LABEL_DELAY, OUTCOME_REJECTED,
)

# ---- the log shipper's and the prediction logger's own series (mlmon/log_shipper) ----------

# ShipperStats field -> help, in the order they are exported as mlmon_shipper_<field>_total
_SHIPPER_COUNTERS = {
    "queued": "records accepted by ship()",
    "shipped": "records indexed on their first delivery attempt",
    "retried": "document re-sends after a retryable failure",
    "spooled": "records written to the disk spool",
    "replayed": "records indexed after a failure or from a spool left by a previous process",
    "dead_lettered": "records Elasticsearch rejected for their content",
    "spool_corrupt": "torn or corrupt spool records skipped",
    "duplicate_ids": "records not indexed because their id (request_id) was already indexed",
    "fsync_failures": "spool fsyncs that failed (records kept, not safe from a power loss)",
}
SHIPPER_COUNTERS = {key: Series(f"mlmon_shipper_{key}", "counter", text)
                    for key, text in _SHIPPER_COUNTERS.items()}
SHIPPER_DROPPED = Series("mlmon_shipper_dropped", "counter", "records lost, by reason",
                         ("reason",))
SHIPPER_QUEUE_DEPTH = Series("mlmon_shipper_queue_depth", "gauge",
                             "records in the in-memory queue")
SHIPPER_SPOOL_BYTES = Series("mlmon_shipper_spool_bytes", "gauge",
                             "bytes waiting in the disk spool")
SHIPPER_LAST_SUCCESS = Series("mlmon_shipper_last_success_timestamp_seconds", "gauge",
                              "when Elasticsearch last accepted a bulk request")
SHIPPER_ROLE_UP = Series("mlmon_shipper_role_up", "gauge",
                         "1 while the role runs, 0 while it backs off after an error", ("role",))
SHIPPER_ROLE_RESTARTS = Series("mlmon_shipper_role_restarts", "counter",
                               "restarts of the role after an unexpected error", ("role",))
LOGGER_ERRORS = Series("mlmon_prediction_logger_errors", "counter",
                       "record() calls that failed inside (the caller got None)")
LOG_SINK_DROPPED = Series("mlmon_log_sink_dropped", "counter",
                          "records the JSON-lines sink did not write, by reason", ("reason",),
                          "records the JSON-lines sink did not write: `queue_full`, "
                          "`build_error`, `write_error`")

SHIPPER_SERIES = (*SHIPPER_COUNTERS.values(), SHIPPER_DROPPED, SHIPPER_QUEUE_DEPTH,
                  SHIPPER_SPOOL_BYTES, SHIPPER_LAST_SUCCESS, SHIPPER_ROLE_UP,
                  SHIPPER_ROLE_RESTARTS, LOGGER_ERRORS, LOG_SINK_DROPPED)


# ---- recording-rule names (mlmon/alerting/recording.py) ------------------------------------

@dataclass(frozen=True)
class RuleName:
    """A recording rule named `level:metric:operation<window>`, one per window.

    >>> FEATURE_PSI.at("1h")
    'model_feature:mlmon_feature_psi:1h'
    """

    level: str
    metric: str
    operation: str = ""  # "increase", "ratio", "share", "p95_" ...; "" for a statistic

    def at(self, window: str) -> str:
        """The rule over `window`, or over the latest pushed batch when `window` is BATCH."""
        return f"{self.level}:{self.metric}:{operation(self.operation, window)}"


# The "window" of the `:batch` rules: the latest pushed run of each batch job, read as it is.
BATCH = "batch"


def operation(op: str, window: str) -> str:
    """A rule name's last part: `increase5m`; for BATCH `batch`, or `ratio_batch` (a batch's
    counts are what it pushed, not an increase)."""
    if window != BATCH:
        return f"{op}{window}"
    op = "" if op == "increase" else op.rstrip("_")
    return f"{op}_{BATCH}" if op else BATCH


FEATURE_PSI = RuleName("model_feature", "mlmon_feature_psi")
FEATURE_KS = RuleName("model_feature", "mlmon_feature_ks")
FEATURE_JS = RuleName("model_feature", "mlmon_feature_js")
FEATURE_CHI2 = RuleName("model_feature", "mlmon_feature_chi2")
# the headline drift statistics of a feature, by their short name
FEATURE_STATS = {"psi": FEATURE_PSI, "ks": FEATURE_KS, "js": FEATURE_JS, "chi2": FEATURE_CHI2}
FEATURE_KS_CRITICAL = RuleName("model_feature", "mlmon_feature_ks_critical")
FEATURE_SAMPLES = RuleName("model_feature", "mlmon_feature_samples", "increase")
FEATURE_MISSING_RATIO = RuleName("model_feature", "mlmon_feature_missing", "ratio")
FEATURE_INVALID_RATIO = RuleName("model_feature_reason", "mlmon_feature_invalid", "ratio")
FEATURE_UNSEEN_SHARE = RuleName("model_feature", "mlmon_feature_unseen", "share")
FEATURE_TEXT_TOKENS_INCREASE = RuleName("model_feature", "mlmon_feature_text_tokens", "increase")
FEATURE_TEXT_OOV_RATIO = RuleName("model_feature", "mlmon_feature_text_oov", "ratio")
OBSERVATIONS_INCREASE = RuleName("model", "mlmon_observations", "increase")
OBSERVATIONS_RATE = RuleName("model", "mlmon_observations", "rate")
PREDICTION_PSI = RuleName("model", "mlmon_prediction_psi")
PREDICTION_KS = RuleName("model", "mlmon_prediction_ks")
PREDICTION_JS = RuleName("model", "mlmon_prediction_js")
PREDICTION_KS_CRITICAL = RuleName("model", "mlmon_prediction_ks_critical")
PREDICTION_SAMPLES = RuleName("model", "mlmon_prediction_samples", "increase")
PREDICTION_INVALID_INCREASE = RuleName("model_reason", "mlmon_prediction_invalid", "increase")
REQUESTS_RATE = RuleName("model", "mlmon_requests", "rate")
REQUESTS_ERRORS_RATIO = RuleName("model", "mlmon_requests_errors", "ratio")


def prediction_stat(stat: str) -> RuleName:
    """model:mlmon_prediction_<stat>:<window>: score_psi, mean, median, std, p10, min ..."""
    return RuleName("model", f"mlmon_prediction_{stat}")


def latency_quantile(quantile: str) -> RuleName:
    """model:mlmon_inference_latency_seconds:<p50|p95|p99>_<window>."""
    return RuleName("model", INFERENCE_LATENCY.name, quantile + "_")


# ---- realized performance (mlmon/alerting/outcomes.py), names pinned for users' queries -----
OUTCOME_ACCURACY = RuleName("model", "mlmon_outcome_accuracy")
OUTCOME_PRECISION = RuleName("model_class", "mlmon_outcome_precision")
OUTCOME_RECALL = RuleName("model_class", "mlmon_outcome_recall")
OUTCOME_MAE = RuleName("model", "mlmon_outcome_mae")
OUTCOME_RMSE = RuleName("model", "mlmon_outcome_rmse")
OUTCOME_LABELLED = RuleName("model", "mlmon_outcome_labelled", "increase")
# Beside the pinned names above (mlmon/alerting/outcomes.py): the mean error and the median
# label delay, and the pooled confusion matrix with the per-class counts behind precision and
# recall (ConfusionNames in outcomes.py derives those from OUTCOME_CLASS_INCREASE).
OUTCOME_BIAS = RuleName("model", "mlmon_outcome_bias")
OUTCOME_LABEL_DELAY_MEDIAN = RuleName("model", OUTCOME_LABEL_DELAY.name, "p50_")
OUTCOME_CLASS_INCREASE = RuleName("model_predicted_class_actual_class", OUTCOME_CLASS.name,
                                  "increase")
# The class the exporter counts for a value outside the profile's classes (exporter/layout.py
# writes the same string): two such values need not be equal, so a pair of them is never
# counted correct.
UNSEEN_CLASS = "__unseen__"


# ---- batch runs (mlmon/batch/run.py), pushed to the Pushgateway -------------------
# A batch run pushes the exporter's series above (the counts of what it scored) plus these,
# as one Pushgateway group per (batch job, model, model_version): job `BATCH_PUSH_JOB`, the
# job's own name in the label `BATCH_LABEL`. That label is what keeps batch counts out of the
# online rules (they select `BATCH_LABEL=""`) and what the `:batch` rules group by.
BATCH_PUSH_JOB = "mlmon_batch"
BATCH_LABEL = "batch_job"
BATCH_LABELS = (BATCH_LABEL, *MODEL_LABELS)
BATCH_RUN_SUCCESS = Series("mlmon_batch_run_success", "gauge",
                           "1 when the last run of the batch job succeeded, 0 when it failed.")
BATCH_RUN_ROWS = Series("mlmon_batch_run_rows", "gauge", "Rows the last run scored.",
                        doc="rows the last run scored (as far as it got, when it failed)")
BATCH_RUN_DURATION = Series("mlmon_batch_run_duration_seconds", "gauge",
                            "Duration of the last run.")
BATCH_RUN_START = Series("mlmon_batch_run_start_timestamp_seconds", "gauge",
                         "When the last run started.")
BATCH_RUN_END = Series("mlmon_batch_run_end_timestamp_seconds", "gauge",
                       "When the last run ended.")
BATCH_LAST_SUCCESS = Series("mlmon_batch_last_success_timestamp_seconds", "gauge",
                            "When the last successful run ended.",
                            doc="when the last successful run ended (a failed run leaves it "
                            "as it was)")
# The series a failed run pushes (POST: only these are replaced, so the group keeps the counts
# and the last-success time of the last successful run); a successful run pushes them all.
BATCH_FAILURE_SERIES = (BATCH_RUN_SUCCESS, BATCH_RUN_ROWS, BATCH_RUN_DURATION, BATCH_RUN_START,
                        BATCH_RUN_END)
BATCH_SERIES = (*BATCH_FAILURE_SERIES, BATCH_LAST_SUCCESS)
# Recorded (`.at(BATCH)`): the start time of each job's most recent run, on that run's model
# version only, so the batch alerts ignore the groups a job's older model versions left behind.
BATCH_LATEST_RUN = RuleName("model", "mlmon_batch_latest_run")
# Exporter series a batch run does not push: request-path series (a batch has no requests)
# and the rolling prediction min/max (a 60 s window means nothing for a pushed batch).
BATCH_NOT_PUSHED = (INFERENCE_LATENCY, REQUESTS, REQUESTS_IN_FLIGHT, PREDICTION_WINDOW_MIN,
                    PREDICTION_WINDOW_MAX, PROFILE_LOADED)
# ---- estimated performance (mlmon/alerting/estimation.py) ------------------------------------
ESTIMATED_ACCURACY = RuleName("model", "mlmon_estimated_accuracy")
ESTIMATED_PRECISION = RuleName("model_class", "mlmon_estimated_precision")
ESTIMATED_RECALL = RuleName("model_class", "mlmon_estimated_recall")
ESTIMATED_SAMPLES = RuleName("model", "mlmon_estimated_samples", "increase")
ESTIMATED_CLASS_INCREASE = RuleName("model_predicted_class_actual_class", ESTIMATED_CLASS.name,
                                    "increase")

# ---- champion and challenger (mlmon/exporter/challenger.py, mlmon/alerting/challenger.py) ---
# A challenger runs in shadow beside the live model (the champion), on the same requests, under
# its own model_version; these series say which version plays which role and how often the two
# agree. The comparison series carry the challenger's model_version and `champion_version`.
MODEL_ROLE_INFO = Series("mlmon_model_role_info", "gauge",
                         "1 per model version in a champion/challenger pair, with its role.",
                         ("role", "champion_version"),
                         "1 per model version with its `role` (`champion` / `challenger`); a "
                         "challenger's row names the version it is compared with in "
                         "`champion_version`")
# The `role` values of MODEL_ROLE_INFO, also the record's role (log_shipper/record.py).
CHAMPION_ROLE, CHALLENGER_ROLE = "champion", "challenger"
CHALLENGER_COMPARED = Series("mlmon_challenger_compared", "counter",
                             "Challenger predictions compared with the champion's.",
                             ("champion_version", "agreement"),
                             "challenger predictions compared with the champion's on the same "
                             "request: `agreement` = `agree` / `disagree` (classification: the "
                             "same class; regression: |challenger - champion| <= the tolerance)")
CHALLENGER_CLASS_PAIR = Series("mlmon_challenger_class_pair", "counter",
                               "Compared classifications by (champion, challenger) class.",
                               ("champion_version", "champion_class", "challenger_class"),
                               "compared classifications per (champion class, challenger "
                               "class), over the challenger profile's classes plus `__unseen__`")
CHALLENGER_DIFFERENCE = Series("mlmon_challenger_difference", "histogram",
                               "Regression: challenger prediction - champion prediction.",
                               ("champion_version", "le"),
                               "regression: challenger - champion on edges of +-(0.05, 0.1, "
                               "0.25, 0.5, 1) x the champion's reference prediction std, and 0")
CHALLENGER_TOLERANCE = Series("mlmon_challenger_tolerance", "gauge",
                              "Regression: the |difference| that still counts as agreement.",
                              ("champion_version",))
CHALLENGER_SKIPPED = Series("mlmon_challenger_skipped", "counter",
                            "Challenger work not done or not compared, by reason.",
                            ("champion_version", "reason"),
                            "challenger work shed or failed: `queue_full` (the pool is behind), "
                            "`closed` (pending at close), `predict_error`, `record_error`, "
                            "`not_comparable` (a prediction missing or invalid), "
                            "`predict_timeout` (its process did not answer in time: killed), "
                            "`process_died` (its process exited, or is waiting to restart)")

CHALLENGER_SERIES = (MODEL_ROLE_INFO, CHALLENGER_COMPARED, CHALLENGER_CLASS_PAIR,
                     CHALLENGER_DIFFERENCE, CHALLENGER_TOLERANCE, CHALLENGER_SKIPPED)

CHALLENGER_COMPARED_INCREASE = RuleName("model", "mlmon_challenger_compared", "increase")
CHALLENGER_AGREEMENT = RuleName("model", "mlmon_challenger_agreement", "ratio")
CHALLENGER_CLASS_PAIR_INCREASE = RuleName("model_class_pair", "mlmon_challenger_class_pair",
                                          "increase")
CHALLENGER_DIFFERENCE_MEAN = RuleName("model", "mlmon_challenger_difference_mean")


def challenger_gap(rule: RuleName) -> RuleName:
    """The challenger-minus-champion gap of a per-version rule, keyed by the challenger's
    version: `model:mlmon_outcome_accuracy_challenger_gap:<w>` for OUTCOME_ACCURACY."""
    return RuleName(rule.level, rule.metric + "_challenger_gap", rule.operation)
# the agreement rule above keeps `agreement` (agree / disagree) before the ratio sums it away
CHALLENGER_COMPARED_BY_AGREEMENT = RuleName("model_agreement", "mlmon_challenger_compared",
                                            "increase")
