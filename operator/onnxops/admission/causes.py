"""The validation error type, shaped like a Kubernetes ``metav1.StatusCause``."""

from __future__ import annotations

from dataclasses import dataclass

# Cause types (metav1.CauseType values the API server uses for field errors).
INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"
NOT_SUPPORTED = "FieldValueNotSupported"
TYPE_INVALID = "FieldValueTypeInvalid"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
INTERNAL = "InternalError"
# A field the schema does not declare (the API server's strict field validation; pruned otherwise).
UNKNOWN = "FieldValueUnknown"


@dataclass(frozen=True, order=True)
class Cause:
    """One reason an object is refused.

    ``field`` is a path from the object's root: ``spec.rollout.steps[1].weight``, map keys in brackets
    (``spec.resources.limits[cpu]``), ``""`` for the object itself.
    """

    field: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.field or '<root>'}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """As a metav1.StatusCause (``reason``, ``message``, ``field``)."""
        return {"reason": self.type, "message": self.message, "field": self.field}


def join(path: str, key: str | int) -> str:
    """Child path: ``a.b``, ``a[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def join_map_key(path: str, key: str) -> str:
    """Path of a value in a map (additionalProperties): ``a.b[key]``."""
    return f"{path}[{key}]"
