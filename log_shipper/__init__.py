"""mlmon log shipper: every input record into Elasticsearch, none lost."""

from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.shipper import Shipper

__all__ = ["PredictionLogger", "Shipper"]
