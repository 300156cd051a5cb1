"""Rule groups as data, and their YAML text with a comment above every rule.

PyYAML cannot write comments, so the text is emitted here by hand: strings are JSON-quoted (JSON
strings are valid YAML) and expressions are literal blocks. `render` parses its own output back
and compares it with the data, so a quoting slip fails generation instead of shipping.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Rule:
    """A recording rule (`record`) or an alert (`alert`), with the comment saying why it exists."""

    name: str
    expr: str
    why: str
    alert: bool = False
    for_: str | None = None
    # Alerts only: how long the alert keeps firing after its condition stopped holding.
    keep_firing_for: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert" if self.alert else "record": self.name, "expr": self.expr}
        if self.for_ is not None:
            out["for"] = self.for_
        if self.keep_firing_for is not None:
            out["keep_firing_for"] = self.keep_firing_for
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Group:
    name: str
    why: str
    rules: tuple[Rule, ...]
    interval: str | None = None  # the group's own evaluation interval; None: the global one


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str, pad: str) -> list[str]:
    """`text` as comment lines of at most 100 characters (explicit line breaks kept)."""
    width = max(40, 100 - len(pad) - 2)
    lines: list[str] = []
    for paragraph in text.strip().splitlines():
        wrapped = textwrap.wrap(paragraph, width, break_long_words=False) or [""]
        lines.extend(f"{pad}# {line}".rstrip() for line in wrapped)
    return lines


def _rule_lines(rule: Rule) -> list[str]:
    pad = " " * 6
    lines = _comment(rule.why, pad)
    lines.append(f"{pad}- {'alert' if rule.alert else 'record'}: {rule.name}")
    lines.append(f"{pad}  expr: |-")
    lines.extend(f"{pad}    {line}".rstrip() for line in rule.expr.strip().splitlines())
    if rule.for_ is not None:
        lines.append(f"{pad}  for: {rule.for_}")
    if rule.keep_firing_for is not None:
        lines.append(f"{pad}  keep_firing_for: {rule.keep_firing_for}")
    for key, mapping in (("labels", rule.labels), ("annotations", rule.annotations)):
        if mapping:
            lines.append(f"{pad}  {key}:")
            lines.extend(f"{pad}    {k}: {_quote(v)}" for k, v in mapping.items())
    return lines


def render(groups: list[Group], header: str) -> str:
    """The rule file's text: a header comment, then every group and rule with its comment."""
    lines = _comment(header, "")
    lines.append("groups:")
    for group in groups:
        lines.extend(_comment(group.why, "  "))
        lines.append(f"  - name: {group.name}")
        if group.interval is not None:
            lines.append(f"    interval: {group.interval}")
        lines.append("    rules:")
        for rule in group.rules:
            lines.extend(_rule_lines(rule))
    text = "\n".join(lines) + "\n"
    expected: dict[str, list[dict[str, Any]]] = {
        "groups": [{"name": g.name, **({"interval": g.interval} if g.interval else {}),
                    "rules": [r.as_dict() for r in g.rules]} for g in groups]}
    for group_data in expected["groups"]:
        for rule_data in group_data["rules"]:
            rule_data["expr"] = rule_data["expr"].strip()
    if yaml.safe_load(text) != expected:
        raise AssertionError("rendered YAML does not parse back to the rule data")
    return text
