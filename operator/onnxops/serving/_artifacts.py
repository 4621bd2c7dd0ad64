"""Reading artifacts through ``onnxops.storage``, with the digest checked again on the loaded bytes."""

from __future__ import annotations

import hashlib

from onnxops.storage import DigestMismatch, NotFound, StorageError, read_bytes, redact


class ArtifactError(Exception):
    """The artifact could not be read."""


class DigestError(ArtifactError):
    """The artifact's sha256 is not the expected one."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(uri: str, sha256: str) -> bytes:
    """The bytes at ``uri``, only if their sha256 equals ``sha256``; raise DigestError/ArtifactError."""
    expected = sha256.lower()
    try:
        data = read_bytes(uri, sha256=expected)
    except DigestMismatch as exc:
        raise DigestError(str(exc)) from None
    except NotFound as exc:
        raise ArtifactError(f"not found: {exc}") from None
    except StorageError as exc:
        raise ArtifactError(str(exc)) from None
    except ValueError as exc:  # a malformed URI
        raise ArtifactError(f"cannot read {redact(uri)!r}: {exc}") from None
    actual = sha256_hex(data)  # checked again on the very bytes that get loaded
    if actual != expected:
        raise DigestError(f"sha256 mismatch for {redact(uri)}: expected {expected}, got {actual}")
    return data
