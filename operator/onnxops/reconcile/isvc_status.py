"""Pure status pieces of an InferenceService that an on-call reader needs at a glance: ready/desired pods per
served version (reduced capacity), the canary's effective traffic share, and the conditions that explain a
held step or an inexact split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec

from .state import RolloutState
from .traffic import effective_weight, inexact_steps


def ready_counts(observed: Sequence[Mapping[str, Any]], version_of: Any) -> dict[int, int]:
    """Ready pods per version, from the observed Deployments (``version_of`` reads the version label)."""
    out: dict[int, int] = {}
    for d in observed:
        if d.get("kind") != "Deployment":
            continue
        v = version_of(d)
        if v is not None:
            out[v] = int((d.get("status") or {}).get("readyReplicas") or 0)
    return out


def capacity(
    state: RolloutState, plan: Mapping[int, int], ready: Mapping[int, int], autoscaling: bool
) -> list[dict[str, Any]]:
    """One entry per served version: role, desired replicas (absent with autoscaling), ready pods."""
    roles = {state.stable: "Stable", state.canary: "Canary", state.previous: "Previous"}
    out = []
    for v in sorted(plan):
        entry: dict[str, Any] = {
            "version": v,
            "role": roles.get(v, "Previous"),
            "ready": int(ready.get(v, 0)),
        }
        if not autoscaling:
            entry["desired"] = plan[v]
        out.append(entry)
    return out


def reduced_capacity(plan: Mapping[int, int], ready: Mapping[int, int], total: int) -> str | None:
    """A message when the served versions together run fewer ready pods than the service wants
    (``total``), else None. A canary that is still starting does not count: the stable keeps its pods."""
    have = sum(min(int(ready.get(v, 0)), n) for v, n in plan.items())
    if total < 1 or have >= total:
        return None
    per = ", ".join(f"v{v} {int(ready.get(v, 0))}/{n}" for v, n in sorted(plan.items()))
    return f"{have}/{total} pods ready ({per})"


def effective_canary_weight(state: RolloutState, total: int, route: bool) -> int | None:
    """The canary's share of traffic once its pods run: exact with an HTTPRoute, else its share of pods."""
    if state.canary is None or state.weight is None:
        return None
    if state.shadow:
        return 0
    if route:
        return int(state.weight)
    return round(effective_weight(total, int(state.weight)))


def extra_conditions(
    conds: Sequence[Mapping[str, Any]],
    *,
    state: RolloutState,
    spec: InferenceServiceSpec,
    total: int,
    reduced: str | None,
    autoscaling: bool,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """AnalysisInconclusive (a held step), CapacityReduced and TrafficSplitInexact: each present only while
    true (abnormal-true polarity, as Reconciling/Stalled)."""
    out = [dict(c) for c in conds]
    last = state.last_analysis.message if state.last_analysis is not None else ""
    if state.paused():
        msg = f"canary v{state.canary} holds at step {int(state.step or 0) + 1}: {last}"
        out = cond.set_condition(
            out,
            cond.ANALYSIS_INCONCLUSIVE,
            True,
            Reason.ANALYSIS_INCONCLUSIVE,
            msg,
            generation=generation,
            now=now,
        )
    else:
        out = cond.remove_condition(out, cond.ANALYSIS_INCONCLUSIVE)
    if reduced:
        out = cond.set_condition(
            out, cond.CAPACITY_REDUCED, True, Reason.CAPACITY_REDUCED, reduced, generation=generation, now=now
        )
    else:
        out = cond.remove_condition(out, cond.CAPACITY_REDUCED)
    inexact = inexact_steps(spec, total)
    if inexact and autoscaling:
        inexact += " (with autoscaling the split follows the pods the HPAs run)"
    if inexact:
        out = cond.set_condition(
            out,
            cond.TRAFFIC_SPLIT_INEXACT,
            True,
            Reason.WEIGHT_INEXACT,
            inexact,
            generation=generation,
            now=now,
        )
    else:
        out = cond.remove_condition(out, cond.TRAFFIC_SPLIT_INEXACT)
    return out
