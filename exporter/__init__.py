"""mlmon exporter: reference profiles and Prometheus series for a model in production."""

from mlmon.exporter.monitor import BatchObservation, ModelMonitor, Observation
from mlmon.exporter.outcome_monitor import OutcomeMonitor
from mlmon.exporter.outcomes import OutcomeBatch, OutcomeVerdict
from mlmon.exporter.profile import Profile, ProfileError

__all__ = ["BatchObservation", "ModelMonitor", "Observation", "OutcomeBatch", "OutcomeMonitor",
           "OutcomeVerdict", "Profile", "ProfileError"]
