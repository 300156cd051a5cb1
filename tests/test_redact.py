"""Redaction: drop, mask, salted hash; configuration errors are loud."""

from __future__ import annotations

import pytest

from mlmon.exporter.profile import Profile
from mlmon.log_shipper.redact import RedactionError, Redactor, parse_rules

SALT = "s" * 16


def test_actions_and_the_callers_record_is_untouched() -> None:
    record = {"features": {"email": "a@b.c", "name": "Ann", "ssn": "123", "age": 3.0},
              "model": {"name": "m"}}
    out = Redactor({"features.email": "hash", "features.name": "drop",
                    "features.ssn": "mask", "features.absent": "drop"}, salt=SALT)(record)
    assert out["features"]["email"].startswith("hmac-sha256:")
    assert "a@b.c" not in str(out)
    assert "name" not in out["features"] and out["features"]["ssn"] == "***"
    assert out["features"]["age"] == 3.0 and out["model"] is record["model"]
    # a masked number becomes null: it still fits a numeric mapping
    assert Redactor({"features.age": "mask"})({"features": {"age": 3.0}}) == {
        "features": {"age": None}}
    assert record["features"] == {"email": "a@b.c", "name": "Ann", "ssn": "123", "age": 3.0}


def test_hash_is_stable_per_salt_and_differs_between_salts() -> None:
    one, two = (Redactor({"event.id": "hash"}, salt=SALT),
                Redactor({"event.id": "hash"}, salt="t" * 16))
    assert one({"event": {"id": "v"}}) == one({"event": {"id": "v"}})
    assert one({"event": {"id": "v"}}) != two({"event": {"id": "v"}})
    assert one({"event": {"id": None}}) == {"event": {"id": None}}


def test_hash_without_salt_or_with_a_short_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLMON_REDACT_SALT", raising=False)
    with pytest.raises(RedactionError, match="MLMON_REDACT_SALT"):
        Redactor({"features.email": "hash"})
    with pytest.raises(RedactionError, match="at least 16"):
        Redactor({"features.email": "hash"}, salt="short")
    with pytest.raises(RedactionError, match="unknown action"):
        Redactor({"features.email": "encrypt"})


def test_rules_and_salt_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMON_REDACT", "features.email=hash, features.name=drop")
    monkeypatch.setenv("MLMON_REDACT_SALT", SALT)
    redactor = Redactor.from_env()
    assert redactor is not None
    assert redactor({"features": {"name": "Ann"}}) == {"features": {}}
    assert parse_rules("") == {}
    with pytest.raises(RedactionError, match="PATH=ACTION"):
        parse_rules("features.email")


def test_a_feature_name_with_a_dot_is_redacted() -> None:
    # `features.contact.email` names the feature "contact.email", a key of `features`, not
    # a nested object "contact": splitting on every dot used to leave the value raw.
    record = {"features": {"contact.email": "secret@victim.org", "age": 3.0},
              "flags": {"contact.email": ["unseen"]}}
    out = Redactor({"features.contact.email": "hash"}, salt=SALT)(record)
    assert out["features"]["contact.email"].startswith("hmac-sha256:")
    assert "secret@victim.org" not in str(out)
    scores = {"prediction": {"label": "a.b", "scores": {"a.b": 0.9, "c": 0.1}}}
    assert Redactor({"prediction.scores.a.b": "mask"})(scores)["prediction"]["scores"] == {
        "a.b": None, "c": 0.1}


@pytest.mark.parametrize("path", ["feature.email", "features", "email", "features.",
                                  "prediction.score.yes", "event.ident", "model.name.x"])
def test_a_rule_that_matches_no_record_field_is_refused(path: str) -> None:
    if path == "features":  # a whole container is a field too: dropping it is allowed
        assert Redactor({path: "drop"})({"features": {"a": 1}, "b": 2}) == {"b": 2}
        return
    with pytest.raises(RedactionError, match="matches no field of the record"):
        Redactor({path: "drop"})


def test_rules_are_checked_against_the_profile(sample_profile: Profile) -> None:
    names = [f.name for f in sample_profile.features]
    Redactor({f"features.{names[0]}": "mask", f"flags.{names[1]}": "drop"},
             profile=sample_profile)
    with pytest.raises(RedactionError, match="no feature 'emial'"):
        Redactor({"features.emial": "mask"}, profile=sample_profile)
    with pytest.raises(RedactionError, match="no class 'maybe'"):
        Redactor({"prediction.scores.maybe": "mask"}, profile=sample_profile)
    assert isinstance(RedactionError("x"), ValueError)
