"""``x-kubernetes-validations``: CEL rules evaluated as the API server does, with the ``cel`` package.

- A rule runs at its node with ``self`` bound to the node's value (absent or null values are not checked).
- Values are typed by the schema: ``number`` fields are CEL doubles even when written as ``1``, null fields
  are absent (so ``has()`` is false), int-or-string stays int or string (``type(self) == int`` works).
- Transition rules (those naming ``oldSelf``) run only on update, where the old object has a value at the
  same place: object fields correlate by name, ``x-kubernetes-list-type: map`` items by their keys; items of
  other lists do not correlate. ``optionalOldSelf: true`` runs them on create too, with ``oldSelf`` null.
- ``message``, ``messageExpression``, ``reason`` and ``fieldPath`` shape the resulting cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import cel

from onnxops.admission import causes as c
from onnxops.admission.causes import Cause, join, join_map_key

_MISSING = object()


@lru_cache(maxsize=1024)
def compile_rule(source: str) -> Any:
    """The compiled program (cached); raises ValueError on a syntax error."""
    return cel.compile(source)


def iter_rules(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(schema path, rule) for every x-kubernetes-validations entry in a schema tree."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, sub in schema.get("properties", {}).items():
        yield from iter_rules(sub, join(path, name))
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from iter_rules(schema["additionalProperties"], join_map_key(path, "*"))
    if isinstance(schema.get("items"), Mapping):
        yield from iter_rules(schema["items"], f"{path}[*]")


def to_cel(schema: Mapping[str, Any], value: Any) -> Any:
    """The value as the API server hands it to CEL (typed by the schema, nulls absent)."""
    if value is None:
        return None
    if isinstance(value, dict):
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        out = {}
        for key, child in value.items():
            if child is None:
                continue
            sub = props.get(key) or (addl if isinstance(addl, Mapping) else {})
            out[key] = to_cel(sub, child)
        return out
    if isinstance(value, list):
        items: Mapping[str, Any] = schema["items"] if isinstance(schema.get("items"), Mapping) else {}
        return [to_cel(items, item) for item in value if item is not None]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def cel_causes(schema: Mapping[str, Any], obj: Any, old: Any = _MISSING) -> list[Cause]:
    """Every failed CEL rule in ``obj`` (with ``old`` for transition rules; omit it on create)."""
    out: list[Cause] = []
    _walk(schema, obj, old, "", out)
    return out


def _walk(schema: Mapping[str, Any], value: Any, old: Any, path: str, out: list[Cause]) -> None:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        cause = _check(schema, rule, value, old, path)
        if cause is not None:
            out.append(cause)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            sub = props.get(key)
            child_path = join(path, key)
            if sub is None and isinstance(addl, Mapping):
                sub, child_path = addl, join_map_key(path, str(key))
            if sub is not None:
                _walk(sub, child, old_map.get(key, _MISSING), child_path, out)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        olds = _correlate(schema, value, old)
        for i, item in enumerate(value):
            _walk(schema["items"], item, olds[i], join(path, i), out)


def _correlate(schema: Mapping[str, Any], value: list[Any], old: Any) -> list[Any]:
    """The old item each new item correlates with (list-type map: by keys), else _MISSING."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return [_MISSING] * len(value)
    keys = schema.get("x-kubernetes-list-map-keys", [])

    def ident(item: Any) -> str:
        return json.dumps({k: item.get(k) for k in keys} if isinstance(item, dict) else item, sort_keys=True)

    by_key = {ident(o): o for o in old}
    return [by_key.get(ident(v), _MISSING) for v in value]


def _check(
    schema: Mapping[str, Any], rule: Mapping[str, Any], value: Any, old: Any, path: str
) -> Cause | None:
    source = str(rule.get("rule", ""))
    field = _field_path(path, str(rule.get("fieldPath", "")))
    try:
        program = compile_rule(source)
    except ValueError as exc:
        return Cause(path, c.INTERNAL, f"rule {source!r} does not compile: {exc}")
    ctx: dict[str, Any] = {"self": to_cel(schema, value)}
    if "oldSelf" in program.variables():
        if old is _MISSING and not rule.get("optionalOldSelf"):
            return None
        ctx["oldSelf"] = None if old is _MISSING else to_cel(schema, old)
    try:
        result = program.execute(ctx)
    except Exception as exc:  # the cel package raises KeyError/TypeError/RuntimeError on evaluation errors
        return Cause(field, c.INVALID, f"Invalid value: rule {source!r} could not be evaluated: {exc!r}")
    if result is True:
        return None
    return Cause(field, str(rule.get("reason") or c.INVALID), _message(rule, ctx, source))


def _message(rule: Mapping[str, Any], ctx: dict[str, Any], source: str) -> str:
    expr = rule.get("messageExpression")
    if expr:
        try:
            text = compile_rule(str(expr)).execute(ctx)
            if isinstance(text, str) and text.strip():
                return text
        except Exception:  # fall back to the static message, as the API server does
            pass
    return str(rule.get("message") or f"failed rule: {source}")


_FIELD_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]")


def _field_path(path: str, field_path: str) -> str:
    """``path`` + a rule's ``fieldPath`` (``.a.b``, ``.a[0]``, ``.a['key']``)."""
    pos = 0
    while pos < len(field_path):
        m = _FIELD_PATH_PART.match(field_path, pos)
        if m is None:
            return path  # not a path we understand: report at the rule's node
        name, index, key = m.groups()
        path = join(path, name) if name else join(path, int(index)) if index else join_map_key(path, key)
        pos = m.end()
    return path
