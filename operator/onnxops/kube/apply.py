"""ensure(): create a child, or patch it only when the fields we want differ (the 404/409 policy).

Reconciling a converged object must write nothing, so ``observed`` (already read by the caller) is compared
with the desired object first: a desired field that the observed object carries with the same value is
left alone; fields the API server added (defaults, status) are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from onnxops.reconcile.errors import NameConflict, owner_uids

from .client import ApiError, KubeClient

log = logging.getLogger(__name__)


def contains(observed: Any, desired: Any) -> bool:
    """True when every field of ``desired`` has the same value in ``observed`` (recursively)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(contains(observed.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d) for o, d in zip(observed, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(observed, bool):
        return observed is desired
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(observed) == float(desired)
    return bool(observed == desired)


def _pick(obj: dict[str, Any], path: Sequence[str]) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def desired_patch(
    observed: dict[str, Any], desired: dict[str, Any], mutable: Sequence[Sequence[str]] | None = None
) -> dict[str, Any] | None:
    """The merge patch bringing ``observed`` to ``desired`` (None: nothing to do).

    With ``mutable`` only those paths are compared and patched (e.g. a Job's pod template is immutable).
    """
    if mutable is not None:
        patch: dict[str, Any] = {}
        for path in mutable:
            want, have = _pick(desired, path), _pick(observed, path)
            if not contains(have, want):
                cur = patch
                for p in path[:-1]:
                    cur = cur.setdefault(p, {})
                cur[path[-1]] = want
        return patch or None
    md_want = {k: v for k, v in (desired.get("metadata") or {}).items() if k in ("labels", "annotations")}
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    want = {**body, "metadata": md_want} if md_want else body
    if contains(observed, want):
        return None
    return want


async def ensure(
    client: KubeClient,
    desired: dict[str, Any],
    observed: dict[str, Any] | None = None,
    *,
    mutable: Sequence[Sequence[str]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create ``desired`` or bring the existing object to it: ("created"|"patched"|"unchanged", object).

    An existing object is patched only when it carries an ownerReference to one of ``desired``'s owners;
    otherwise (a user's object with our name) it is left untouched and :class:`NameConflict` is raised.
    """
    md = desired["metadata"]
    api, kind, ns, name = desired["apiVersion"], desired["kind"], md.get("namespace"), md["name"]
    if observed is None:
        try:
            return "created", await client.create(desired)
        except ApiError as e:
            if e.status != 409:
                raise
        observed = await client.get(api, kind, ns, name)
        if observed is None:  # deleted in between: a 409 makes the caller retry soon and create it
            raise ApiError(409, "Conflict", f"{kind} {ns}/{name} existed at create and is gone now")
    owners = owner_uids(desired)
    if owners and not owners & owner_uids(observed):
        raise NameConflict(kind, ns, name)
    patch = desired_patch(observed, desired, mutable)
    if patch is None:
        return "unchanged", observed
    log.debug("patching %s %s/%s: %s", kind, ns, name, sorted(patch))
    return "patched", await client.merge_patch(api, kind, ns, name, patch)


async def delete_if_present(
    client: KubeClient, api_version: str, kind: str, namespace: str, name: str
) -> bool:
    return await client.delete(api_version, kind, namespace, name)
