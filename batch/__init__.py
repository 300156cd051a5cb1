"""mlmon batch: batch scoring jobs, monitored like services through the Pushgateway.

`BatchRun` (a job's Python API) and `mlmon batch` (a scored file, for pipelines that will not
change code): see docs/batch-jobs.md.
"""

from mlmon.batch.run import BatchRun, PushError

__all__ = ["BatchRun", "PushError"]
