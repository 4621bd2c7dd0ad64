"""OpenAPI v3 validation of an object against a structural CRD schema, with API-server-like causes.

Covers what our schemas use: type (with ``nullable`` and ``x-kubernetes-int-or-string``), required, enum,
pattern, format date-time, minimum/maximum (with OpenAPI 3.0 boolean exclusive bounds), minLength/maxLength,
minItems/maxItems, maxProperties, list-type map/set uniqueness. ``x-kubernetes-validations`` (CEL) are
evaluated separately (``onnxops.admission.celrules``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from onnxops.admission import causes as c
from onnxops.admission.causes import Cause, join, join_map_key

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _show(value: Any) -> str:
    """A value as the API server quotes it in messages."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name in ("object", "array", "string", "integer", "number"):
        if isinstance(value, _PY_TYPES[name]):
            return name
    return type(value).__name__


def has_type(schema_type: str, value: Any) -> bool:
    if isinstance(value, bool):
        return schema_type == "boolean"
    return isinstance(value, _PY_TYPES.get(schema_type, ()))


def validate_schema(schema: Mapping[str, Any], value: Any, path: str = "") -> list[Cause]:
    """Every OpenAPI violation of ``value`` (at ``path``) against ``schema``."""
    if value is None:
        if schema.get("nullable"):
            return []
        expected = schema.get("type") or (
            "integer or string" if schema.get("x-kubernetes-int-or-string") else None
        )
        if expected is None:  # preserve-unknown-fields without a type
            return []
        return [Cause(path, c.TYPE_INVALID, f"Invalid value: null: must be of type {expected}")]
    if schema.get("x-kubernetes-int-or-string"):
        if not (has_type("integer", value) or has_type("string", value)):
            msg = f"Invalid value: {_show(value)}: must be an integer or a string, not {type_name(value)}"
            return [Cause(path, c.TYPE_INVALID, msg)]
        return _scalar(schema, value, path)
    expected = schema.get("type")
    if expected and not has_type(expected, value):
        return [
            Cause(
                path,
                c.TYPE_INVALID,
                f"Invalid value: {_show(value)}: must be of type {expected}, not {type_name(value)}",
            )
        ]
    if isinstance(value, dict):
        return _object(schema, value, path)
    if isinstance(value, list):
        return _array(schema, value, path)
    return _scalar(schema, value, path)


def _scalar(schema: Mapping[str, Any], value: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(json.dumps(e) for e in enum)
        msg = f"Unsupported value: {_show(value)}: supported values: {supported}"
        out.append(Cause(path, c.NOT_SUPPORTED, msg))
    if isinstance(value, str):
        out += _string(schema, value, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out += _number(schema, value, path)
    return out


def _string(schema: Mapping[str, Any], value: str, path: str) -> list[Cause]:
    out: list[Cause] = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(Cause(path, c.TOO_LONG, f"Too long: may not be longer than {schema['maxLength']}"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        msg = f"Invalid value: {_show(value)}: should be at least {schema['minLength']} chars long"
        out.append(Cause(path, c.INVALID, msg))
    pattern = schema.get("pattern")
    if pattern and not _regex(pattern).search(value):
        out.append(Cause(path, c.INVALID, f"Invalid value: {_show(value)}: should match '{pattern}'"))
    if schema.get("format") == "date-time" and not _is_datetime(value):
        out.append(Cause(path, c.INVALID, f"Invalid value: {_show(value)}: must be an RFC 3339 date-time"))
    return out


def _is_datetime(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _number(schema: Mapping[str, Any], value: float, path: str) -> list[Cause]:
    out: list[Cause] = []
    if "minimum" in schema:
        lo = schema["minimum"]
        if schema.get("exclusiveMinimum") is True and not value > lo:
            out.append(Cause(path, c.INVALID, f"Invalid value: {_show(value)}: should be greater than {lo}"))
        elif value < lo:
            out.append(
                Cause(
                    path, c.INVALID, f"Invalid value: {_show(value)}: should be greater than or equal to {lo}"
                )
            )
    if "maximum" in schema:
        hi = schema["maximum"]
        if schema.get("exclusiveMaximum") is True and not value < hi:
            out.append(Cause(path, c.INVALID, f"Invalid value: {_show(value)}: should be less than {hi}"))
        elif value > hi:
            out.append(
                Cause(path, c.INVALID, f"Invalid value: {_show(value)}: should be less than or equal to {hi}")
            )
    return out


def _object(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    for name in schema.get("required", []):
        if name not in value or (
            value[name] is None and not schema.get("properties", {}).get(name, {}).get("nullable")
        ):
            out.append(Cause(join(path, name), c.REQUIRED, "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append(Cause(path, c.TOO_MANY, f"Too many: must have at most {schema['maxProperties']} items"))
    props: Mapping[str, Any] = schema.get("properties", {})
    addl = schema.get("additionalProperties")
    for key, child in value.items():
        if key in props:
            if key in schema.get("required", []) and child is None and not props[key].get("nullable"):
                continue  # already reported as required
            out += validate_schema(props[key], child, join(path, key))
        elif isinstance(addl, Mapping):
            out += validate_schema(addl, child, join_map_key(path, str(key)))
    return out


def _array(schema: Mapping[str, Any], value: list[Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        msg = f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
        out.append(Cause(path, c.TOO_MANY, msg))
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(
            Cause(
                path,
                c.INVALID,
                f"Invalid value: {len(value)}: should have at least {schema['minItems']} items",
            )
        )
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            out += validate_schema(items, item, join(path, i))
    out += _list_uniqueness(schema, value, path)
    return out


def _list_uniqueness(schema: Mapping[str, Any], value: list[Any], path: str) -> list[Cause]:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type not in ("map", "set"):
        return []
    keys: list[str] = schema.get("x-kubernetes-list-map-keys", [])
    seen: set[str] = set()
    out: list[Cause] = []
    for i, item in enumerate(value):
        if list_type == "map":
            if not isinstance(item, dict):
                continue
            ident = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
        else:
            ident = json.dumps(item, sort_keys=True)
        if ident in seen:
            out.append(Cause(join(path, i), c.DUPLICATE, f"Duplicate value: {ident}"))
        seen.add(ident)
    return out
