"""Types shared by the three kinds: conditions, pod overrides, quantities, durations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
STORAGE_URI_PATTERN = (
    r"^(file://|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/|s3://[a-z0-9][a-z0-9.-]+/|https://)\S+$"
)
OUTPUT_URI_PATTERN = r"^(file://|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/|s3://[a-z0-9][a-z0-9.-]+/)\S*$"

# The CRDs check these patterns with a CEL rule carrying the plain message (an OpenAPI `pattern` failure
# shows the raw regular expression); see crdgen. Only fields with a maxLength are converted (CEL cost).
PATTERN_MESSAGES: dict[str, str] = {
    DURATION_PATTERN: "must be a duration such as 30s, 5m, 1h30m or 500ms",
    SHA256_PATTERN: "must be a sha256 digest: 64 lowercase hexadecimal characters",
    DNS_LABEL_PATTERN: "must be a DNS label: lowercase letters, digits and '-', starting and ending with a "
    "letter or digit",
    STORAGE_URI_PATTERN: "must be a URI starting with file://, pvc://<claim>/, s3://<bucket>/ or https://",
    OUTPUT_URI_PATTERN: "must be a URI starting with file://, pvc://<claim>/ or s3://<bucket>/",
}

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=64,
        json_schema_extra={"examples": ["30s", "5m", "1h30m"]},
    ),
]

# A Kubernetes quantity: an integer or a string like "500m" / "1Gi".
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]


class KubeModel(BaseModel):
    """Base: camelCase on the wire, unknown fields refused (the API server prunes them first)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as it is sent to the API server: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """One observation of the object's state (metav1.Condition)."""

    type: str = Field(
        description="Type of condition in CamelCase, e.g. Ready, Reconciling, Stalled.",
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9_]+$",
        max_length=316,
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field("", description="Human-readable details about the transition.", max_length=32768)
    last_transition_time: str = Field(
        description="When the condition last changed status (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation the condition was set for."
    )


CONDITIONS_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Latest observations of the object's state; Ready is the summary (kstatus).",
        max_length=16,
        json_schema_extra=CONDITIONS_EXTRA,
    )


class ResourceRequirements(KubeModel):
    """Compute resources for the container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(None, description="Minimum resources, e.g. cpu: 100m.")
    limits: dict[str, Quantity] | None = Field(None, description="Maximum resources, e.g. memory: 1Gi.")


class SecretKeySelector(KubeModel):
    """A key of a Secret in the object's namespace."""

    name: str = Field(description="Name of the Secret.", pattern=DNS_LABEL_PATTERN, max_length=253)
    key: str = Field(description="Key within the Secret.", min_length=1)


class ConfigMapKeySelector(KubeModel):
    """A key of a ConfigMap in the object's namespace."""

    name: str = Field(description="Name of the ConfigMap.", min_length=1)
    key: str = Field(description="Key within the ConfigMap.", min_length=1)


class EnvVarSource(KubeModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeySelector | None = Field(None, description="Value from a Secret key.")
    config_map_key_ref: ConfigMapKeySelector | None = Field(None, description="Value from a ConfigMap key.")


class EnvVar(KubeModel):
    """An environment variable for the container."""

    name: str = Field(description="Variable name.", pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = Field(None, description="Literal value.")
    value_from: EnvVarSource | None = Field(None, description="Value taken from a Secret or ConfigMap.")


class Toleration(KubeModel):
    """A Pod toleration."""

    key: str | None = Field(None, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value the toleration matches.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match."
    )
    toleration_seconds: int | None = Field(None, description="How long a NoExecute taint is tolerated.")


class SecretReference(KubeModel):
    """A Secret in the object's namespace holding credentials (e.g. AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); its keys become environment variables of the pod.
    The values never appear in status, events or logs."""

    name: str = Field(description="Name of the Secret.", pattern=DNS_LABEL_PATTERN, max_length=253)


class PodOverrides(KubeModel):
    """Overrides for the pods the operator creates."""

    image: str | None = Field(
        None, description="Container image; defaults to the operator's configured image."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Image pull policy."
    )
    resources: ResourceRequirements | None = Field(None, description="Container resources.")
    node_selector: dict[str, str] | None = Field(None, description="Node labels the pod must match.")
    tolerations: list[Toleration] | None = Field(None, description="Pod tolerations.", max_length=32)
    service_account_name: str | None = Field(
        None, description="ServiceAccount the pod runs as.", pattern=DNS_LABEL_PATTERN, max_length=253
    )
    env: list[EnvVar] | None = Field(None, description="Extra environment variables.", max_length=64)
