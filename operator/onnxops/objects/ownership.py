"""ownerReferences: who owns a child, and the error for a child name taken by an object we do not own."""

from __future__ import annotations

from typing import Any


class NameConflict(Exception):
    """A child's name is taken by an object we do not own: it is left untouched."""

    def __init__(self, kind: str, namespace: str | None, name: str) -> None:
        super().__init__(
            f"{kind} {namespace}/{name} already exists and is not owned by this object; "
            "it is left untouched: rename or delete it"
        )
        self.kind, self.namespace, self.name = kind, namespace, name


def owner_uids(obj: dict[str, Any] | None) -> set[str]:
    """The uids in ``obj``'s ownerReferences."""
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return {str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")}


def owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    """True when ``obj`` has an ownerReference to ``uid`` (a None uid owns nothing)."""
    return uid is not None and uid in owner_uids(obj)
