"""Checks a CRD schema against the rules the API server enforces for apiextensions.k8s.io/v1.

Our own implementation of the documented rules of *structural schemas* (Kubernetes docs, "Extend the
Kubernetes API with CustomResourceDefinitions", section "Specifying a structural schema") and the related
v1 validation of ``JSONSchemaProps``:

1. every node (root, each property, each additionalProperties, each items) has a non-empty ``type``, unless
   it is ``x-kubernetes-int-or-string`` or ``x-kubernetes-preserve-unknown-fields``;
2. ``anyOf``/``allOf``/``oneOf``/``not`` only in the one int-or-string form, and never carrying
   ``type``/``default``/``description``/``nullable``/``additionalProperties``;
3. ``metadata`` restricts at most ``name`` and ``generateName``;
4. no ``$ref`` (or other keys v1 refuses), ``properties`` and ``additionalProperties`` mutually exclusive,
   ``additionalProperties`` a schema (not a boolean), ``x-kubernetes-preserve-unknown-fields`` only ``true``;
5. ``x-kubernetes-list-type: map`` on arrays of objects whose ``x-kubernetes-list-map-keys`` are scalar
   properties that are required or defaulted; ``set`` on arrays of scalars;
6. every ``default`` is valid against its own schema, already pruned, and not ``null`` unless nullable;
7. every ``x-kubernetes-validations`` rule and messageExpression compiles, ``reason`` is one the API server
   allows, ``fieldPath`` names a field of the schema, and transition rules (``oldSelf``) are not under a
   list that cannot correlate items (only list-type map items correlate).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from onnxops.admission.celrules import compile_rule
from onnxops.admission.openapi import validate_schema
from onnxops.admission.prune import prune_and_default

FORBIDDEN_KEYS = frozenset(
    {
        "$ref",
        "$schema",
        "$defs",
        "id",
        "definitions",
        "patternProperties",
        "dependencies",
        "additionalItems",
        "const",
        "discriminator",
        "readOnly",
        "writeOnly",
        "examples",
        "deprecated",
    }
)
JUNCTORS = ("anyOf", "allOf", "oneOf", "not")
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
CEL_REASONS = frozenset(
    {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
)
SCALARS = frozenset({"string", "integer", "number", "boolean"})


def structural_errors(schema: Mapping[str, Any]) -> list[str]:
    """Every rule violation in an openAPIV3Schema, as ``<path>: <problem>`` lines (empty: accepted)."""
    errors: list[str] = []
    if schema.get("type") != "object":
        errors.append("<root>: type must be object")
    meta = schema.get("properties", {}).get("metadata")
    if isinstance(meta, Mapping):
        extra = set(meta.get("properties", {})) - {"name", "generateName"}
        if extra or set(meta) - {"type", "properties", "description"}:
            errors.append(f"metadata: only name and generateName may be restricted, found {sorted(extra)}")
    _node(schema, "", errors, correlatable=True)
    return errors


def preserve_unknown_paths(schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Paths of the nodes with x-kubernetes-preserve-unknown-fields (to compare with the intended ones)."""
    found = [path] if schema.get("x-kubernetes-preserve-unknown-fields") else []
    for name, sub in schema.get("properties", {}).items():
        found += preserve_unknown_paths(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), Mapping):
        found += preserve_unknown_paths(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        found += preserve_unknown_paths(schema["additionalProperties"], f"{path}{{}}")
    return found


def _node(s: Mapping[str, Any], path: str, errors: list[str], *, correlatable: bool) -> None:
    where = path or "<root>"
    for key in sorted(FORBIDDEN_KEYS & set(s)):
        errors.append(f"{where}: {key} is not allowed in a CRD schema")
    if s.get("uniqueItems") is True:
        errors.append(f"{where}: uniqueItems: true is not allowed")
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        errors.append(f"{where}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if not s.get("type") and not int_or_string and not preserve:
        errors.append(f"{where}: no type (every node of a structural schema needs one)")
    if s.get("type") and int_or_string:
        errors.append(f"{where}: x-kubernetes-int-or-string must not have a type")
    for junctor in JUNCTORS:
        if junctor in s and not (int_or_string and junctor == "anyOf" and s[junctor] == INT_OR_STRING_ANY_OF):
            errors.append(f"{where}: {junctor} is only allowed as the int-or-string anyOf [integer, string]")
    if "properties" in s and "additionalProperties" in s:
        errors.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if "additionalProperties" in s and not isinstance(s["additionalProperties"], Mapping):
        errors.append(f"{where}: additionalProperties must be a schema, not {s['additionalProperties']!r}")
    _list_type(s, where, errors)
    _default(s, where, errors)
    _rules(s, path, where, errors, correlatable=correlatable)
    for name, sub in s.get("properties", {}).items():
        _node(sub, f"{path}.{name}" if path else name, errors, correlatable=correlatable)
    if isinstance(s.get("additionalProperties"), Mapping):
        _node(s["additionalProperties"], f"{path}{{}}", errors, correlatable=correlatable)
    if isinstance(s.get("items"), Mapping):
        is_map = s.get("x-kubernetes-list-type") == "map"
        _node(s["items"], f"{path}[]", errors, correlatable=correlatable and is_map)
    elif s.get("type") == "array":
        errors.append(f"{where}: array without items")


def _list_type(s: Mapping[str, Any], where: str, errors: list[str]) -> None:
    list_type = s.get("x-kubernetes-list-type")
    keys = s.get("x-kubernetes-list-map-keys")
    if keys is not None and list_type != "map":
        errors.append(f"{where}: x-kubernetes-list-map-keys needs x-kubernetes-list-type: map")
    items: Mapping[str, Any] = s["items"] if isinstance(s.get("items"), Mapping) else {}
    if list_type == "map":
        if items.get("type") != "object":
            errors.append(f"{where}: list-type map needs object items")
        if not keys:
            errors.append(f"{where}: list-type map needs x-kubernetes-list-map-keys")
        for key in keys or []:
            prop = items.get("properties", {}).get(key)
            if prop is None:
                errors.append(f"{where}: list-map key {key!r} is not a property of the items")
            elif prop.get("type") not in SCALARS:
                errors.append(f"{where}: list-map key {key!r} must be a scalar")
            elif key not in items.get("required", []) and "default" not in prop:
                errors.append(f"{where}: list-map key {key!r} must be required or have a default")
    elif list_type == "set" and items.get("type") not in SCALARS:
        errors.append(f"{where}: list-type set needs scalar items")
    elif list_type not in (None, "atomic", "map", "set"):
        errors.append(f"{where}: unknown x-kubernetes-list-type {list_type!r}")


def _default(s: Mapping[str, Any], where: str, errors: list[str]) -> None:
    if "default" not in s:
        return
    default = s["default"]
    if default is None:
        if not s.get("nullable"):
            errors.append(f"{where}: default null on a field that is not nullable")
        return
    problems = validate_schema(s, default)
    errors += [f"{where}: default is invalid: {p}" for p in problems]
    wrapped = prune_and_default({"type": "object", "properties": {"v": s}}, {"v": default})
    if wrapped.get("v") != default:
        errors.append(f"{where}: default is not pruned/defaulted (unknown fields, or defaults missing)")


_FIELD_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]")


def _resolve_field_path(s: Mapping[str, Any], field_path: str) -> bool:
    pos, node = 0, s
    while pos < len(field_path):
        m = _FIELD_PATH.match(field_path, pos)
        if m is None:
            return False
        name, index, key = m.groups()
        if name is not None:
            if name not in node.get("properties", {}):
                return False
            node = node["properties"][name]
        elif index is not None:
            node = node.get("items", {})
        else:
            node = node.get("additionalProperties") or node.get("properties", {}).get(key) or {}
        pos = m.end()
    return bool(node)


def _rules(s: Mapping[str, Any], path: str, where: str, errors: list[str], *, correlatable: bool) -> None:
    for rule in s.get("x-kubernetes-validations", []):
        source = rule.get("rule")
        if not isinstance(source, str) or not source:
            errors.append(f"{where}: x-kubernetes-validations entry without a rule")
            continue
        try:
            program = compile_rule(source)
        except ValueError as exc:
            errors.append(f"{where}: rule does not compile: {exc}")
            continue
        if "oldSelf" in program.variables() and not correlatable:
            errors.append(f"{where}: transition rule under a list whose items cannot correlate")
        if "messageExpression" in rule:
            try:
                compile_rule(str(rule["messageExpression"]))
            except ValueError as exc:
                errors.append(f"{where}: messageExpression does not compile: {exc}")
        if not rule.get("message") and not rule.get("messageExpression"):
            errors.append(f"{where}: rule {source[:40]!r}... has no message")
        if "reason" in rule and rule["reason"] not in CEL_REASONS:
            errors.append(f"{where}: reason {rule['reason']!r} is not one of {sorted(CEL_REASONS)}")
        if "fieldPath" in rule and not _resolve_field_path(s, str(rule["fieldPath"])):
            errors.append(f"{where}: fieldPath {rule['fieldPath']!r} does not name a field of this schema")
