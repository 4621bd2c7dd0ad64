"""Moved to :mod:`onnxops.objects.fields` (pure, shared with the API emulator); re-exported here."""

from onnxops.objects.fields import (
    MISSING,
    TOLERATED,
    Path,
    delete,
    foreign_additions,
    from_fields_v1,
    owned,
    resolve,
    to_fields_v1,
    without,
)

__all__ = [
    "MISSING",
    "TOLERATED",
    "Path",
    "delete",
    "foreign_additions",
    "from_fields_v1",
    "owned",
    "resolve",
    "to_fields_v1",
    "without",
]
