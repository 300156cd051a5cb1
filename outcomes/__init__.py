"""mlmon outcomes: delayed labels joined to the stored predictions and counted into Prometheus.

The join itself (Elasticsearch lookup and conditional write) is `mlmon.log_shipper.join`, which
services use too (`PredictionLogger.record_outcome`); this package is the file-driven side:
reading label files (`labels`), pushing a run's counts (`push`) and the CLI (`cli`).
"""
