"""Redaction: drop, mask, salted hash; configuration errors are loud."""

from __future__ import annotations

import pytest

from log_shipper.redact import RedactionError, Redactor, parse_rules

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
    assert Redactor({"age": "mask"})({"age": 3.0}) == {"age": None}  # fits a numeric mapping
    assert record["features"] == {"email": "a@b.c", "name": "Ann", "ssn": "123", "age": 3.0}


def test_hash_is_stable_per_salt_and_differs_between_salts() -> None:
    one, two = Redactor({"x": "hash"}, salt=SALT), Redactor({"x": "hash"}, salt="t" * 16)
    assert one({"x": "v"}) == one({"x": "v"})
    assert one({"x": "v"}) != two({"x": "v"})
    assert one({"x": None}) == {"x": None}


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
