"""kopf registrations: thin. Each object gets a daemon that reconciles it when woken (its own events, its
children's events) or when a time-based step is due; everything else is in training.py / serving.py.

Run with ``onnxops operator`` (see main.py) or ``kopf run -m onnxops.controller.handlers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.builders import labels
from onnxops.kube import events
from onnxops.kube.client import ApiError, KubeClient
from onnxops.reconcile.analysis import load_provider
from onnxops.reconcile.errors import describe_error, error_status
from onnxops.reconcile.status import status_patch
from onnxops.settings import Settings

from . import capture as capture_loop
from . import drift as drift_loop
from . import lognoise, opmetrics
from .context import API, GROUP, ISVC, MODEL, MV, TJ, VERSION, Context
from .governance import reconcile_model
from .indexes import Indexes
from .lazy import drift_modules
from .notify import Notifier
from .serving import reconcile_inference_service
from .training import model_version_deletion_blocked, reconcile_model_version, reconcile_training_job

log = logging.getLogger("onnxops.operator")
IDLE_SECONDS = 300.0  # a safety re-check of a quiet object (reads only; a converged object writes nothing)
MAX_BACKOFF = 60.0
Reconciler = Callable[[Context, str, str], Awaitable[float | None]]
StartupHook = Callable[[Context], None]
# Called with the Context once the operator has started: a process embedding the operator (a test harness,
# a benchmark) keeps it to read the request counters or the indexes; the operator keeps no global Context.
_startup_hooks: list[StartupHook] = []
# The namespaces the operator watches (set by `onnxops operator`; empty: $ONNXOPS_WATCH_NAMESPACES, else all).
WATCH_NAMESPACES: list[str] = []


def on_startup(hook: StartupHook) -> Callable[[], None]:
    """Call ``hook(context)`` when the operator starts (after the client, notifier and indexes exist);
    returns the function that unregisters it."""
    _startup_hooks.append(hook)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _startup_hooks.remove(hook)

    return remove


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else $KUBECONFIG (read at login time, not at import)."""
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return kopf.login_with_kubeconfig(**kwargs)
    return dataclasses.replace(info, server=in_cluster_server(info.server))


def in_cluster_server(default: str, env: Mapping[str, str] | None = None) -> str:
    """The API server's address as client-go's in-cluster config takes it: KUBERNETES_SERVICE_HOST and
    KUBERNETES_SERVICE_PORT (kopf always uses https://kubernetes.default.svc, which needs cluster DNS)."""
    e = os.environ if env is None else env
    host, port = e.get("KUBERNETES_SERVICE_HOST"), e.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return default
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our status schemas prune unknown fields: keep kopf's bookkeeping in annotations, not status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = labels.FINALIZER
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    lognoise.install()  # a blocked deletion's retries: logged (and posted) once per change, not every 5 s
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    client = KubeClient.auto()  # Context.client is the KubeApi protocol; the informers stream with this one
    memo.ctx = Context(client, Settings.from_env(), load_provider())
    memo.ctx.loop = asyncio.get_running_loop()
    memo.ctx.notifier = Notifier(client, memo.ctx.settings)
    namespaces = WATCH_NAMESPACES or list(memo.ctx.settings.watch_namespaces)
    memo.ctx.indexes = Indexes(client, namespaces, wake=memo.ctx.wake)
    memo.ctx.indexes.start()
    for hook in list(_startup_hooks):
        hook(memo.ctx)
    # numpy/scipy (the drift package) are not loaded here: controller/lazy.py, at a service's first check


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx = getattr(memo, "ctx", None)
    if ctx is not None:
        await ctx.stops.close()
        if ctx.indexes is not None:
            await ctx.indexes.stop()
        if ctx.notifier is not None:  # bounded: what is still retrying is given up
            await ctx.notifier.close(timeout=3.0)
        await ctx.client.close()


# API answers that are the object's (or our permissions') fault, not a transient outage: worth a condition.
REPORTED_API_ERRORS = frozenset({400, 403, 422})


async def report_error(ctx: Context, kind: str, ns: str, name: str, exc: BaseException) -> None:
    """Best effort: record the failure as Stalled (and Ready=False unless still serving); never raises."""
    try:
        obj = await ctx.client.get(API, kind, ns, name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        reason, message = describe_error(exc)
        old = obj.get("status") or {}
        patch = status_patch(old, error_status(kind, obj, reason, message))
        if patch:  # a new or changed error: the condition, and one Warning event
            await ctx.client.patch_status(API, kind, ns, name, patch)
            await events.post(
                ctx.client, {"apiVersion": API, "kind": kind, **obj}, [("Warning", reason, message)]
            )
    except asyncio.CancelledError:
        raise
    except Exception as e:  # reporting must never take the loop down
        log.warning("%s %s/%s: could not record the error in status: %s", kind, ns, name, e)


async def run_loop(
    kind: str,
    fn: Reconciler,
    ctx: Context,
    ns: str,
    name: str,
    stopped: kopf.DaemonStopped,
    extra: Callable[[Context, str, str], Awaitable[float | None]] | None = None,
) -> None:
    """Level-triggered loop: reconcile, then sleep until woken or the requested re-check time."""
    key = (kind, ns, name)
    ev = ctx.waker(key)
    ctx.stops.add(key, stopped, ev)  # a raised stop flag sets ev at the next sweep (context.StopWatch)
    backoff = 1.0
    delay = 0.0
    opmetrics.OBJECTS.labels(kind=kind).inc()
    try:
        while not stopped:
            if delay > 0:
                await ev.wait(delay)
                if stopped:
                    break
            ev.clear()
            async with ctx.lock(key):
                started = time.monotonic()
                try:
                    async with ctx.slots:  # bounded: see context.MAX_CONCURRENT_RECONCILES
                        requeue = await fn(ctx, ns, name)
                    if extra is not None:
                        more = await extra(ctx, ns, name)
                        requeue = (
                            more if requeue is None else (requeue if more is None else min(requeue, more))
                        )
                    backoff = 1.0
                    opmetrics.observe_reconcile(kind, opmetrics.SUCCESS, time.monotonic() - started)
                except ApiError as e:
                    conflict = e.status == 409
                    result = opmetrics.CONFLICT if conflict else opmetrics.ERROR
                    opmetrics.observe_reconcile(kind, result, time.monotonic() - started, e)
                    if conflict:
                        requeue = 0.5
                    else:
                        log.warning("%s %s/%s: API error %s; retrying in %.0fs", kind, ns, name, e, backoff)
                        if e.status in REPORTED_API_ERRORS:
                            await report_error(ctx, kind, ns, name, e)
                        requeue, backoff = backoff, min(MAX_BACKOFF, backoff * 2)
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as e:
                    opmetrics.observe_reconcile(kind, opmetrics.ERROR, time.monotonic() - started, e)
                    log.exception("%s %s/%s: reconcile failed; retrying in %.0fs", kind, ns, name, backoff)
                    await report_error(ctx, kind, ns, name, e)
                    requeue, backoff = backoff, min(MAX_BACKOFF, backoff * 2)
            delay = requeue if requeue is not None else IDLE_SECONDS
    finally:
        opmetrics.OBJECTS.labels(kind=kind).dec()
        ctx.forget(key)


# ---- one daemon per object ------------------------------------------------------------------------------
@kopf.daemon(GROUP, VERSION, "trainingjobs", cancellation_timeout=5.0)
async def training_job_daemon(
    namespace: str | None, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    await run_loop(TJ, reconcile_training_job, memo.ctx, namespace or "", name, stopped)


@kopf.daemon(GROUP, VERSION, "modelversions", cancellation_timeout=5.0)
async def model_version_daemon(
    namespace: str | None, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    await run_loop(MV, reconcile_model_version, memo.ctx, namespace or "", name, stopped)


@kopf.daemon(GROUP, VERSION, "inferenceservices", cancellation_timeout=5.0)
async def inference_service_daemon(
    namespace: str | None, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    await run_loop(
        ISVC,
        reconcile_inference_service,
        memo.ctx,
        namespace or "",
        name,
        stopped,
        extra=isvc_checks,
    )


def monitors_off(isvc: dict[str, Any], typed: ParsedInferenceService | None = None) -> bool:
    """True when the service has no drift, performance or capture monitoring on and no CaptureHealthy
    condition left to remove: then the checks below have nothing to do (each would re-read the object).
    ``typed``: ``isvc`` parsed (parsed here when not given)."""
    from onnxops.api.v1alpha1.servicerecord import ServiceRecord
    from onnxops.reconcile import capture_health as ch

    from .drift import drift_due
    from .performance import performance_due

    now = datetime.now(UTC)
    typed = typed if typed is not None else ParsedInferenceService.parse(isvc)
    return (
        drift_due(typed, now) is None
        and performance_due(typed, now) is None
        and ch.check_interval(typed) is None
        and ServiceRecord.from_status(typed.status).condition(ch.CAPTURE_HEALTHY) is None
    )


async def isvc_checks(ctx: Context, ns: str, name: str) -> float | None:
    """The InferenceService's periodic checks after its reconcile: drift, then the capture sink's health;
    the sooner of their next times. Skipped (no request) when the object the reconcile just read has no
    monitoring on: its spec is this turn's, and only these checks set the CaptureHealthy condition. A spec
    that does not parse is not checked either (its reconcile reported it; nothing acts on it). While no
    status write has followed the reconcile's read, the checks read that object instead of a GET each
    (``Context.read_isvc``): a converged service with monitoring on costs one GET per turn, not four."""
    try:
        read = ctx.last_read.pop((ISVC, ns, name), None)
        if read is not None:
            typed = drift_loop.parsed(read)
            if typed is None or monitors_off(read, typed):
                return None
        await drift_modules()  # the checks import the drift package (numpy/scipy): off the loop, once
        waits = [
            await drift_loop.evaluate_if_due(ctx, ns, name),
            await capture_loop.check_capture_if_due(ctx, ns, name),
        ]
        due = [w for w in waits if w is not None]
        return min(due) if due else None
    finally:  # the reconcile's read serves this turn's checks only (ctx.read_isvc)
        ctx.isvc_written(ns, name)


@kopf.daemon(GROUP, VERSION, "models", cancellation_timeout=5.0)
async def model_daemon(
    namespace: str | None, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    await run_loop(MODEL, reconcile_model, memo.ctx, namespace or "", name, stopped)


# ---- wake-ups -------------------------------------------------------------------------------------------
# async: kopf runs a sync handler in its thread pool, a thread hop per watch event for a dict lookup.
# A ModelVersion's change wakes its Model and the InferenceServices of its model, and an InferenceService's
# change of served versions wakes those ModelVersions: from the informers' listeners (controller/indexes.py),
# after the index they read has the change.
@kopf.on.event(GROUP, VERSION, "trainingjobs")
async def training_job_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.wake(TJ, namespace or "", name)


@kopf.on.event(GROUP, VERSION, "inferenceservices")
async def inference_service_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.wake(ISVC, namespace or "", name)


@kopf.on.event(GROUP, VERSION, "modelversions")
async def model_version_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.wake(MV, namespace or "", name)  # its Model: from the index's listener (controller/indexes.py)


@kopf.on.event(GROUP, VERSION, "models")
async def model_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A Model changed (an approval, an alias, the policy): its status follows; its services resolve again
    (a new target is rolled out with the usual canary and analysis), woken by the Model informer's listener
    (controller/indexes.py) once the store they read has the change."""
    memo.ctx.wake(MODEL, namespace or "", name)


@kopf.on.event("batch", "v1", "jobs", labels={labels.MANAGED_BY: labels.MANAGED_BY_VALUE})
@kopf.on.event("v1", "pods", labels={labels.MANAGED_BY: labels.MANAGED_BY_VALUE})
async def job_event(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    from onnxops.builders.labels import LABEL_EVALUATION, MODEL_VERSION, TRAINING_JOB

    if LABEL_EVALUATION in labels:  # a label-file evaluation Job (or its pod) of an InferenceService
        memo.ctx.wake(ISVC, namespace or "", labels[LABEL_EVALUATION])
    if TRAINING_JOB in labels:
        memo.ctx.wake(TJ, namespace or "", labels[TRAINING_JOB])
    if MODEL_VERSION in labels:
        memo.ctx.wake(MV, namespace or "", labels[MODEL_VERSION])


# Every kind of child an InferenceService owns wakes it (created, changed by someone else, deleted), so a
# deleted or hand-edited child is repaired within seconds rather than at the idle re-check: from the child
# informers' listener (controller/indexes.py), after the child store the reconcile reads has the change.


# ---- deletion guard -------------------------------------------------------------------------------------
@kopf.on.delete(GROUP, VERSION, "modelversions")
async def model_version_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    reason = await model_version_deletion_blocked(memo.ctx, dict(body))
    if reason:
        raise kopf.TemporaryError(f"deletion waits: {reason}", delay=5)
