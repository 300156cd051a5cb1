"""Shared test fixtures. Area fixtures (servers) live beside their tests."""

from __future__ import annotations

import os

import pytest

from mlmon.exporter.profile import Profile
from tests.profiles import sample_profile_dict


def missing_server(what: str) -> None:
    """A server the test needs is not installed: a failure in CI, a skip on a laptop."""
    message = f"{what} is not installed; run 'make install-servers'"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def sample_profile() -> Profile:
    return Profile.from_dict(sample_profile_dict())
