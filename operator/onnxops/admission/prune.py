"""Structural pruning and defaulting, in the order the API server applies them to custom resources.

- Fields the schema does not declare are dropped, except under ``x-kubernetes-preserve-unknown-fields``.
- ``null`` in a field that is not ``nullable`` is dropped (and its default, if any, applies).
- A missing field with a ``default`` gets it, but only where its parent object exists.
- ``metadata`` at the root belongs to the API server and is kept as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from onnxops.admission.causes import join, join_map_key

ROOT_KEYS_KEPT = ("apiVersion", "kind", "metadata")


def prune_and_default(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """A pruned, defaulted deep copy of ``obj`` (of the kind whose openAPIV3Schema is ``schema``)."""
    out = _walk(schema, copy.deepcopy(dict(obj)), root=True)
    return out if isinstance(out, dict) else {}


def unknown_fields(schema: Mapping[str, Any], obj: Any, path: str = "", *, root: bool = True) -> list[str]:
    """Paths of the fields pruning would drop (what strict field validation reports)."""
    found: list[str] = []
    if isinstance(obj, Mapping) and _is_object(schema):
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        for key, value in obj.items():
            if root and key in ROOT_KEYS_KEPT:
                continue
            if key in props:
                found += unknown_fields(props[key], value, join(path, key), root=False)
            elif isinstance(addl, Mapping):
                found += unknown_fields(addl, value, join_map_key(path, str(key)), root=False)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(join(path, str(key)))
    elif isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(obj):
            found += unknown_fields(schema["items"], item, join(path, i), root=False)
    return found


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema


def _walk(schema: Mapping[str, Any], value: Any, *, root: bool = False) -> Any:
    if isinstance(value, dict) and _is_object(schema):
        return _walk_object(schema, value, root=root)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_walk(schema["items"], item) for item in value]
    return value


def _walk_object(schema: Mapping[str, Any], value: dict[str, Any], *, root: bool) -> dict[str, Any]:
    props: Mapping[str, Any] = schema.get("properties", {})
    addl = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    out: dict[str, Any] = {}
    for key, child in value.items():
        if root and key in ROOT_KEYS_KEPT:
            out[key] = child
        elif key in props:
            if child is None and not props[key].get("nullable"):
                continue
            out[key] = _walk(props[key], child)
        elif isinstance(addl, Mapping):
            if child is None and not addl.get("nullable"):
                continue
            out[key] = _walk(addl, child)
        elif preserve:
            out[key] = child
    for key, sub in props.items():
        if key not in out and "default" in sub:
            out[key] = _walk(sub, copy.deepcopy(sub["default"]))
    return out
