"""The part of an object's ``metadata`` the operator reads, parsed once at the handler boundary.

Not a CRD model (the API server owns metadata): unknown fields are ignored, and the defaults are those the
reconcilers always applied to a metadata dict (namespace ``default``, generation 1).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
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
