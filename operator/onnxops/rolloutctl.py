"""`onnxops promote | abort | pause | resume | status`: a person's control of an InferenceService rollout
(also `kubectl onnxops ...`).

What they write, and why GitOps leaves it alone: the commands write only ``status.control`` of the
InferenceService, through the status subresource (``PATCH .../status``, field manager ``onnxops-cli``).
Argo CD and Flux apply and compare what Git holds, i.e. spec and metadata; a CRD's status is neither in Git
nor part of their diff (Argo CD ignores status of custom resources, Flux's server-side apply sends no status
and the API server drops status from writes to the main resource), so a command neither shows the service
OutOfSync nor gets reverted by the next sync, and a sync never erases a pending command. The operator
acts on the request and clears it in the same status write.

Idempotent: every request names the canary version (and, for promote, the step) it is for. A second
`promote` before the operator acted finds its request pending and writes nothing; `pause` of a paused
canary, `resume` of a running one, `abort` of an aborted one write nothing. Writes carry the
``resourceVersion`` read, so a concurrent change (the operator moving to the next step) gives 409 and the
command reads again and decides again: it never promotes a step it did not see.

RBAC: the user needs ``get`` on ``inferenceservices`` and ``patch`` on ``inferenceservices/status``
(``status`` only needs ``get``/``list``/``watch``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from onnxops import API_VERSION
from onnxops.api.conditions import now_rfc3339
from onnxops.kube.client import ApiError, KubeClient, resource_path
from onnxops.reconcile.control import Control, who
from onnxops.reconcile.durations import parse_duration
from onnxops.release import CLI_MANAGER, MAX_TRIES, ReleaseError, _run, kubeconfig_user, whoami

API = API_VERSION  # the one API group constant (onnxops/__init__.py)
ISVC = "InferenceService"


# ---- pure: what to request ----------------------------------------------------------------------------


def plan_request(
    action: str, status: Mapping[str, Any], *, by: str, at: str, reason: str = "", full: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """(the status.control patch, or None when there is nothing to write; the message for the user)."""
    st = dict(status or {})
    canary, step = st.get("canaryVersion"), st.get("currentStep")
    ctl = Control.from_status(st)
    rb = st.get("rollback") or {}
    base: dict[str, Any] = {"by": by, "at": at}
    if action == "abort":
        target = canary
        if target is None and st.get("previousVersion") is not None:
            target = st.get("stableVersion")  # during the bake: roll the promoted version back
        if target is None:
            if rb.get("reason") == "AbortedByUser":
                return None, f"already aborted: v{rb.get('from')} rolled back to v{rb.get('to')}"
            return None, "no rollout in progress: nothing to abort"
        if ctl.abort and int(ctl.abort.get("version") or 0) == int(target):
            return None, f"abort of v{target} already requested{who(ctl.abort)}"
        req = {"version": int(target), **base, **({"reason": reason} if reason else {})}
        return {"abort": req}, f"abort of v{target} requested: the stable version keeps all traffic"
    if canary is None:
        return None, f"no canary in progress (serving v{st.get('stableVersion')}): nothing to {action}"
    canary = int(canary)
    if action == "promote":
        step = int(step or 0)
        pending = ctl.promote
        same = pending is not None and int(pending.get("version") or 0) == canary
        if same and pending and pending.get("step") in (None, step) and (pending.get("full") or not full):
            return None, f"promote of v{canary} step {step + 1} already requested{who(pending)}"
        req = {"version": canary, "step": step, **base, **({"full": True} if full else {})}
        what = "to stable (remaining steps skipped)" if full else f"past step {step + 1}"
        return {"promote": req}, f"promote of canary v{canary} {what} requested"
    if action == "pause":
        if ctl.pause and int(ctl.pause.get("version") or 0) == canary:
            return None, f"canary v{canary} is already paused{who(ctl.pause)}"
        req = {"version": canary, **base, **({"reason": reason} if reason else {})}
        return {"pause": req}, f"canary v{canary} paused at step {int(step or 0) + 1}"
    if action == "resume":
        if not ctl.pause:
            return None, f"canary v{canary} is not paused"
        return {"pause": None}, f"canary v{canary} resumed"
    raise ValueError(f"unknown action {action!r}")


# ---- pure: the readable view ---------------------------------------------------------------------------


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _shadow_row(
    shadow: Mapping[str, Any] | None, st: Mapping[str, Any], last: Mapping[str, Any]
) -> list[str]:
    """The shadow phase's line in the step list (spec.rollout.shadow), with its check."""
    if shadow is None:
        return []
    canary = st.get("canaryVersion")
    mark = "  >>" if canary is not None and st.get("shadow") else ("done" if canary is not None else "")
    check = ""
    if last.get("phase") == "Shadow" and last.get("version") == canary:
        check = f"   analysis {last.get('verdict')}: {last.get('message')}"
    rate = float(shadow.get("sampleRate", 1))
    return [
        f"  {mark:>4}  S. shadow {shadow.get('duration', '5m')}, {rate:.0%} of requests mirrored, "
        f"no weight{check}"
    ]


def _step_mark(st: Mapping[str, Any], i: int) -> str:
    """done / >> (current) / blank for step ``i`` in the step list."""
    canary, cur = st.get("canaryVersion"), int(st.get("currentStep") or 0)
    if canary is None:
        return " "
    if st.get("shadow"):
        return ""
    return "done" if i < cur else ("  >>" if i == cur else "")


def render(isvc: Mapping[str, Any]) -> str:
    """A readable rollout view (like `kubectl argo rollouts get rollout`): steps, weights, analysis, drift
    and live performance per version, pending commands, the last rollback and the recent history."""
    md, spec, st = isvc.get("metadata") or {}, isvc.get("spec") or {}, isvc.get("status") or {}
    r = spec.get("rollout") or {}
    steps: list[dict[str, Any]] = (
        list(r["steps"])
        if r.get("steps") is not None
        else [{"weight": 20, "pause": "30s"}, {"weight": 50, "pause": "30s"}]
    )
    canary, cur = st.get("canaryVersion"), st.get("currentStep")
    stable = st.get("stableVersion")
    lines = [
        f"Name:        {md.get('name')}  (namespace {md.get('namespace', 'default')}, "
        f"model {spec.get('model')}, spec.version {spec.get('version', 'latest')})",
        f"Status:      {st.get('phase') or 'Unknown'} / {st.get('reason') or '-'}",
        f"Message:     {st.get('message') or ''}",
        f"Stable:      v{stable}" if stable is not None else "Stable:      -",
    ]
    if canary is not None and st.get("shadow"):
        lines.append(
            f"Canary:      v{canary} in its shadow phase (mirrored requests only, no weight) since "
            f"{st.get('stepStartedAt')}"
        )
    elif canary is not None:
        eff = st.get("effectiveCanaryWeight")
        effs = f" (effective {eff}%)" if eff is not None and eff != st.get("canaryWeight") else ""
        lines.append(
            f"Canary:      v{canary} at {st.get('canaryWeight')}%{effs}, step {int(cur or 0) + 1}/"
            f"{len(steps)} since {st.get('stepStartedAt')}"
        )
    if st.get("previousVersion") is not None:
        lines.append(f"Previous:    v{st['previousVersion']} (warm until the bake ends)")
    lines.append(
        f"Strategy:    {r.get('strategy', 'Canary')}, analysis "
        + ("off" if (r.get("analysis") or {}).get("enabled") is False else "on")
    )
    lines.append("Steps:")
    last = st.get("lastAnalysis") or {}
    lines += _shadow_row(r.get("shadow"), st, last)
    for i, s in enumerate(steps):
        mark = _step_mark(st, i)
        gate = ", then waits for `onnxops promote`" if s.get("awaitPromotion") else ""
        pause = f"pause {s['pause']}" if s.get("pause") else "no pause"
        check = ""
        if last and last.get("version") == canary and last.get("step") == i and not last.get("phase"):
            check = f"   analysis {last.get('verdict')}: {last.get('message')}"
        lines.append(f"  {mark:>4} {i + 1:>2}. {s['weight']:>3}%  {pause}{gate}{check}")
    if last and (last.get("version") != canary or canary is None):
        lines.append(
            f"Analysis:    last check of v{last.get('version')} step "
            f"{int(last.get('step') or 0) + 1}: {last.get('verdict')} ({last.get('message')}) "
            f"at {last.get('at')}"
        )
    caps = st.get("capacity") or []
    if caps:
        lines.append(
            "Pods:        "
            + ", ".join(
                f"v{c['version']} {c['role']} {c.get('ready', 0)}/{c.get('desired', '?')} ready" for c in caps
            )
        )
    drift = st.get("drift") or {}
    if drift:
        per = ", ".join(f"v{v} {_fmt(x)}" for v, x in sorted((drift.get("versions") or {}).items()))
        lines.append(
            f"Drift:       {drift.get('verdict') or '-'} score {_fmt(drift.get('score'))} "
            f"(v{drift.get('version')}); per version: {per or '-'}; breaches "
            f"{drift.get('breaches') or {}}"
        )
    perf = st.get("performance") or {}
    if perf:
        per = ", ".join(
            f"v{v} {_fmt(p.get('value'))} ({p.get('labels', 0)} labels, {p.get('verdict')})"
            for v, p in sorted((perf.get("versions") or {}).items())
        )
        lines.append(
            f"Performance: {perf.get('metric')} {perf.get('verdict') or '-'}; per version: {per or '-'}"
        )
    ctl = Control.from_status(st)
    asked = [(k, r) for k in ("promote", "abort", "pause") if (r := ctl.get(k)) is not None]
    if asked:
        lines.append("Commands:    " + "; ".join(f"{k} v{r.get('version')}{who(r)}" for k, r in asked))
    rb = st.get("rollback") or {}
    if rb:
        lines.append(
            f"Rollback:    v{rb.get('from')} -> v{rb.get('to')} ({rb.get('reason')}) at "
            f"{rb.get('at')}: {rb.get('message', '')}"
        )
        if rb.get("scores"):
            lines.append(f"             scores {rb['scores']}")
    hist = (st.get("history") or [])[-5:]
    if hist:
        lines.append(
            "History:     "
            + "; ".join(
                f"{h['action']} v{h['version']} {h['at']}" + (f" ({h['reason']})" if h.get("reason") else "")
                for h in hist
            )
        )
    return "\n".join(lines)


# ---- I/O ----------------------------------------------------------------------------------------------


async def request(
    client: KubeClient,
    ns: str,
    name: str,
    action: str,
    *,
    by: str,
    reason: str = "",
    full: bool = False,
    now: datetime | None = None,
) -> str:
    for _ in range(MAX_TRIES):
        obj = await client.get(API, ISVC, ns, name)
        if obj is None:
            raise ReleaseError(f"no InferenceService {name} in namespace {ns}")
        at = now_rfc3339(now or datetime.now(UTC))
        patch, message = plan_request(action, obj.get("status") or {}, by=by, at=at, reason=reason, full=full)
        if patch is None:
            return message
        body = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": {"control": patch},
        }
        try:
            await client.request(
                "PATCH",
                resource_path(API, ISVC, ns, name, "status"),
                body=body,
                content_type="application/merge-patch+json",
                params=CLI_MANAGER,
            )
        except ApiError as e:
            if e.status == 409:
                continue
            raise
        return message
    raise ReleaseError(f"InferenceService {name} kept changing; try again")


async def show(client: KubeClient, ns: str, name: str) -> str:
    obj = await client.get(API, ISVC, ns, name)
    if obj is None:
        raise ReleaseError(f"no InferenceService {name} in namespace {ns}")
    return render(obj)


# ---- command line -------------------------------------------------------------------------------------


def _parser(action: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"onnxops {action}", description=description)
    p.add_argument("name", help="the InferenceService")
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's, else default)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    p.add_argument("--context", default=None, help="kubeconfig context")
    return p


def _command(action: str, argv: list[str], description: str) -> int:
    p = _parser(action, description)
    if action == "promote":
        p.add_argument(
            "--full", action="store_true", help="skip every remaining step: the canary becomes stable at once"
        )
    if action in ("abort", "pause"):
        p.add_argument("--reason", default="", help="why (recorded in status and the rollback)")
    args = p.parse_args(argv)

    async def work(c: KubeClient, ns: str) -> str:
        by = await whoami(c, kubeconfig_user(args.kubeconfig, args.context))
        return await request(
            c,
            ns,
            args.name,
            action,
            by=by,
            reason=getattr(args, "reason", ""),
            full=bool(getattr(args, "full", False)),
        )

    return _run(args, work)


def promote_main(argv: list[str]) -> int:
    return _command(
        "promote",
        argv,
        "Move the canary past its current step (a manual gate, a pause, a "
        "pending analysis), or with --full make it stable at once. Writes status.control.",
    )


def abort_main(argv: list[str]) -> int:
    return _command(
        "abort",
        argv,
        "Roll the canary back: the stable version keeps all traffic, the "
        "version is rejected for this service until spec changes. Writes status.control.",
    )


def pause_main(argv: list[str]) -> int:
    return _command("pause", argv, "Hold the canary at its current step until `onnxops resume`.")


def resume_main(argv: list[str]) -> int:
    return _command("resume", argv, "Let a paused canary continue.")


def status_main(argv: list[str]) -> int:
    p = _parser(
        "status",
        "A readable view of an InferenceService's rollout: steps, weights, analysis, "
        "drift and live performance per version.",
    )
    p.add_argument("-w", "--watch", action="store_true", help="print again whenever it changes (Ctrl-C)")
    p.add_argument("--interval", default="2s", help="with --watch: how often to read (default 2s)")
    p.add_argument("--watch-timeout", default=None, help="with --watch: stop after this long (e.g. 10m)")
    args = p.parse_args(argv)
    if not args.watch:
        return _run(args, lambda c, ns: show(c, ns, args.name))
    interval = max(0.2, parse_duration(args.interval, 2.0))
    stop_at = time.monotonic() + parse_duration(args.watch_timeout) if args.watch_timeout else None

    async def watch(c: KubeClient, ns: str) -> str:
        shown = None
        while stop_at is None or time.monotonic() < stop_at:
            view = await show(c, ns, args.name)
            if view != shown:
                print(("\n" if shown else "") + f"--- {now_rfc3339()}\n{view}", flush=True)
                shown = view
            await asyncio.sleep(interval)
        return "(watch ended)"

    try:
        return _run(args, watch)
    except KeyboardInterrupt:
        return 0
