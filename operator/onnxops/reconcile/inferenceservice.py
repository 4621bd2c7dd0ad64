"""InferenceService reconcile (pure): (object, ModelVersions, observed children, analysis) -> plan.

The handler lists the children by the label ``onnxops.dev/inference-service=<name>``, calls
:func:`reconcile`, and when the plan ``wants_analysis`` it measures the canary with a MetricsProvider and
calls again with the result. Drift decisions enter through :mod:`onnxops.reconcile.drift_hook`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason, now_rfc3339
from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec, ParsedInferenceService
from onnxops.api.v1alpha1.model import ParsedModel
from onnxops.api.v1alpha1.modelversion import ListedModelVersion
from onnxops.api.v1alpha1.servicerecord import ServiceRecord
from onnxops.builders import deployment as dep_builder
from onnxops.builders import hpa as hpa_builder
from onnxops.builders import httproute as httproute_builder
from onnxops.builders import labels, names
from onnxops.builders import service as svc_builder
from onnxops.settings import Settings

from . import governance, isvc_status, versions
from . import shadow as shadow_phase
from .analysis import AnalysisResult
from .control import Control
from .defaults import spec_of
from .errors import describe_error, error_status
from .rollout import (
    Outcome,
    RolloutConfig,
    RolloutState,
    advance,
    drift_investigating,
    hold_active,
    replicas_plan,
    rollback_current,
    traffic_weights,
)
from .status import append_history, status_patch


@dataclass
class IsvcPlan:
    status: dict[str, Any]  # the full desired status (None = field cleared)
    status_patch: dict[str, Any]  # what differs from the observed status (empty: write nothing)
    children: list[dict[str, Any]] = field(default_factory=list)  # Deployments, Services, HPAs to ensure
    delete: list[tuple[str, str, str]] = field(default_factory=list)  # (apiVersion, kind, name)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    reject: list[tuple[str, str]] = field(default_factory=list)  # (ModelVersion name, reason) to mark
    readmit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (ModelVersion, status patch)
    route_weights: dict[int, int] | None = None
    route_mirror: dict[str, Any] | None = None  # the HTTPRoute's RequestMirror filter (shadow phase)
    requeue_after: float | None = None
    wants_analysis: bool = False


def invalid_spec_plan(isvc: Mapping[str, Any], exc: ValidationError, now: datetime) -> IsvcPlan:
    """An InferenceService whose spec does not parse into the API's types (e.g. stored before the API
    refused what it holds): Stalled=True with reason InvalidSpec and a message naming the field and the
    problem, Ready=False unless a version is served (as any failed reconcile records it), and one Warning
    Event. No child is built, changed or deleted: the running versions keep serving until the spec is
    edited (which wakes the loop again)."""
    reason, message = describe_error(exc)
    old = dict(isvc.get("status") or {})
    new = {**error_status("InferenceService", dict(isvc), reason, message, now), "message": message}
    patch = status_patch(old, new)
    return IsvcPlan(status=new, status_patch=patch, events=[("Warning", reason, message)] if patch else [])


def version_label(obj: dict[str, Any]) -> int | None:
    v = (obj.get("metadata", {}).get("labels") or {}).get(labels.VERSION)
    return int(v) if v and v.isdigit() else None


def deployment_ready(d: dict[str, Any] | None, want: int) -> bool:
    if d is None:
        return False
    st = d.get("status") or {}
    return int(st.get("readyReplicas") or 0) >= max(1, want)


def total_replicas(spec: InferenceServiceSpec | Mapping[str, Any]) -> int:
    """The replicas of the stable version: ``autoscaling.minReplicas``, else ``replicas`` (a dict, e.g. a
    test's spec fragment, is parsed with the API's defaults)."""
    spec = spec_of(spec)
    return spec.autoscaling.min_replicas if spec.autoscaling is not None else spec.replicas


def _desired_children(
    isvc: ParsedInferenceService | Mapping[str, Any],
    state: RolloutState,
    mvs: Mapping[int, ListedModelVersion],
    settings: Settings,
    ready: dict[int, int],
    shadow_ready: bool = False,
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    isvc = ParsedInferenceService.of(isvc)
    spec = isvc.spec
    auto = spec.autoscaling
    per_version = spec.rollout is not None and spec.rollout.http_route is not None
    plan = replicas_plan(state, total_replicas(spec), ready)
    out: list[dict[str, Any]] = [svc_builder.service(isvc, settings.serving_port, settings.serving_grpc_port)]
    shadow = _shadow_children(isvc, state, mvs, settings)
    # the stable pods mirror once the shadow answers (a copy sent earlier would count as its error)
    mirror = _mirror(isvc, state, settings) if shadow and shadow_ready and not per_version else None
    out += shadow  # the shadow's Service before the stable pods that mirror to it
    for v, n in sorted(plan.items()):
        mv = mvs.get(v)
        if mv is None or mv.parsed is None:  # keep what runs: a served version vanished (deleted despite
            continue  # the finalizer) or its stored object does not parse
        out.append(
            dep_builder.deployment(
                isvc, mv.parsed, None if auto else n, settings, mirror=mirror if v == state.stable else None
            )
        )
        if auto:
            out.append(hpa_builder.hpa(isvc, v, n, auto.max_replicas, auto.target_cpu_utilization))
        if per_version:
            out.append(
                svc_builder.version_service(isvc, v, settings.serving_port, settings.serving_grpc_port)
            )
    return out, plan


def _shadow_children(
    isvc: ParsedInferenceService,
    state: RolloutState,
    mvs: Mapping[int, ListedModelVersion],
    settings: Settings,
) -> list[dict[str, Any]]:
    """The shadow phase's Service and Deployment (none outside the phase)."""
    scfg = shadow_phase.shadow_config(isvc.raw_spec)
    mv = mvs.get(state.canary) if state.canary is not None else None
    if not state.shadow or scfg is None or mv is None or mv.parsed is None or state.canary is None:
        return []
    n = shadow_phase.shadow_replicas(total_replicas(isvc.spec), float(scfg["sampleRate"]))
    return [
        svc_builder.shadow_service(isvc, state.canary, settings.serving_port, settings.serving_grpc_port),
        dep_builder.deployment(isvc, mv.parsed, n, settings, shadow=True),
    ]


def _mirror(
    isvc: ParsedInferenceService, state: RolloutState, settings: Settings
) -> tuple[str, float] | None:
    """(URL of the shadow's Service, sample rate) for the stable pods' mirror (no HTTPRoute)."""
    scfg = shadow_phase.shadow_config(isvc.raw_spec)
    if scfg is None or state.canary is None:
        return None
    md = isvc.meta
    url = (
        settings.shadow_url_template.replace("{service}", names.shadow(md.name, state.canary))
        .replace("{namespace}", md.namespace)
        .replace("{port}", str(svc_builder.SERVICE_PORT))
    )
    return url, float(scfg["sampleRate"])


def route_mirror(
    isvc: ParsedInferenceService | Mapping[str, Any], state: RolloutState
) -> dict[str, Any] | None:
    """The HTTPRoute's RequestMirror filter during a shadow phase (None: none, or removed)."""
    isvc = ParsedInferenceService.of(isvc)
    scfg = shadow_phase.shadow_config(isvc.raw_spec)
    if scfg is None or not state.shadow or state.canary is None:
        return None
    return httproute_builder.mirror_filter(isvc.meta.name, state.canary, float(scfg["sampleRate"]))


def _canary_ready(
    isvc: ParsedInferenceService,
    state: RolloutState,
    observed: list[dict[str, Any]],
    deps: dict[int | None, dict[str, Any]],
    want: int,
) -> bool:
    """The canary's (or, in its shadow phase, the shadow's) Deployment runs its pods."""
    if state.canary is None:
        return False
    scfg = shadow_phase.shadow_config(isvc.raw_spec)
    if state.shadow and scfg is not None:
        dep_name = names.shadow(isvc.meta.name, state.canary)
        deps_by_name = {d["metadata"]["name"]: d for d in observed if d.get("kind") == "Deployment"}
        dep = deps_by_name.get(dep_name)
        return deployment_ready(
            dep, shadow_phase.shadow_replicas(total_replicas(isvc.spec), float(scfg["sampleRate"]))
        )
    return deployment_ready(deps.get(state.canary), want)


def reconcile(
    isvc: ParsedInferenceService | Mapping[str, Any],
    mvs: Iterable[versions.MvLike],
    observed: list[dict[str, Any]],
    *,
    settings: Settings,
    now: datetime,
    analysis: AnalysisResult | None = None,
    model_obj: ParsedModel | Mapping[str, Any] | None = None,
) -> IsvcPlan:
    """``observed``: the Deployments, Services and HPAs labelled with this InferenceService;
    ``model_obj``: the Model (release governance), None when there is none.

    ``isvc``: parsed at the handler boundary (``ParsedInferenceService.parse``), ``mvs`` likewise
    (``versions.of_model``); dicts are parsed here."""
    isvc = ParsedInferenceService.of(isvc)
    md, spec = isvc.meta, isvc.spec
    old = dict(isvc.status)
    gen = md.generation
    model = spec.model
    mvs = versions.of_model(mvs, model)  # parsed once
    by_v = versions.by_version(mvs, model)
    gov = governance.from_model(model_obj, mvs, model)
    record = ServiceRecord.from_status(old)  # conditions, reason, history, rejections: read once
    skipped = versions.skipped_by_latest(record, by_v)
    res = versions.resolve(spec.version, model, mvs, skipped, gov)
    state = RolloutState.from_status(old)
    cfg = RolloutConfig.of(spec, isvc.raw_spec)
    deps = {version_label(d): d for d in observed if d.get("kind") == "Deployment"}
    before = replicas_plan(state, total_replicas(spec))
    canary_ready = _canary_ready(isvc, state, observed, deps, before.get(state.canary or 0, 1))
    failed = (res.version, res.reason, res.message) if res.version is not None and not res.ok else None
    previous_ready = state.previous is not None and deployment_ready(deps.get(state.previous), 1)
    out = advance(
        state,
        cfg,
        target=res.version if res.ok else None,
        target_failed=failed,
        canary_ready=canary_ready,
        analysis=analysis,
        now=now,
        generation=gen,
        investigating=previous_ready and drift_investigating(old, state.stable),
        control=Control.from_status(old),
    )
    return assemble(isvc, old, out, res, by_v, observed, settings=settings, now=now, record=record)


def _deletions(
    name: str,
    st: RolloutState,
    by_v: Mapping[int, ListedModelVersion],
    plan: dict[int, Any],
    children: list[dict[str, Any]],
    observed: list[dict[str, Any]],
) -> list[tuple[str, str, str]]:
    """The observed children to delete: those not wanted, except what a served version whose ModelVersion
    vanished still runs (never deleted by us), and those already going."""
    wanted = {(c["kind"], c["metadata"]["name"]) for c in children}
    for v in plan:
        for kind in ("Deployment", "HorizontalPodAutoscaler", "Service"):
            wanted.add((kind, names.deployment(name, v)))
    if st.shadow and st.canary is not None and st.canary not in by_v:  # vanished: keep what runs
        wanted |= {(kind, names.shadow(name, st.canary)) for kind in ("Deployment", "Service")}
    return sorted(
        {
            (o["apiVersion"], o["kind"], o["metadata"]["name"])
            for o in observed
            if (o["kind"], o["metadata"]["name"]) not in wanted
            and o["kind"] in ("Deployment", "Service", "HorizontalPodAutoscaler")
            and not o["metadata"].get("deletionTimestamp")  # already going (its pods drain): no new write
        }
    )


def _canary_message(st: RolloutState, out: Outcome, eff: int | None, total: int) -> tuple[str, str]:
    """Reason and message while a canary (or shadow) is in progress."""
    reason = Reason.ANALYSIS_INCONCLUSIVE if st.paused() else Reason.CANARY
    if st.shadow and not st.paused():
        reason = Reason.SHADOW
    reason = out.gate or reason
    message = (
        f"shadow v{st.canary}: mirrored requests only, no traffic"
        if st.shadow
        else f"canary v{st.canary} at {st.weight}% (step {int(st.step or 0) + 1})"
    )
    if eff is not None and eff != st.weight:
        message += f" ({eff}% of traffic with {total} replicas)"
    if out.gate:
        message += f", waiting for {out.waiting}"
    elif st.paused():
        last = st.last_analysis.message if st.last_analysis is not None else ""
        message += f", held: analysis inconclusive ({last})"
    elif out.waiting:
        message += f", waiting for {out.waiting}"
    return reason, message


def _phase_message(
    st: RolloutState,
    res: versions.Resolution,
    out: Outcome,
    stable_ready: bool,
    degraded: bool,
    eff: int | None,
    total: int,
    reduced: str | None,
) -> tuple[str, str, str]:
    """status.phase, reason and message, one case per state of the rollout."""
    rb = st.rollback
    if st.stable is None:
        return ("Failed" if res.reason == Reason.VERIFICATION_FAILED else "Pending"), res.reason, res.message
    if not stable_ready:
        return "Progressing", Reason.PROGRESSING, f"waiting for v{st.stable} to become Ready"
    if st.canary is not None:
        return "Progressing", *_canary_message(st, out, eff, total)
    if degraded and rb is not None:  # rollback_current: a rollback is held
        message = (
            f"rolled back v{rb.from_version} -> v{rb.to_version}: {rb.message or ''}; "
            "holds until spec changes"
        )
        return "Degraded", rb.reason or Reason.ROLLED_BACK, message
    if st.previous is not None:
        return (
            "Ready",
            Reason.BAKING,
            f"serving v{st.stable}; v{st.previous} warm until bake ends"
            + (f" (extended: waiting for {out.waiting})" if out.waiting else ""),
        )
    if reduced:
        return "Ready", Reason.CAPACITY_REDUCED, f"serving v{st.stable}, reduced: {reduced}"
    return "Ready", Reason.AVAILABLE, f"serving v{st.stable}"


def _release_blocked(
    conds: list[dict[str, Any]], res: versions.Resolution, out: Outcome, gen: int, now: datetime
) -> list[dict[str, Any]]:
    """Release governance (the Model): ReleaseBlocked is abnormal-true, present only while something
    waits; AwaitingApproval is announced once per version."""
    if not res.governed:
        return conds
    if res.blocked is None:
        return cond.remove_condition(conds, cond.RELEASE_BLOCKED)
    was = cond.find(conds, cond.RELEASE_BLOCKED)
    if res.blocked[0] == Reason.AWAITING_APPROVAL and (was or {}).get("message") != res.blocked[1]:
        out.events.append(("Normal", Reason.AWAITING_APPROVAL, res.blocked[1]))  # once per version
    return cond.set_condition(
        conds, cond.RELEASE_BLOCKED, True, res.blocked[0], res.blocked[1], generation=gen, now=now
    )


def assemble(
    isvc: ParsedInferenceService | Mapping[str, Any],
    old: dict[str, Any],
    out: Outcome,
    res: versions.Resolution,
    by_v: Mapping[int, ListedModelVersion],
    observed: list[dict[str, Any]],
    *,
    settings: Settings,
    now: datetime,
    extra_status: dict[str, Any] | None = None,
    record: ServiceRecord | None = None,
) -> IsvcPlan:
    """Children, deletions and status from a rollout outcome (shared with the drift hook). ``isvc``:
    parsed (a dict is parsed here); ``record``: ``old`` read as ``ServiceRecord`` (read here when not
    given: the hooks pass ``old`` with their new conditions)."""
    isvc = ParsedInferenceService.of(isvc)
    md, spec = isvc.meta, isvc.spec
    gen = md.generation
    name, ns = md.name, md.namespace
    st = out.state
    record = record if record is not None else ServiceRecord.from_status(old)
    total = total_replicas(spec)
    ready = isvc_status.ready_counts(observed, version_label)
    deps = {version_label(d): d for d in observed if d.get("kind") == "Deployment"}
    shadow_ready = st.shadow and _canary_ready(isvc, st, observed, deps, 1)
    children, plan = _desired_children(isvc, st, by_v, settings, ready, shadow_ready)
    delete = _deletions(name, st, by_v, plan, children, observed)
    stable_ready = st.stable is not None and deployment_ready(deps.get(st.stable), 1)
    held = hold_active(st, gen)  # the rejected version stays out while spec is unchanged
    degraded = rollback_current(st, gen)  # ... but the phase tells the story only while it is the present
    rb = st.rollback
    rb_reason = (rb.reason if rb is not None else "") or None  # a held rollback's reason
    route = spec.rollout is not None and spec.rollout.http_route is not None
    eff = isvc_status.effective_canary_weight(st, total, route)
    reduced = isvc_status.reduced_capacity(plan, ready, total) if stable_ready else None
    phase, reason, message = _phase_message(st, res, out, stable_ready, degraded, eff, total, reduced)
    reconciling = phase == "Progressing" or st.previous is not None or (phase == "Pending")
    ready_reason = Reason.AVAILABLE if phase == "Degraded" else reason
    conds = cond.summarize(
        record.conditions_as_stored(),
        ready=stable_ready,
        reason=ready_reason,
        message=message,
        reconciling=reconciling,
        stalled=(degraded and st.canary is None) or phase == "Failed",
        stalled_reason=rb_reason or reason,
        generation=gen,
        now=now,
    )
    if degraded:
        conds = cond.set_condition(
            conds,
            cond.DEGRADED,
            True,
            rb_reason or Reason.ROLLED_BACK,
            message,
            generation=gen,
            now=now,
        )
    else:
        conds = cond.remove_condition(conds, cond.DEGRADED)
    conds = _release_blocked(conds, res, out, gen, now)
    # a rollback is recorded per InferenceService (`latest` skips it here only); a rollback that still
    # holds is recorded too (restart-safe, level-triggered)
    carry = []
    if held and rb is not None:
        carry.append((rb.from_version, rb_reason or Reason.ROLLED_BACK))
    if leg := versions.legacy_rejection(record, by_v):
        carry.append(leg)
    rejected = versions.record_rejections(
        record,
        out.reject,
        spec_version=spec.version,
        generation=gen,
        at=now_rfc3339(now),
        carry=carry,
    )
    if out.gate and st.canary is not None and record.reason != out.gate:
        out.events.append(("Normal", out.gate, message))
    if out.gate and st.canary is not None:  # a person moves the canary on: abnormal-true, present meanwhile
        conds = cond.set_condition(conds, cond.PAUSED, True, out.gate, message, generation=gen, now=now)
    else:
        conds = cond.remove_condition(conds, cond.PAUSED)
    conds = isvc_status.extra_conditions(
        conds,
        state=st,
        spec=spec,
        total=total,
        reduced=reduced,
        autoscaling=spec.autoscaling is not None,
        generation=gen,
        now=now,
    )
    new: dict[str, Any] = {
        **st.to_status(),
        "rejectedVersions": rejected,
        "observedGeneration": gen,
        "phase": phase,
        "reason": reason,
        "message": message,
        "effectiveCanaryWeight": eff,
        "capacity": isvc_status.capacity(st, plan, ready, spec.autoscaling is not None) or None,
        "url": names.url(name, ns),
        "conditions": conds,
        "history": append_history(record.history_as_stored(), out.history),
        **(extra_status or {}),
    }
    if out.control_clear:  # requests consumed or stale (only then: the commands own status.control)
        new["control"] = Control.from_status(old).without(out.control_clear)
    # the ModelVersions' informative rejectedBy follows this service's own record (level-triggered)
    reject, readmit = versions.rejection_marks(name, rejected, by_v)
    return IsvcPlan(
        status=new,
        status_patch=status_patch(old, new),
        children=children,
        delete=delete,
        events=out.events,
        reject=reject,
        readmit=readmit,
        route_weights=traffic_weights(st, total) if route else None,
        route_mirror=route_mirror(isvc, st) if route else None,
        requeue_after=out.requeue_after,
        wants_analysis=out.wants_analysis,
    )


def served_versions(isvc: dict[str, Any]) -> set[int]:
    """Versions an InferenceService currently serves (from its status)."""
    st = isvc.get("status") or {}
    return {
        int(v)
        for v in (st.get("stableVersion"), st.get("canaryVersion"), st.get("previousVersion"))
        if v is not None
    }
