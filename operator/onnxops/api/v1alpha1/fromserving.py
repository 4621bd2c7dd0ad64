"""TrainingJob.spec.dataset.fromServing: train on the traffic an InferenceService captured
(``spec.logging``), joined with ground-truth labels by request id (docs/data-contract.md)."""

from __future__ import annotations

from pydantic import Field

from .common import DNS_LABEL_PATTERN, Duration, KubeModel, SecretReference

LABELS_URI_PATTERN = r"^(file://\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S+|s3://[a-z0-9][a-z0-9.-]+/\S*)$"
SINK_URI_PATTERN = r"^(file://\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S*|s3://[a-z0-9][a-z0-9.-]+/\S*)$"


class Labels(KubeModel):
    """Ground truth: files with a column ``id`` (the captured row's id) and the target column."""

    uri: str = Field(
        description="A label file, or a directory/prefix of them (*.csv, *.parquet): file://, pvc:// or s3://.",
        pattern=LABELS_URI_PATTERN,
        max_length=2048,
    )
    credentials_secret: SecretReference | None = Field(None, description="Secret with S3 credentials.")


class Mix(KubeModel):
    """Union the captured rows with the original data set (``dataset.uri``)."""

    row_share: float = Field(
        gt=0, lt=1, description="Share of the training rows drawn from dataset.uri, in (0, 1)."
    )


class FromServing(KubeModel):
    """Rows an InferenceService answered and captured, that have a label."""

    service: str = Field(
        description="InferenceService in the same namespace.", pattern=DNS_LABEL_PATTERN, max_length=253
    )
    window: Duration = Field("24h", description="Captured rows this far back from the job's start.")
    versions: list[int] | None = Field(
        None, description="Only these served versions; default: all.", max_length=64
    )
    labels: Labels = Field(description="Ground-truth labels, joined by id.")
    min_rows: int = Field(10, ge=1, description="Fewer labelled rows fail the training.")
    mix: Mix | None = Field(None, description="Also train on dataset.uri.")
    sink_uri: str | None = Field(
        None,
        description="Where the service's capture writes (its spec.logging.sink.uri). Default: the "
        "operator's storage/<namespace>/<service>/traffic/.",
        pattern=SINK_URI_PATTERN,
        max_length=2048,
    )
    credentials_secret: SecretReference | None = Field(
        None, description="Secret with S3 credentials for an s3:// sink."
    )


class ServingLineage(KubeModel):
    """What a training on captured traffic read: enough to rebuild the exact training set."""

    service: str = Field(description="InferenceService whose traffic was read.")
    sink_uri: str = Field(description="Where the captured files were read from.", max_length=2048)
    window_start: str = Field(
        description="Start of the window read.", json_schema_extra={"format": "date-time"}
    )
    window_end: str = Field(
        description="End of the window read (the job's start).", json_schema_extra={"format": "date-time"}
    )
    versions: list[int] | None = Field(None, description="Served versions read (all when absent).")
    files: int = Field(ge=0, description="Captured files read.")
    files_digest: str = Field(description="sha256 of the sorted list of files read (one path per line).")
    rows_captured: int = Field(ge=0, description="Captured rows in the window (distinct ids).")
    rows_labelled: int = Field(ge=0, description="Of those, rows with a label.")
    rows_used: int = Field(ge=0, description="Rows trained on (labelled, plus any mixed-in original rows).")
    labels_uri: str = Field(description="Label files read.", max_length=2048)
    labels_digest: str = Field(description="sha256 over the label files (sorted by path, name and bytes).")
