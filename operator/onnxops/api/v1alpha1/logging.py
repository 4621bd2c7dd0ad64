"""InferenceService.spec.logging: capture what each served version answers, for retraining
(the row schema and file layout are in docs/data-contract.md)."""

from __future__ import annotations

from pydantic import Field

from .common import Duration, KubeModel, SecretReference

SINK_URI_PATTERN = r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S*|s3://[a-z0-9][a-z0-9.-]+/\S*)$"


class LoggingSink(KubeModel):
    """Where the Parquet files go; every serving pod of every version writes there."""

    uri: str | None = Field(
        None,
        description="pvc://<claim>/<path> (a ReadWriteMany claim: every serving pod writes) or "
        "s3://<bucket>/<prefix>. Default: <the operator's storage>/<namespace>/<service>/traffic/.",
        pattern=SINK_URI_PATTERN,
        max_length=2048,
    )
    credentials_secret: SecretReference | None = Field(
        None, description="Secret with S3 credentials for an s3:// sink (default: the operator's)."
    )


class PayloadLogging(KubeModel):
    """Payload capture: a sample of the served rows (request id, time, features, outputs) as Parquet."""

    enabled: bool = Field(True, description="Capture served rows.")
    sample_rate: float = Field(1.0, gt=0, le=1, description="Share of requests captured, 0 < r <= 1.")
    sink: LoggingSink | None = Field(None, description="Where the files go (default: the operator's store).")
    flush_interval: Duration = Field("30s", description="Longest time a captured row waits in memory.")
    max_rows_per_file: int = Field(10000, ge=1, le=1_000_000, description="Rows per Parquet file at most.")
