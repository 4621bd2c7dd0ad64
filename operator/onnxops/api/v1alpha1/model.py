"""Model: the registered model (one per model name and namespace) with its release governance.

The object's ``metadata.name`` is the model name (``spec.model`` of its ModelVersions). It carries what a
release team decides, never what the operator observes: aliases (``production`` -> a version number), the
release policy (approval required?), the approvals themselves (version, who, when, why) and the retention
of unserved versions. The operator writes only its status (and the ModelVersions' ``status.approved``,
``aliases``, ``archived``).

Trust model: whoever may write ``spec`` of this object (RBAC ``patch``/``update`` on ``models`` in the
namespace) may approve and move aliases; the chart's aggregated ``edit`` role does NOT include that
(see docs/governance.md). ``approvals[].by`` is recorded by the writer (the CLI fills it from the
Kubernetes identity it authenticates as); the operator cannot verify it and never uses it to decide.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.config import JsonValue

from .common import Condition, KubeModel, conditions_field
from .meta import Parsed
from .stored import StoredStatus

ALIAS_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_ALIASES = 32
MAX_APPROVALS = 1024

ALIAS_RULES: list[JsonValue] = [
    {
        "rule": f"self.all(k, size(k) <= 63 && k.matches('{ALIAS_PATTERN}') && k != 'latest')",
        "message": "aliases: a name must be a lowercase DNS label starting with a letter (e.g. production), "
        "at most 63 characters, and not 'latest'",
    }
]


class ReleasePolicy(KubeModel):
    """When a version may be served by ``latest`` or an alias."""

    require_approval: bool = Field(
        False,
        description="true: ``version: latest`` and aliases serve only versions listed in spec.approvals "
        "(an InferenceService pinned to a number is not affected: that number is itself a reviewed choice).",
    )


class Approval(KubeModel):
    """A recorded sign-off of one version."""

    version: int = Field(ge=1, description="The approved version number.")
    by: str = Field(
        min_length=1,
        max_length=253,
        description="Who approved (written by the approver or the CLI; informative: RBAC on this "
        "object decides who may approve).",
    )
    at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    reason: str = Field(min_length=1, max_length=1024, description="Why (a ticket, a review, a report).")


class Retention(KubeModel):
    """How many unserved versions stay servable."""

    keep_unserved: int = Field(
        ge=0,
        le=10000,
        description="Keep the newest N Ready versions that no InferenceService serves and no alias names; "
        "older ones become Archived (status.archived on the ModelVersion): never served by latest, an alias "
        "or a number. The artifacts are kept (delete the ModelVersion to drop it).",
    )


class ModelSpec(KubeModel):
    """Release governance of one model."""

    description: str | None = Field(None, max_length=4096, description="What the model is for.")
    owners: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=64, description="Owners (people or teams), informative."
    )
    aliases: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None,
        description="Alias name -> version number (e.g. production: 3). An InferenceService with "
        "version: '@production' follows it; moving it rolls the service out with its canary and analysis.",
        json_schema_extra={"maxProperties": MAX_ALIASES, "x-kubernetes-validations": ALIAS_RULES},
    )
    release_policy: ReleasePolicy | None = Field(None, description="Approval required or not.")
    approvals: list[Approval] | None = Field(
        None,
        max_length=MAX_APPROVALS,
        description="Approved versions, one entry per version. Removing an entry revokes the approval.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["version"]},
    )
    retention: Retention | None = Field(None, description="Archive old unserved versions.")


class ModelStatus(StoredStatus):
    """What the operator observed."""

    observed_generation: int | None = Field(None, ge=0, description="Generation last reconciled.")
    conditions: list[Condition] = conditions_field()
    latest_version: int | None = Field(None, description="Highest registered version.")
    approved_versions: list[int] | None = Field(
        None, description="Approved versions that exist.", max_length=MAX_APPROVALS
    )
    archived_versions: list[int] | None = Field(
        None, description="Versions archived by the retention.", max_length=10000
    )
    message: str | None = Field(None, description="Human-readable state (problems name the spec field).")


class Model(KubeModel):
    """A registered model: aliases, release policy, approvals and retention of its ModelVersions."""

    api_version: Literal["onnxops.dev/v1alpha1"] = "onnxops.dev/v1alpha1"
    kind: Literal["Model"] = "Model"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelSpec = Field(default_factory=ModelSpec)
    status: ModelStatus | None = None


class ParsedModel(Parsed[ModelSpec]):
    """A Model parsed at the handler boundary (``meta.Parsed``): release governance reads ``spec``
    (aliases, release policy, approvals, retention) typed; ``status`` is the stored status (what the new
    status is compared with), ``observed`` the same read once as ``ModelStatus`` (``ModelStatus.read``)."""

    SPEC = ModelSpec

    @cached_property
    def observed(self) -> ModelStatus:
        return ModelStatus.read(self.status)
