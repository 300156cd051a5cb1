"""mlmon exporter: reference profiles and Prometheus series for a model in production."""

from exporter.monitor import BatchObservation, ModelMonitor, Observation
from exporter.profile import Profile, ProfileError

__all__ = ["BatchObservation", "ModelMonitor", "Observation", "Profile", "ProfileError"]
