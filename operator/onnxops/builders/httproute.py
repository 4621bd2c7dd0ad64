"""Exact canary weights through a user-owned Gateway API HTTPRoute.

The HTTPRoute belongs to the user; the operator only rewrites, in each rule, the backendRefs that point at
this InferenceService (the Service ``<isvc>`` or a per-version Service ``<isvc>-v<N>``): they are replaced
by one ref per served version with its weight. Other backendRefs and every other field are left alone.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import names


def _ours(isvc: str, ref: dict[str, Any]) -> bool:
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
        return False
    n = str(ref.get("name", ""))
    return n == names.service(isvc) or re.fullmatch(re.escape(isvc) + r"-v[0-9]+", n) is not None


def weighted_rules(route: dict[str, Any], isvc: str, weights: dict[int, int], port: int = 80) -> list[Any]:
    """The route's ``spec.rules`` with our backendRefs replaced by ``{version: weight}`` refs."""
    rules = copy.deepcopy((route.get("spec") or {}).get("rules") or [])
    for rule in rules:
        refs = rule.get("backendRefs") or []
        if not any(_ours(isvc, r) for r in refs):
            continue
        kept = [r for r in refs if not _ours(isvc, r)]
        ours = [
            {"name": names.version_service(isvc, v), "port": port, "weight": int(w)}
            for v, w in sorted(weights.items())
        ]
        rule["backendRefs"] = kept + ours
    return rules


def route_patch(route: dict[str, Any], isvc: str, weights: dict[int, int]) -> dict[str, Any] | None:
    """A merge patch for the route, or None when its weights are already right (no write).

    ``spec.rules`` is replaced whole, so the patch carries the observed ``metadata.resourceVersion`` as a
    precondition: a concurrent edit of the route makes it fail with 409 (retried on a fresh read) instead of
    being overwritten."""
    rules = weighted_rules(route, isvc, weights)
    if rules == ((route.get("spec") or {}).get("rules") or []):
        return None
    patch: dict[str, Any] = {"spec": {"rules": rules}}
    rv = (route.get("metadata") or {}).get("resourceVersion")
    if rv:
        patch["metadata"] = {"resourceVersion": str(rv)}
    return patch
