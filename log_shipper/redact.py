"""Per-field redaction, applied before a record leaves the process (spool, Elasticsearch, logs).

Rules name a field of the record (docs/design.md section 4) and an action. The path is resolved
against the record's structure, not split on every dot: `features.<name>` and `flags.<name>` are
the feature `<name>` exactly (a feature may be called `contact.email`), `prediction.scores.<class>`
one class's score, and the fixed fields are `@timestamp`, `event.id`, `service.name`, ... A rule
that can match no field of the record (a typo such as `feature.email`), or, when the profile is
given, a feature or class the profile does not have, is refused at start-up: a redaction that
silently does nothing is a leak. Actions:
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlmon.exporter.profile import Profile

ACTIONS = ("drop", "mask", "hash")
MASK = "***"
SALT_ENV = "MLMON_REDACT_SALT"
RULES_ENV = "MLMON_REDACT"
MIN_SALT_BYTES = 16

# The record's fixed structure (docs/design.md section 4): whole top-level fields, the fixed
# leaves of its objects, and the maps keyed by a feature name or a class.
_TOP_LEVEL = ("@timestamp", "event", "service", "model", "features", "prediction", "flags",
              "flagged", "unknown_features")
_LEAVES = {"event": ("id", "kind", "dataset", "duration"),
           "service": ("name", "environment"),
           "model": ("name", "version"),
           "prediction": ("value", "label", "invalid", "scores")}
_BY_FEATURE = ("features", "flags")
_SCORES = "prediction.scores."


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


def resolve_path(path: str, profile: Profile | None = None) -> tuple[str, ...]:
    """The keys a rule's path names in the record: `features.contact.email` ->
    ("features", "contact.email"). Raises `RedactionError` when it names no field."""
    if path in _TOP_LEVEL:
        return (path,)
    head, _, rest = path.partition(".")
    if head in _BY_FEATURE and rest:
        if profile is not None and rest not in {f.name for f in profile.features}:
            known = ", ".join(f.name for f in profile.features)
            raise RedactionError(f"redaction rule {path!r}: the profile has no feature {rest!r} "
                                 f"(features: {known})")
        return (head, rest)
    if path.startswith(_SCORES) and len(path) > len(_SCORES):
        cls = path[len(_SCORES):]
        if profile is not None and cls not in _classes(profile):
            classes = _classes(profile)
            raise RedactionError(f"redaction rule {path!r}: the profile's prediction has no "
                                 f"class {cls!r} (classes: {', '.join(classes) or 'none'})")
        return ("prediction", "scores", cls)
    if rest in _LEAVES.get(head, ()):
        return (head, rest)
    raise RedactionError(
        f"redaction rule {path!r} matches no field of the record: use features.<feature>, "
        f"flags.<feature>, prediction.scores.<class>, prediction.value/label/invalid, "
        f"event.id/duration, service.name/environment, model.name/version or a top-level "
        f"field ({', '.join(_TOP_LEVEL)})")


def _classes(profile: Profile) -> tuple[str, ...]:
    return tuple(getattr(profile.prediction, "classes", None) or ())


class Redactor:
    """Applies redaction rules to a record without mutating the caller's dict.

    >>> redactor = Redactor({"features.email": "hash", "features.name": "drop"}, salt=secret,
    ...                     profile=profile)   # the profile: also refuse unknown features
    >>> safe = redactor(record)
    """

    def __init__(self, rules: Mapping[str, str], *, salt: str | bytes | None = None,
                 profile: Profile | None = None) -> None:
        self.rules = dict(rules)
        self._rules: list[tuple[tuple[str, ...], str]] = []
        for path, action in rules.items():
            if action not in ACTIONS:
                raise RedactionError(f"redaction of {path!r}: unknown action {action!r}, "
                                     f"expected one of {', '.join(ACTIONS)}")
            self._rules.append((resolve_path(path, profile), action))
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
    def from_env(cls, profile: Profile | None = None) -> Redactor | None:
        """Rules from `MLMON_REDACT` and salt from `MLMON_REDACT_SALT`; None when no rules."""
        spec = os.environ.get(RULES_ENV, "")
        rules = parse_rules(spec)
        return cls(rules, profile=profile) if rules else None

    def check(self, profile: Profile) -> None:
        """Raise `RedactionError` when a rule names a feature or class `profile` lacks."""
        for path in self.rules:
            resolve_path(path, profile)

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
