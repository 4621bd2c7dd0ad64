"""Exact canary weights through a user-owned Gateway API HTTPRoute.

The HTTPRoute belongs to the user; the operator only rewrites, in each rule, the backendRefs that point at
this InferenceService (the Service ``<isvc>`` or a per-version Service ``<isvc>-v<N>``): they are replaced
by one ref per served version with its weight. During a shadow phase those rules also carry a
``RequestMirror`` filter to the shadow's Service ``<isvc>-v<N>-shadow`` (the gateway copies each request and
drops the copy's answer); it is removed when the phase ends. Other backendRefs, other filters and every
other field are left alone.
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


def _our_mirror(isvc: str, f: Any) -> bool:
    if not isinstance(f, dict) or f.get("type") != "RequestMirror":
        return False
    ref = (f.get("requestMirror") or {}).get("backendRef") or {}
    return re.fullmatch(re.escape(isvc) + r"-v[0-9]+-shadow", str(ref.get("name", ""))) is not None


def mirror_filter(isvc: str, version: int, sample_rate: float, port: int = 80) -> dict[str, Any]:
    """A Gateway API ``RequestMirror`` filter to the shadow's Service. A sample below 1 is written as
    ``percent`` (Gateway API v1.2, experimental channel); at 1 the filter is the standard one."""
    mirror: dict[str, Any] = {"backendRef": {"name": names.shadow(isvc, version), "port": port}}
    if sample_rate < 1:
        mirror["percent"] = max(1, min(100, round(sample_rate * 100)))
    return {"type": "RequestMirror", "requestMirror": mirror}


def _set_mirror(rule: dict[str, Any], isvc: str, mirror: dict[str, Any] | None) -> None:
    filters = [f for f in rule.get("filters") or [] if not _our_mirror(isvc, f)]
    if mirror is not None:
        filters.append(mirror)
    if filters:
        rule["filters"] = filters
    else:
        rule.pop("filters", None)


def weighted_rules(
    route: dict[str, Any],
    isvc: str,
    weights: dict[int, int],
    port: int = 80,
    mirror: dict[str, Any] | None = None,
) -> list[Any]:
    """The route's ``spec.rules`` with our backendRefs replaced by ``{version: weight}`` refs, and our
    ``RequestMirror`` filter set to ``mirror`` (None: removed)."""
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
        _set_mirror(rule, isvc, mirror)
    return rules


def route_patch(
    route: dict[str, Any], isvc: str, weights: dict[int, int], mirror: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A merge patch for the route, or None when its weights are already right (no write).

    ``spec.rules`` is replaced whole, so the patch carries the observed ``metadata.resourceVersion`` as a
    precondition: a concurrent edit of the route makes it fail with 409 (retried on a fresh read) instead of
    being overwritten."""
    rules = weighted_rules(route, isvc, weights, mirror=mirror)
    if rules == ((route.get("spec") or {}).get("rules") or []):
        return None
    patch: dict[str, Any] = {"spec": {"rules": rules}}
    rv = (route.get("metadata") or {}).get("resourceVersion")
    if rv:
        patch["metadata"] = {"resourceVersion": str(rv)}
    return patch
