"""mlmon exporter: reference profiles and Prometheus series for a model in production."""

from mlmon.exporter.monitor import BatchObservation, ModelMonitor, Observation
from mlmon.exporter.profile import Profile, ProfileError

__all__ = ["BatchObservation", "ModelMonitor", "Observation", "Profile", "ProfileError"]
