"""Replicas and traffic shares per served version (pure).

Without an HTTPRoute the Service spreads requests over the ready pods of every served version, so the canary's
share of traffic is its share of the pods: a step weight is only as exact as the replica count allows
(2 replicas cannot express 10 %). With an HTTPRoute the weights are exact.

Capacity never drops during a rollout (surge): the stable version keeps all its replicas until the canary's
pods are Ready, and gives up one pod for each canary pod that is Ready; after a promotion the previous
version keeps its pods until the promoted one runs all of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec, Rollout

# An effective weight within this many percentage points of the step's weight counts as exact.
WEIGHT_TOLERANCE = 1.0
MAX_REPLICAS = 1000


class _State(Protocol):
    @property
    def stable(self) -> int | None: ...
    @property
    def canary(self) -> int | None: ...
    @property
    def weight(self) -> int | None: ...
    @property
    def previous(self) -> int | None: ...


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods so that the Service's traffic follows ``weight`` percent.

    canary = max(1, round-half-up(total * w / 100)); stable = total - canary, but at least 1 while w < 100.
    """
    canary = max(1, math.floor(total * weight / 100 + 0.5))
    stable = max(0, total - canary)
    if weight < 100 and stable < 1:
        stable = 1
    return stable, canary


def replicas_plan(state: _State, total: int, ready: Mapping[int, int] | None = None) -> dict[int, int]:
    """Replicas per served version. ``ready``: the observed ready pods per version (surge: a version only
    shrinks by as many pods as its successor has Ready; without it, the final split)."""
    plan: dict[int, int] = {}
    if state.stable is None:
        return plan
    if state.canary is not None and getattr(state, "shadow", False):
        plan[state.stable] = total  # the shadow's own pods are not a served version (reconcile/shadow.py)
    elif state.canary is not None:
        stable, canary = split_replicas(total, int(state.weight or 0))
        if ready is not None:
            stable = max(stable, total - min(int(ready.get(state.canary, 0)), canary))
        plan[state.stable] = stable
        plan[state.canary] = canary
    else:
        plan[state.stable] = total
        if state.previous is not None and state.previous != state.stable:
            keep = 1
            if ready is not None:
                keep = max(1, total - int(ready.get(state.stable, 0)))
            plan[state.previous] = keep
    return plan


def traffic_weights(state: _State, total: int) -> dict[int, int]:
    """Exact weights for an HTTPRoute (percent per version)."""
    if state.stable is None:
        return {}
    if state.canary is not None and getattr(state, "shadow", False):
        return {state.stable: 100}
    if state.canary is not None:
        w = int(state.weight or 0)
        return {state.stable: 100 - w, state.canary: w}
    if state.previous is not None and state.previous != state.stable:
        share = max(1, math.floor(100 / (max(total, 1) + 1) + 0.5))
        return {state.stable: 100 - share, state.previous: share}
    return {state.stable: 100}


def effective_weight(total: int, weight: int) -> float:
    """The canary's share of traffic (percent) once the split is in place, when the Service spreads requests
    evenly over the pods (no HTTPRoute)."""
    stable, canary = split_replicas(total, weight)
    return 100.0 * canary / (stable + canary)


def exact(total: int, weight: int) -> bool:
    return abs(effective_weight(total, weight) - weight) <= WEIGHT_TOLERANCE


def replicas_for(weights: list[int], start: int = 1) -> int | None:
    """The smallest replica count >= ``start`` that expresses every weight, or None (none up to 1000)."""
    for n in range(max(1, start), MAX_REPLICAS + 1):
        if all(exact(n, w) for w in weights):
            return n
    return None


def inexact_steps(spec: InferenceServiceSpec, total: int) -> str | None:
    """A warning when ``total`` replicas cannot express the canary steps' weights (no HTTPRoute), else None.
    ``spec``: the InferenceService spec, parsed (the reconcile's, and ``onnxops validate``'s for a manifest
    that passed the schema); steps and strategy come with the API's defaults."""
    r = spec.rollout or Rollout()
    if r.http_route is not None or r.strategy != "Canary":
        return None
    weights = [s.weight for s in r.steps if s.weight < 100]
    off = [w for w in weights if not exact(total, w)]
    if not off or total < 1:
        return None
    got = ", ".join(f"{w}% -> {effective_weight(total, w):.0f}%" for w in off)
    need = replicas_for(weights, total)
    hint = f"{need} replicas would express every step" if need else "only an HTTPRoute expresses them"
    return (
        f"{total} replica(s) cannot express the canary weights without an HTTPRoute "
        f"(traffic follows pods: {got}); {hint}, or set rollout.httpRoute"
    )
