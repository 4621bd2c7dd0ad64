"""Admission of custom resources: pruning, defaulting, schema validation and CEL rules.

The real work is `onnxops.validate` (prune_and_default, validate). Until that module is importable this
package falls back to a small built-in subset (pruning, defaults, type/required/enum/bounds and CEL rules
on `self`/`oldSelf`), so the emulator still refuses bad objects with the field named.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]


@dataclass(frozen=True)
class _Cause:
    field: str
    type: str
    message: str


def _load() -> tuple[Callable[[Schema, dict[str, Any]], dict[str, Any]], Callable[..., list[Any]]]:
    try:
        from onnxops.validate import prune_and_default, validate  # type: ignore[attr-defined]
    except ImportError:  # the validation module has not landed: use the fallback subset below
        return fallback_prune_and_default, fallback_validate
    return prune_and_default, validate


def admit(schema: Schema | None, obj: dict[str, Any], old: dict[str, Any] | None) -> tuple[
        dict[str, Any], list[dict[str, str]]]:
    """Prune and default `obj`, then validate it; returns (object, causes as metav1.StatusCause dicts)."""
    if not schema:
        return obj, []
    prune, validate = _load()
    pruned = prune(schema, obj)
    causes = validate(schema, pruned, old)
    return pruned, [{"reason": c.type, "message": c.message, "field": c.field} for c in causes]


# --- fallback subset ------------------------------------------------------------------------------------

_KEEP = {"apiVersion", "kind", "metadata"}


def fallback_prune_and_default(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    out = _prune(schema, copy.deepcopy(obj), root=True)
    return out if isinstance(out, dict) else obj


def _prune(schema: Schema, value: Any, root: bool = False) -> Any:
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key in list(value):
            if key in props:
                value[key] = _prune(props[key], value[key])
            elif isinstance(extra, dict):
                value[key] = _prune(extra, value[key])
            elif not (schema.get("x-kubernetes-preserve-unknown-fields") or (root and key in _KEEP)):
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(schema["items"], v) for v in value]
    return value


_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                       "integer": (int,), "number": (int, float), "boolean": (bool,)}


def fallback_validate(schema: Schema, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Any]:
    causes: list[_Cause] = []
    _check(schema, obj, old, "", causes, root=True)
    return causes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(schema: Schema, value: Any, old: Any, path: str, causes: list[_Cause], root: bool = False) -> None:
    kind = schema.get("type")
    if kind in _TYPES and not root and (not isinstance(value, _TYPES[kind]) or (
            kind in ("integer", "number") and isinstance(value, bool))):
        causes.append(_Cause(path, "FieldValueTypeInvalid", f"Invalid value: must be of type {kind}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        causes.append(_Cause(path, "FieldValueNotSupported",
                             f'Unsupported value: "{value}": supported values: {allowed}'))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(_Cause(path, "FieldValueInvalid",
                                 f"Invalid value: {value}: should be greater than or equal to "
                                 f"{schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(_Cause(path, "FieldValueInvalid",
                                 f"Invalid value: {value}: should be less than or equal to "
                                 f"{schema['maximum']}"))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value:
                causes.append(_Cause(_join(path, req), "FieldValueRequired", "Required value"))
        for key, sub in props.items():
            if key in value and not (root and key == "metadata"):
                sub_old = old.get(key) if isinstance(old, dict) else None
                _check(sub, value[key], sub_old, _join(path, key), causes)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            _check(schema["items"], item, None, f"{path}[{n}]", causes)
    for rule in schema.get("x-kubernetes-validations") or []:
        _rule(rule, value, old, path, causes)


def _rule(rule: dict[str, Any], value: Any, old: Any, path: str, causes: list[_Cause]) -> None:
    import cel

    expr = rule["rule"]
    if "oldSelf" in expr and old is None:
        return
    try:
        ok = cel.evaluate(expr, {"self": value, "oldSelf": old})
    except Exception as exc:  # a rule that cannot be evaluated refuses the object, as the server does
        causes.append(_Cause(path, "InternalError", f"Internal error: {exc}"))
        return
    if ok is not True:
        field = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
        causes.append(_Cause(field, "FieldValueInvalid",
                             f"Invalid value: {rule.get('message') or 'failed rule: ' + expr}"))
