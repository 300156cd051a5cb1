"""mlmon exporter: reference profiles and Prometheus series for a model in production."""

from exporter.profile import Profile, ProfileError

__all__ = ["Profile", "ProfileError"]
