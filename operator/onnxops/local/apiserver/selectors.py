"""Label and field selectors (the subset of the real grammar that clients use)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def split_terms(selector: str) -> list[str]:
    """Split on the commas that are not inside a parenthesised value set."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in (t.strip() for t in terms) if t]


def _label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    m = _SET_RE.match(term)
    if m:
        key, op, raw = m.group(1), m.group(2), m.group(3)
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    m = _EQ_RE.match(term)
    if m:
        key, op, value = m.group(1), m.group(2), m.group(3)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    m = _EXISTS_RE.match(term)
    if m:
        negate, key = m.group(1) == "!", m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: invalid label selector term {term!r}")


def label_matcher(selector: str | None) -> Matcher:
    """A predicate on whole objects for a labelSelector string; an empty selector matches everything."""
    if not selector:
        return lambda obj: True
    checks = [_label_term(t) for t in split_terms(selector)]

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path (absent fields read as the empty string)."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_matcher(selector: str | None) -> Matcher:
    """A predicate for a fieldSelector string (`=`, `==`, `!=` on any dotted path)."""
    if not selector:
        return lambda obj: True
    checks: list[tuple[str, bool, str]] = []
    for term in split_terms(selector):
        m = _EQ_RE.match(term)
        if not m:
            raise bad_request(f"invalid field selector: {term!r}")
        checks.append((m.group(1), m.group(2) == "!=", m.group(3)))

    def match(obj: Mapping[str, Any]) -> bool:
        return all(
            (field_value(obj, path) != value) if negate else (field_value(obj, path) == value)
            for path, negate, value in checks
        )

    return match


def both(label_selector: str | None, field_selector: str | None) -> Matcher:
    by_label, by_field = label_matcher(label_selector), field_matcher(field_selector)
    return lambda obj: by_label(obj) and by_field(obj)
