"""Reconcile-and-apply for Models (release governance): the Model's status, the ModelVersions' approved /
aliases / archived status, and the Model created at a model's first registration.

The Model is parsed once here (``ParsedModel.parse``) and the model's ModelVersions once
(``versions.of_model``); reconcile/governance.py takes the typed values. A Model whose spec does not parse
gets ``governance.invalid_spec_plan`` (InvalidSpec naming the field, one Warning Event) and nothing else."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from onnxops.api.conditions import now_rfc3339
from onnxops.api.v1alpha1.model import ParsedModel
from onnxops.kube import events
from onnxops.kube.client import ApiError
from onnxops.reconcile import governance as gr
from onnxops.reconcile import versions
from onnxops.reconcile.status import status_patch

from .context import API, MODEL, MV, Context

log = logging.getLogger(__name__)


async def ensure_model(ctx: Context, ns: str, model: str) -> None:
    """Create the empty Model of ``model`` when absent (existing manifests keep working; a team that writes
    its Model in Git owns it from then on: the operator never writes its spec)."""
    if await ctx.model(ns, model) is not None:  # the store's copy may lag: then the create's 409 says so
        return
    try:
        await ctx.client.create(gr.empty_model(ns, model))
        log.info("Model %s/%s created at its first registration", ns, model)
    except ApiError as e:
        if e.status != 409:  # created meanwhile (another process, the team's GitOps): fine
            raise


async def reconcile_model(ctx: Context, ns: str, name: str) -> float | None:
    c = ctx.client
    obj = await c.get(API, MODEL, ns, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None
    obj.setdefault("apiVersion", API)
    obj.setdefault("kind", MODEL)
    now = datetime.now(UTC)
    try:  # parsed once: reconcile/governance takes the typed spec
        model = ParsedModel.parse(obj)
    except ValidationError as e:  # no ModelVersion is marked: the status names the field and the problem
        plan = gr.invalid_spec_plan(obj, e, now)
    else:
        mvs = versions.of_model(await ctx.model_versions(ns, name), name)  # the informer's index
        plan = gr.plan(model, mvs, now_text=now_rfc3339(now), now=now)
    for mv_name, patch in plan.mv_patches:
        try:
            await c.patch_status(API, MV, ns, mv_name, patch)
        except ApiError as e:
            if e.status != 404:  # deleted meanwhile: its event wakes us again
                raise
    patch = status_patch(obj.get("status") or {}, plan.status)
    if patch:
        await c.patch_status(API, MODEL, ns, name, patch)
    await events.post(c, obj, plan.events)
    return None
