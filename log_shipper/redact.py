"""Per-field redaction, applied before a record leaves the process (spool, Elasticsearch, logs).

Rules name a dotted path into the record (`features.email`) and an action:
- `drop`: the key is removed;
- `mask`: a string becomes `"***"` (fixed, so the length does not leak either); any other value
  becomes null, so a masked numeric field still fits its numeric mapping;
- `hash`: the value becomes `"hmac-sha256:<hex>"`, keyed with a secret salt, so equal inputs
  can still be grouped and audited without revealing them, and a dictionary attack needs the salt.
  The hash is a string: use it on keyword / text fields (on a numeric field Elasticsearch would
  reject the document, which then lands, redacted, in the dead-letter file).

The salt comes from the caller or the `MLMON_REDACT_SALT` environment variable, never from a
file in the repository. A hash rule without a salt is a configuration error, raised at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

ACTIONS = ("drop", "mask", "hash")
MASK = "***"
SALT_ENV = "MLMON_REDACT_SALT"
RULES_ENV = "MLMON_REDACT"
MIN_SALT_BYTES = 16


class RedactionError(ValueError):
    """An unusable redaction configuration."""


def parse_rules(spec: str) -> dict[str, str]:
    """`"features.email=hash, features.name=drop"` -> {"features.email": "hash", ...}."""
    rules: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        path, sep, action = item.partition("=")
        if not sep:
            raise RedactionError(f"redaction rule {item!r} is not PATH=ACTION")
        rules[path.strip()] = action.strip()
    return rules


class Redactor:
    """Applies redaction rules to a record without mutating the caller's dict.

    >>> redactor = Redactor({"features.email": "hash", "features.name": "drop"}, salt=secret)
    >>> safe = redactor(record)
    """

    def __init__(self, rules: Mapping[str, str], *, salt: str | bytes | None = None) -> None:
        self._rules: list[tuple[tuple[str, ...], str]] = []
        for path, action in rules.items():
            if action not in ACTIONS:
                raise RedactionError(f"redaction of {path!r}: unknown action {action!r}, "
                                     f"expected one of {', '.join(ACTIONS)}")
            parts = tuple(path.split("."))
            if not path or any(not p for p in parts):
                raise RedactionError(f"redaction path {path!r} is not a dotted field path")
            self._rules.append((parts, action))
        if salt is None:
            salt = os.environ.get(SALT_ENV) or None
        self._key = salt.encode() if isinstance(salt, str) else salt
        if any(a == "hash" for _, a in self._rules):
            if not self._key:
                raise RedactionError(f"hash redaction needs a salt: set {SALT_ENV}")
            if len(self._key) < MIN_SALT_BYTES:
                raise RedactionError(f"the redaction salt must have at least {MIN_SALT_BYTES} "
                                     "bytes, or a dictionary attack on hashed values is cheap")

    @classmethod
    def from_env(cls) -> Redactor | None:
        """Rules from `MLMON_REDACT` and salt from `MLMON_REDACT_SALT`; None when no rules."""
        spec = os.environ.get(RULES_ENV, "")
        rules = parse_rules(spec)
        return cls(rules) if rules else None

    def __bool__(self) -> bool:
        return bool(self._rules)

    def hash_value(self, value: Any) -> str:
        """The salted hash a `hash` rule writes for `value`."""
        assert self._key is not None
        digest = hmac.new(self._key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of `record` with every rule applied (copies only the dicts on a rule's path)."""
        out = record
        copied: set[int] = set()
        for parts, action in self._rules:
            out = self._apply(out, parts, action, copied)
        return out

    def _apply(self, node: dict[str, Any], parts: tuple[str, ...], action: str,
               copied: set[int]) -> dict[str, Any]:
        head = parts[0]
        if head not in node:
            return node
        if id(node) not in copied:
            node = dict(node)
            copied.add(id(node))
        if len(parts) > 1:
            child = node[head]
            if isinstance(child, dict):
                node[head] = self._apply(child, parts[1:], action, copied)
            return node
        if action == "drop":
            del node[head]
        elif node[head] is not None:
            if action == "hash":
                node[head] = self.hash_value(node[head])
            else:
                node[head] = MASK if isinstance(node[head], str) else None
        return node
