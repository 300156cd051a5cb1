"""Comparison counts in a multi-process directory: worker files like the monitors'."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlmon.exporter.challenger_counts import Counts, counts_key
from mlmon.exporter.monitor import ModelMonitor
from mlmon.exporter.profile import Profile
from tests.profiles import sample_profile_dict


def _storage(directory: str):  # the champion monitor's storage, where failed opens count
    profile = Profile.from_dict(sample_profile_dict())
    return ModelMonitor(profile, CollectorRegistry(), multiproc_directory=directory).storage


def test_files_of_earlier_versions_are_summed(tmp_path) -> None:
    """`mlmon_challenger_<hash>_<pid>.db`, written before worker locks, still counts."""
    key = counts_key("churn", "3", "4")
    np.array([5.0, 1.0, 0.0]).tofile(tmp_path / f"mlmon_{key}_4242.db")
    counts = Counts(3, str(tmp_path), key, file_errors=_storage(str(tmp_path)))
    counts.add(0)
    counts.add(2, 0.5)
    assert counts.totals().tolist() == [6.0, 1.0, 0.5]
    assert counts.path is not None and counts.path.endswith(".db")


def test_counts_in_a_directory_need_somewhere_to_count_failed_opens(tmp_path) -> None:
    with pytest.raises(ValueError, match="failed opens"):
        Counts(3, str(tmp_path), counts_key("churn", "3", "4"))


def test_a_file_that_cannot_be_made_at_start_up_raises(tmp_path) -> None:
    """Only a forked worker falls back to memory: the process that makes the comparison sees
    the error, as with a monitor."""
    storage = _storage(str(tmp_path / "mp"))
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        Counts(3, str(tmp_path / "file" / "mp"), counts_key("a"), file_errors=storage)
