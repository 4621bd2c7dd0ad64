"""ensure(): create a child, or bring it back to exactly what the operator wants (the 404/409 policy).

Reconciling a converged object must write nothing, so ``observed`` (already read by the caller) is compared
with the desired object first: a desired field that the observed object carries with the same value is
left alone; fields the API server added (defaults, status) are ignored.

A child that drifted is repaired in two steps:

1. fields that another field manager *added* to its spec (``kubectl set resources``, a patch adding
   ``nodeSelector``/``paused``/a sidecar, ...), read from ``metadata.managedFields``, are removed with a
   merge patch that carries the observed resourceVersion (a concurrent change is a 409, retried);
   metadata (labels, annotations), an autoscaler's replica count and a Service's addresses are left alone;
2. when a field the operator sets has another value, the whole desired object is server-side applied as
   field manager ``onnxops`` with ``force=true`` (taking those fields back from whoever changed them).

A Job's pod template is immutable: its few mutable fields are merge-patched instead (``mutable``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from onnxops.objects.compare import contains as contains  # re-exported: moved to onnxops.objects
from onnxops.objects.compare import merge_diff
from onnxops.objects.fields import Path, foreign_additions, without
from onnxops.objects.ownership import NameConflict, owner_uids

from .client import FIELD_MANAGER, ApiError
from .protocol import KubeApi

log = logging.getLogger(__name__)


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


_APPLIED_META = ("name", "namespace", "labels", "annotations", "ownerReferences")


def apply_body(desired: dict[str, Any]) -> dict[str, Any]:
    """What the operator server-side applies: the desired object without status, with only the
    metadata it sets."""
    md = desired.get("metadata") or {}
    body = {k: v for k, v in desired.items() if k not in ("status", "metadata")}
    body["metadata"] = {k: md[k] for k in _APPLIED_META if k in md}
    return body


# Removals that did not take (the server put the same value back as a default): not retried for the same
# object and the same fields, so that such a child costs no request at rest. Bounded; a memo, not state.
_UNREMOVABLE: OrderedDict[tuple[str, frozenset[Path]], None] = OrderedDict()
_UNREMOVABLE_MAX = 1024


def _remember_unremovable(key: tuple[str, frozenset[Path]]) -> None:
    _UNREMOVABLE[key] = None
    _UNREMOVABLE.move_to_end(key)
    while len(_UNREMOVABLE) > _UNREMOVABLE_MAX:
        _UNREMOVABLE.popitem(last=False)


async def remove_foreign(
    client: KubeApi, observed: dict[str, Any], desired: dict[str, Any]
) -> dict[str, Any] | None:
    """Remove the spec fields other managers added (step 1 above); the updated object, or None when
    there is nothing to remove."""
    extra = foreign_additions(observed, desired, FIELD_MANAGER)
    key = (str((observed.get("metadata") or {}).get("uid")), frozenset(extra))
    if not extra or key in _UNREMOVABLE:
        return None
    md = observed["metadata"]
    log.info(
        "%s %s/%s: removing fields other managers added: %s",
        observed.get("kind"),
        md.get("namespace"),
        md.get("name"),
        ", ".join(display(p) for p in extra),
    )
    patch = {
        "metadata": {"resourceVersion": md["resourceVersion"]},
        "spec": merge_diff(observed.get("spec"), without(observed, extra).get("spec") or {}),
    }
    updated = await client.merge_patch(
        observed["apiVersion"], observed["kind"], md.get("namespace"), md["name"], patch
    )
    if foreign_additions(updated, desired, FIELD_MANAGER) == extra:
        _remember_unremovable(key)
    return updated


def display(path: Path) -> str:
    return "".join("." + seg[2:] if seg.startswith("f:") else f"[{seg[2:]}]" for seg in path)


async def ensure(
    client: KubeApi,
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
    if mutable is not None:
        patch = desired_patch(observed, desired, mutable)
        if patch is None:
            return "unchanged", observed
        log.debug("patching %s %s/%s: %s", kind, ns, name, sorted(patch))
        return "patched", await client.merge_patch(api, kind, ns, name, patch)
    action = "unchanged"
    cleaned = await remove_foreign(client, observed, desired)
    if cleaned is not None:
        action, observed = "patched", cleaned
    if desired_patch(observed, desired) is not None:
        log.debug("applying %s %s/%s", kind, ns, name)
        action, observed = "patched", await client.apply(apply_body(desired))
    return action, observed
