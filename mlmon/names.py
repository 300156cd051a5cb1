"""Series names shared by the exporter and the rule generator (defined once, imported by both)."""

# When the counters this target exports last started from zero: the process's start in one
# process; in multi-process mode the first open of the profile's metadata in the directory,
# whichever worker answers. The restart-aware window counts (alerting/promql.py) key on it.
COUNTERS_START = "mlmon_counters_start_timestamp_seconds"
# When the answering process loaded the profile: information about that process only.
PROFILE_LOADED = "mlmon_profile_loaded_timestamp_seconds"
