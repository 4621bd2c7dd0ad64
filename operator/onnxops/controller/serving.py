"""Reconcile-and-apply for InferenceServices (rollout, analysis, children, rejections, HTTPRoute weights)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from onnxops.api.conditions import now_rfc3339
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.builders import httproute, labels, names
from onnxops.kube import events
from onnxops.kube.apply import ensure
from onnxops.kube.client import ApiError
from onnxops.kube.protocol import KubeApi
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile import notifications, versions
from onnxops.reconcile.analysis import AnalysisResult, assess
from onnxops.reconcile.errors import owned_by
from onnxops.reconcile.remediation import DriftPlan
from onnxops.reconcile.rollout import RolloutState, parse_duration
from onnxops.reconcile.shadow import assess as assess_shadow
from onnxops.reconcile.shadow import shadow_config

from . import opmetrics
from .context import API, ISVC, MV, TJ, Context
from .indexes import CHILD_KINDS
from .metrics import DefaultMetricsProvider, ShadowMetrics

log = logging.getLogger(__name__)
ROUTE_API = "gateway.networking.k8s.io/v1"


async def observe(
    client: KubeApi, ns: str, name: str, autoscaling: bool, owner_uid: str | None
) -> list[dict[str, Any]]:
    """Our children: labelled with the InferenceService's name AND owned by its uid (an object that merely
    carries the label — a user's, or a deleted namesake's — is never patched or deleted)."""
    sel = {labels.INFERENCE_SERVICE: name}
    out: list[dict[str, Any]] = []
    for api, kind in CHILD_KINDS:
        if kind == "HorizontalPodAutoscaler" and not autoscaling:
            continue
        out += [o for o in await client.list(api, kind, ns, label_selector=sel) if owned_by(o, owner_uid)]
    return out


async def observe_children(
    ctx: Context, ns: str, name: str, autoscaling: bool, owner_uid: str | None
) -> list[dict[str, Any]]:
    """:func:`observe` from the informers' child stores (controller/indexes.py) when the operator has them;
    else the label LISTs."""
    if ctx.indexes is None:
        return await observe(ctx.client, ns, name, autoscaling, owner_uid)
    kinds = [kind for _, kind in CHILD_KINDS if autoscaling or kind != "HorizontalPodAutoscaler"]
    return [o for o in await ctx.indexes.serving_children(ns, name, kinds) if owned_by(o, owner_uid)]


def analysis_window(isvc: ParsedInferenceService) -> float:
    """The measurement window of the current canary step: its pause, at least 10 s (60 s without one)."""
    steps = isvc.spec.rollout.steps if isvc.spec.rollout is not None else []
    step = int(RolloutState.from_status(dict(isvc.status)).step or 0)
    pause = steps[step].pause if step < len(steps) else None
    return max(10.0, parse_duration(pause, 60.0))


def prometheus_url(ctx: Context, isvc: ParsedInferenceService) -> str | None:
    """``monitoring.metricsSource.prometheusUrl``, else the operator's, else None (scrape the pods)."""
    mon = isvc.spec.monitoring
    source = mon.metrics_source if mon is not None else None
    return (source.prometheus_url if source is not None else None) or ctx.settings.prometheus_url or None


async def measure(ctx: Context, isvc: ParsedInferenceService, version: int) -> AnalysisResult:
    """Measure the canary (the injected provider, else Prometheus / direct scrape) and assess the SLOs."""
    md = isvc.meta
    provider = ctx.provider
    if provider is None:
        provider = DefaultMetricsProvider(ctx.client, prometheus_url(ctx, isvc), ctx.settings.serving_port)
    stats = None
    try:
        stats = await provider.request_stats(
            namespace=md.namespace,
            service=md.name,
            model=isvc.spec.model,
            version=version,
            window_seconds=analysis_window(isvc),
        )
    except Exception as e:  # a broken source is inconclusive, never an abort
        log.warning("metrics provider failed for %s: %s", md.name, e)
    # the thresholds as the user wrote them (their numbers are quoted in the verdict's message)
    return assess(stats, (isvc.raw_spec.get("rollout") or {}).get("analysis") or {})


async def measure_shadow(ctx: Context, isvc: ParsedInferenceService) -> AnalysisResult:
    """Measure a shadow phase (the injected provider when it has ``shadow_stats``, else the stable pods'
    mirror metrics from Prometheus / a direct scrape) and assess it (reconcile/shadow.py)."""
    md, st = isvc.meta, isvc.status
    cfg = shadow_config(isvc.raw_spec) or {}
    provider: Any = ctx.provider
    if not hasattr(provider, "shadow_stats"):
        provider = ShadowMetrics(ctx.client, prometheus_url(ctx, isvc), ctx.settings.serving_port)
    stats = None
    try:
        stats = await provider.shadow_stats(
            namespace=md.namespace,
            service=md.name,
            model=isvc.spec.model,
            stable=int(st["stableVersion"]),
            shadow=int(st["canaryVersion"]),
            window_seconds=max(10.0, float(cfg.get("durationSeconds") or 60.0)),
            via_route=isvc.spec.rollout is not None and isvc.spec.rollout.http_route is not None,
        )
    except Exception as e:  # a broken source is inconclusive, never an abort
        log.warning("shadow metrics failed for %s: %s", md.name, e)
    return assess_shadow(stats, cfg)


async def apply_plan(
    ctx: Context, isvc: dict[str, Any], plan: ir.IsvcPlan, observed: list[dict[str, Any]]
) -> None:
    c = ctx.client
    md = isvc["metadata"]
    ns, name = md.get("namespace", "default"), md["name"]
    have = {(o["kind"], o["metadata"]["name"]): o for o in observed}
    # the decision first (status), then its effects: a crash in between is repaired by the next reconcile
    if plan.status_patch:
        ctx.isvc_written(ns, name)
        await c.patch_status(API, ISVC, ns, name, plan.status_patch)
        old_history = (isvc.get("status") or {}).get("history")
        opmetrics.count_decisions(ISVC, opmetrics.new_decisions(old_history, plan.status.get("history")))
    # informative only: which services rejected a version (each service's own record is its status)
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    mv_patches = [(n, versions.mark_patch(name, r, at)) for n, r in plan.reject] + list(plan.readmit)
    for mv_name, mv_patch in mv_patches:
        try:
            await c.patch_status(API, MV, ns, mv_name, mv_patch)
        except ApiError as e:
            if e.status != 404:
                raise
    for child in plan.children:
        seen = have.get((child["kind"], child["metadata"]["name"]))
        action, obj = await ensure(c, child, seen)
        if action != "unchanged" and ctx.indexes is not None:  # the next reconcile reads our own write
            ctx.indexes.written(
                {"apiVersion": child["apiVersion"], "kind": child["kind"], **obj},
                None if action == "created" else seen,
            )
    for api, kind, child_name in plan.delete:
        await c.delete(api, kind, ns, child_name)
    if plan.route_weights:
        route_name = isvc["spec"]["rollout"]["httpRoute"]["name"]
        route = await c.get(ROUTE_API, "HTTPRoute", ns, route_name)
        if route is None:
            plan.events.append(("Warning", "HTTPRouteNotFound", f"HTTPRoute {route_name} not found"))
        else:
            patch = httproute.route_patch(route, name, plan.route_weights, plan.route_mirror)
            if patch:
                await c.merge_patch(ROUTE_API, "HTTPRoute", ns, route_name, patch)
    await events.post(c, isvc, plan.events)
    if ctx.notifier is not None:  # webhooks: queued, delivered in the background
        notes = notifications.from_events(isvc, plan.events, plan.status, now_rfc3339())
        ctx.notifier.publish(ns, name, isvc, notes)
    # keep the ModelVersions' servedBy current
    before = ir.served_versions(isvc)
    after = {
        int(v)
        for v in (plan.status.get(k) for k in ("stableVersion", "canaryVersion", "previousVersion"))
        if v is not None
    }
    for v in before ^ after:
        ctx.wake(MV, ns, names.model_version(isvc["spec"]["model"], v))


async def reconcile_inference_service(ctx: Context, ns: str, name: str) -> float | None:
    c = ctx.client
    ctx.isvc_written(ns, name)  # (a check reads what this turn's reconcile read, never an older turn's)
    isvc = await c.get(API, ISVC, ns, name)
    if isvc is None or isvc["metadata"].get("deletionTimestamp"):
        return None
    isvc.setdefault("apiVersion", API)
    isvc.setdefault("kind", ISVC)
    ctx.last_read[(ISVC, ns, name)] = isvc  # handlers.isvc_checks: are any of its monitors on?
    try:  # parsed once: reconcile/ and builders/ take the typed spec
        parsed = ParsedInferenceService.parse(isvc)
    except ValidationError as e:  # nothing built, changed or deleted: the running versions keep serving
        await report_invalid_spec(c, isvc, ir.invalid_spec_plan(isvc, e, datetime.now(UTC)))
        return None
    model = parsed.spec.model
    mvs = versions.of_model(await ctx.model_versions(ns, model), model)  # parsed once
    model_obj = await ctx.model(ns, model)  # release governance; None: no policy, no aliases
    observed = await observe_children(ctx, ns, name, parsed.spec.autoscaling is not None, parsed.meta.uid)
    now = datetime.now(UTC)
    plan = ir.reconcile(parsed, mvs, observed, settings=ctx.settings, now=now, model_obj=model_obj)
    if plan.wants_analysis:  # a canary in its steps or its shadow phase, as the rollout read the status
        state = RolloutState.from_status(dict(parsed.status))
        if state.canary is None:
            raise ValueError("an analysis was asked for without status.canaryVersion")
        result = await (
            measure_shadow(ctx, parsed) if state.shadow else measure(ctx, parsed, int(state.canary))
        )
        plan = ir.reconcile(
            parsed, mvs, observed, settings=ctx.settings, now=now, analysis=result, model_obj=model_obj
        )
    await apply_plan(ctx, isvc, plan, observed)
    if not plan.status_patch:  # the stored object is still what was read: the checks need no GET
        ctx.unwritten[(ISVC, ns, name)] = isvc
    return plan.requeue_after


async def report_invalid_spec(c: KubeApi, isvc: dict[str, Any], plan: ir.IsvcPlan) -> None:
    """Write the plan of a spec that does not parse: its status and its Warning Event, nothing else (no
    child is ensured or deleted, no HTTPRoute weight or ModelVersion mark is written)."""
    md = isvc["metadata"]
    if plan.status_patch:
        await c.patch_status(API, ISVC, md.get("namespace", "default"), md["name"], plan.status_patch)
    await events.post(c, isvc, plan.events)


async def apply_drift_plan(
    ctx: Context, isvc: dict[str, Any], dp: DriftPlan, observed: list[dict[str, Any]]
) -> None:
    """Apply a drift decision's plan (from :func:`onnxops.reconcile.drift_hook.apply_decision`)."""
    if dp.retrain is not None:
        try:
            await ctx.client.create(dp.retrain)
        except ApiError as e:
            if e.status != 409:  # already created by an earlier (interrupted) evaluation
                raise
    await apply_plan(ctx, isvc, dp.plan, observed)


async def retrain_children(ctx: Context, ns: str, name: str) -> list[dict[str, Any]]:
    return await ctx.client.list(API, TJ, ns, label_selector={labels.INFERENCE_SERVICE: name})
