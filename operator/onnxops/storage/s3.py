"""s3:// storage through boto3, configured by boto3's standard environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION), so MinIO, SeaweedFS or AWS work.

Bundle guarantee (S3 has no multi-object transaction or rename): ``metadata.json`` is the commit marker.
The data files are uploaded first, the marker last; a bundle exists once, and only once, its marker exists,
and the marker lists the sha256 of every other file (readers verify them; the server does).

- Before anything is uploaded the marker is looked up: a committed bundle is never touched (AlreadyExists).
- Data files of an attempt that crashed before its marker are not a bundle and may be replaced by the
  retry of the same run.
- The marker is written with ``If-None-Match: *`` (S3 conditional write, supported by AWS since 2024,
  MinIO, SeaweedFS and moto): of two writers racing for one bundle exactly one commits, the other gets
  AlreadyExists. A server that answers NotImplemented to the condition gets a HEAD-then-PUT instead, which
  only leaves a tiny race window between two concurrent writers of the *same* run (the operator never runs
  two at once: a Job's pods for one run are sequential).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import AlreadyExists, NotFound, StorageError
from .uri import redact

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_UNSUPPORTED = {"NotImplemented", "501"}


def client() -> Any:
    """A boto3 S3 client from the environment; path-style addressing when a custom endpoint is set."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    style = "path" if endpoint else "auto"
    cfg = Config(
        s3={"addressing_style": style},
        retries={"max_attempts": int(os.environ.get("ONNXOPS_S3_MAX_ATTEMPTS", "3")), "mode": "standard"},
        connect_timeout=float(os.environ.get("ONNXOPS_S3_CONNECT_TIMEOUT", "5")),
        read_timeout=float(os.environ.get("ONNXOPS_S3_READ_TIMEOUT", "60")),
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=cfg)


def _code(exc: Exception) -> str:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


def _wrap(exc: Exception, uri: str, action: str) -> StorageError:
    """A StorageError for a botocore failure; the message carries the error code, never a credential."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in _NOT_FOUND:
            return NotFound(f"{redact(uri)}: no such object")
        return StorageError(f"{redact(uri)}: S3 {action} failed: {code}")
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{redact(uri)}: S3 {action} failed: {type(exc).__name__}: {exc}")
    return StorageError(f"{redact(uri)}: S3 {action} failed: {exc}")


def read_s3(bucket: str, key: str, uri: str, s3: Any | None = None) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3 or client()
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    except (ClientError, BotoCoreError) as e:
        raise _wrap(e, uri, "get") from None


def exists_s3(bucket: str, key: str, uri: str, s3: Any) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if _code(e) in _NOT_FOUND:
            return False
        raise _wrap(e, uri, "head") from None
    except BotoCoreError as e:
        raise _wrap(e, uri, "head") from None


def _put_conditional(s3: Any, bucket: str, key: str, data: bytes, uri: str) -> None:
    """PUT only if absent: If-None-Match, or HEAD-then-PUT on servers without conditional writes."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return
    except ClientError as e:
        code = _code(e)
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            raise AlreadyExists(f"{uri} already exists; bundles are never overwritten") from None
        if code not in _UNSUPPORTED:
            raise _wrap(e, uri, "put") from None
    except BotoCoreError as e:
        raise _wrap(e, uri, "put") from None
    if exists_s3(bucket, key, uri, s3):
        raise AlreadyExists(f"{uri} already exists; bundles are never overwritten")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    except (ClientError, BotoCoreError) as e:
        raise _wrap(e, uri, "put") from None


def put_bundle_s3(
    bucket: str, prefix: str, base_uri: str, files: dict[str, bytes], marker: str, s3: Any | None = None
) -> None:
    """Upload ``files`` under ``prefix/``: data files first, then ``marker`` with a conditional write."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3 or client()
    prefix = prefix.strip("/")
    marker_key = f"{prefix}/{marker}"
    if exists_s3(bucket, marker_key, base_uri, s3):
        raise AlreadyExists(f"{base_uri} already exists; bundles are never overwritten")
    for name, data in files.items():
        if name == marker:
            continue
        key = f"{prefix}/{name}"
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise _wrap(e, f"s3://{bucket}/{key}", "put") from None
    _put_conditional(s3, bucket, marker_key, files[marker], base_uri)
