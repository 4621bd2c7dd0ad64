"""Admission of custom resources through `onnxops.validate`: pruning of unknown fields, defaulting, OpenAPI
schema validation and CEL rules, plus strict field validation (`?fieldValidation=Strict`, what kubectl
sends by default) that refuses unknown fields instead of pruning them."""

from __future__ import annotations

from typing import Any

from onnxops.validate import prune_and_default, unknown_fields, validate

from .errors import bad_request, invalid
from .registry import ResourceInfo

Obj = dict[str, Any]


def admit(info: ResourceInfo, obj: Obj, old: Obj | None, field_validation: str | None = None) -> Obj:
    """Return the pruned, defaulted object, or raise 400 (strict unknown fields) / 422 Invalid."""
    schema = info.schema
    if not schema:
        return obj
    if (field_validation or "").lower() == "strict":
        unknown = unknown_fields(schema, obj)
        if unknown:
            fields = ", ".join(f'unknown field "{f}"' for f in unknown)
            raise bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"strict decoding error: {fields}"
            )
    pruned = prune_and_default(schema, obj)
    causes = validate(schema, pruned, old)
    if causes:
        raise invalid(
            info.kind,
            info.group,
            obj["metadata"].get("name", ""),
            [{"reason": c.type, "message": c.message, "field": c.field} for c in causes],
        )
    return pruned
