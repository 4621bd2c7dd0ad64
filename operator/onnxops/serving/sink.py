"""Where captured traffic goes: a directory (file://, pvc://) or an S3 prefix (s3://).

A sink writes whole files only, so that a reader never sees a partial one:

- local: the bytes go to a hidden temporary name in the target directory (``.<name>.tmp-<random>``, which
  no Parquet reader lists), are fsynced and then renamed onto the final name in one ``rename(2)``;
- S3: one ``PutObject`` of the finished file; an object exists only once its upload completed.

Sinks are called from the capture's writer thread, never from the request path.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from onnxops.storage import StorageError, join_uri, local_path, parse_uri, redact


class Sink(Protocol):
    uri: str

    def write(self, relpath: str, data: bytes) -> None:
        """Store ``data`` at ``<sink>/<relpath>`` atomically; raise StorageError when it cannot."""
        ...


class LocalSink:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = local_path(uri)

    def write(self, relpath: str, data: bytes) -> None:
        target = self.root / relpath
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise StorageError(
                f"{redact(join_uri(self.uri, relpath))}: cannot write: {e.strerror or e}"
            ) from None
        finally:
            if tmp.exists():
                tmp.unlink()


class S3Sink:
    def __init__(self, uri: str, client: Any | None = None) -> None:
        p = parse_uri(uri.rstrip("/") + "/_")  # a bare bucket is a valid sink
        self.uri = uri
        self.bucket, self.prefix = p.authority, p.path[:-1].strip("/")
        self._client = client

    def _s3(self) -> Any:
        if self._client is None:
            from onnxops.storage.s3 import client

            self._client = client()
        return self._client

    def write(self, relpath: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from onnxops.storage.s3 import _wrap

        key = f"{self.prefix}/{relpath}" if self.prefix else relpath
        try:
            self._s3().put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise _wrap(e, f"s3://{self.bucket}/{key}", "put") from None


def open_sink(uri: str) -> Sink:
    """The sink for ``uri``; StorageError naming the URI when the scheme cannot be written."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "s3":
        return S3Sink(uri)
    p = parse_uri(uri)
    if p.is_local:
        return LocalSink(uri)
    raise StorageError(f"{redact(uri)}: traffic can only be captured to file://, pvc:// or s3://")


def sink_root(uri: str) -> Path | None:
    """The local directory of a file:// or pvc:// sink, else None (for tests and tools)."""
    p = parse_uri(uri)
    return local_path(p) if p.is_local else None
