"""The profile model: parsing, validation messages, canonical bytes."""

from __future__ import annotations

import json

import pytest

from mlmon.exporter.profile import SCHEMA_VERSION, Profile, ProfileError
from tests.profiles import sample_profile_dict


@pytest.mark.parametrize("classification", [False, True])
def test_round_trip_is_byte_identical(classification: bool) -> None:
    profile = Profile.from_dict(sample_profile_dict(classification))
    again = Profile.loads(profile.dumps())
    assert again == profile
    assert again.dumps() == profile.dumps()
    assert again.sha == profile.sha


def test_cumulative_shares_end_at_one(sample_profile: Profile) -> None:
    age = sample_profile.feature("age")
    assert age.binned.cumulative_shares() == (0.25, 0.5, 0.75, 1.0)


def test_newer_schema_is_refused_with_upgrade_hint() -> None:
    data = sample_profile_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ProfileError, match="newer than this mlmon"):
        Profile.from_dict(data)


def test_corrupt_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(ProfileError, match=str(path)):
        Profile.load(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["features"][0].update(edges=[3.0, 2.0, 1.0]), "strictly increasing"),
        (lambda d: d["features"][0].update(bin_shares=[0.5, 0.5, 0.5, 0.5]), "sum to"),
        (lambda d: d["features"][2].update(kind="colour"), "unknown kind"),
        (lambda d: d["features"].append(dict(d["features"][0])), "duplicate feature"),
        (lambda d: d["model"].update(name=""), "non-empty"),
        (lambda d: d["features"][0].pop("allowed_range"), "allowed_range"),
    ],
)
def test_inconsistent_profiles_are_refused(mutate, message) -> None:
    data = json.loads(json.dumps(sample_profile_dict()))
    mutate(data)
    with pytest.raises(ProfileError, match=message):
        Profile.from_dict(data)
