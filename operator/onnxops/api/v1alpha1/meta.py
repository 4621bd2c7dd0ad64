"""An object as the reconcilers and builders take it, parsed once at the handler boundary: the part of its
``metadata`` the operator reads, its typed spec, and the spec and status as stored.

``ObjectMeta`` is not a CRD model (the API server owns metadata): unknown fields are ignored, and the
defaults are those the reconcilers always applied to a metadata dict (namespace ``default``, generation 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel


class ObjectMeta(BaseModel):
    """metav1.ObjectMeta: the fields the reconcilers and builders read."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int = 1
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, v: Any) -> Any:
        return "default" if v is None else v

    @field_validator("generation", mode="before")
    @classmethod
    def _generation(cls, v: Any) -> Any:
        return v or 1  # unset (an object not yet stored, a test's bare dict): the first generation

    @field_validator("creation_timestamp", "deletion_timestamp", mode="before")
    @classmethod
    def _timestamp(cls, v: Any) -> Any:
        return None if v is None else str(v)  # the API server's RFC 3339 text (YAML may give a datetime)

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return {} if v is None else v


SpecT = TypeVar("SpecT", bound=BaseModel)


def problem_of(where: str, exc: ValidationError) -> str:
    """``spec.artifact.sha256: String should match pattern ...`` (the first error, and how many more)."""
    items = exc.errors()
    first = items[0] if items else {"loc": (), "msg": "invalid"}
    loc = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    return f"{where}{'.' + loc if loc else ''}: {first.get('msg', 'invalid')}{more}"


@dataclass(frozen=True)
class Parsed(Generic[SpecT]):
    """An object parsed once, where the handler reads it (subclasses name the spec's model in ``SPEC``).

    ``spec`` is typed (its defaults are the API's); ``raw_spec`` is the spec exactly as stored, for what
    must reproduce stored values byte for byte (a child's pod template is compared with the one that
    exists, so it must not change across operator versions); ``status`` is the stored status."""

    SPEC: ClassVar[type[BaseModel]]

    meta: ObjectMeta
    spec: SpecT
    raw_spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Self:
        """Raises pydantic's ValidationError (locations relative to ``spec``) for a spec that breaks the
        API; the caller reports it in status.conditions."""
        raw = dict(obj.get("spec") or {})
        return cls(
            ObjectMeta.model_validate(obj.get("metadata") or {}),
            cast(SpecT, cls.SPEC.model_validate(raw)),
            raw,
            dict(obj.get("status") or {}),
        )

    @classmethod
    def of(cls, obj: Self | Mapping[str, Any]) -> Self:
        """``obj`` itself when parsed, else parsed (the tests' and ``onnxops render``'s dicts)."""
        return obj if isinstance(obj, cls) else cls.parse(cast(Mapping[str, Any], obj))

    @classmethod
    def parse_or_problem(cls, obj: Self | Mapping[str, Any]) -> Self | str:
        """``obj`` parsed (itself when parsed), or why it does not parse, naming the field
        (``spec.logging.sink.uri: String should match pattern ...``); never raises."""
        try:
            return cls.of(obj)
        except ValidationError as e:
            return problem_of("metadata" if e.title == "ObjectMeta" else "spec", e)
