"""Storage errors. Every message names the URI; none carries a credential."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed (unreachable, denied, malformed URI, ...)."""


class NotFound(StorageError):
    """The object or file does not exist."""


class DigestMismatch(StorageError):
    """The bytes read do not have the expected sha256."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        from .uri import redact

        super().__init__(f"sha256 mismatch for {redact(uri)}: expected {expected}, got {actual}")
        self.uri = uri
        self.expected = expected
        self.actual = actual


class AlreadyExists(StorageError):
    """A bundle already exists at the destination; bundles are never overwritten."""
