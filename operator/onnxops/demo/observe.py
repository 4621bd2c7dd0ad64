"""Watching the demo's objects through the API: every 0.5s the InferenceService, the ModelVersions, the
TrainingJobs and the serving Deployments are read; changes become progress lines and timeline entries, and
every drift evaluation the operator writes to ``status.drift`` is kept (the test and the summary use them)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from onnxops import API_VERSION
from onnxops.builders import labels
from onnxops.kube.client import KubeClient

API = API_VERSION
POLL_S = 0.5


def version_of(obj: dict[str, Any]) -> int | None:
    v = ((obj.get("metadata") or {}).get("labels") or {}).get(labels.VERSION)
    return int(v) if v and str(v).isdigit() else None


def drift_line(d: dict[str, Any]) -> str:
    """One evaluation as a short line: scores per version, verdict, samples."""
    scores = d.get("versions") or {}
    parts = [f"v{v} {float(s):.3f}" for v, s in sorted(scores.items(), key=lambda kv: kv[0])]
    text = ", ".join(parts) if parts else "no score"
    return (
        f"drift check: PSI {text} -> {d.get('verdict', '?')} "
        f"(v{d.get('version', '?')}: {d.get('samples', 0)} rows, "
        f"{d.get('consecutiveBreaches', 0)} breach(es) in a row)"
    )


def performance_line(p: dict[str, Any]) -> str:
    """One live-performance evaluation as a short line: the metric per version (labels), verdict."""
    per = p.get("versions") or {}
    parts = [
        f"v{v} {e['value']:.3f} ({e.get('labels', 0)} labels)"
        if e.get("value") is not None
        else f"v{v} - ({e.get('labels', 0)} labels)"
        for v, e in sorted(per.items(), key=lambda kv: int(kv[0]))
    ]
    return (
        f"live {p.get('metric', '?')}: {', '.join(parts) or 'no labels'} -> {p.get('verdict', '?')}"
        f" (action {p.get('action', 'None')})"
    )


class Observer:
    def __init__(self, client: KubeClient, namespace: str, isvc: str, say: Callable[[str], None]) -> None:
        self.client, self.ns, self.name, self.say = client, namespace, isvc, say
        self.t0 = time.time()
        self.stage = "setup"
        self.isvc: dict[str, Any] | None = None
        self.mvs: dict[str, dict[str, Any]] = {}
        self.tjs: dict[str, dict[str, Any]] = {}
        self.evaluations: list[dict[str, Any]] = []
        self.performance: list[dict[str, Any]] = []  # every status.performance evaluation seen
        self.timeline: list[dict[str, Any]] = []
        self.deployment_ready_at: dict[int, float] = {}  # version -> unix time first seen with a ready pod
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.health: Callable[[], str | None] = lambda: None  # a broken environment ends a wait early
        self._seen: dict[str, Any] = {}

    def note(self, what: str, detail: str, echo: bool = True) -> None:
        now = time.time()
        self.timeline.append(
            {"t": round(now - self.t0, 2), "at": now, "stage": self.stage, "what": what, "detail": detail}
        )
        if echo:
            self.say(detail)

    def snapshot(self, key: str) -> dict[str, Any]:
        """Keep a copy of the InferenceService's status as read now, under ``key``."""
        st = dict((self.isvc or {}).get("status") or {})
        self.snapshots[key] = {"at": time.time(), "stage": self.stage, "status": st}
        return st

    def _changed(self, key: str, value: Any) -> bool:
        if self._seen.get(key) == value:
            return False
        self._seen[key] = value
        return True

    async def poll_once(self) -> None:
        c, ns = self.client, self.ns
        self.isvc = await c.get(API, "InferenceService", ns, self.name)
        self.mvs = {m["metadata"]["name"]: m for m in await c.list(API, "ModelVersion", ns)}
        self.tjs = {t["metadata"]["name"]: t for t in await c.list(API, "TrainingJob", ns)}
        deps = await c.list("apps/v1", "Deployment", ns, label_selector={labels.INFERENCE_SERVICE: self.name})
        now = time.time()
        for d in deps:
            v = version_of(d)
            if v is not None and int((d.get("status") or {}).get("readyReplicas") or 0) >= 1:
                self.deployment_ready_at.setdefault(v, now)
        for name, tj in sorted(self.tjs.items()):
            st = tj.get("status") or {}
            if self._changed(f"tj/{name}", (st.get("phase"), st.get("modelVersion"))) and st.get("phase"):
                extra = f" -> ModelVersion {st['modelVersion']}" if st.get("modelVersion") else ""
                self.note("TrainingJob", f"TrainingJob {name}: {st.get('phase')}{extra}")
        for name, mv in sorted(self.mvs.items()):
            st = mv.get("status") or {}
            if self._changed(f"mv/{name}", (st.get("phase"), bool(st.get("rejected")))) and st.get("phase"):
                acc = (mv.get("spec") or {}).get("metrics", {}).get("accuracy")
                metric = f" (accuracy {acc:.3f})" if isinstance(acc, int | float) else ""
                rejected = f", rejected: {st.get('rejectedReason')}" if st.get("rejected") else ""
                self.note("ModelVersion", f"ModelVersion {name}: {st.get('phase')}{metric}{rejected}")
        st = (self.isvc or {}).get("status") or {}
        if self._changed("isvc/message", (st.get("phase"), st.get("message"))) and st.get("phase"):
            self.note(
                "InferenceService", f"InferenceService {self.name}: {st.get('phase')} - {st.get('message')}"
            )
        d = st.get("drift") or {}
        if d.get("evaluatedAt") and self._changed("isvc/drift", d.get("evaluatedAt")):
            self.evaluations.append(
                {
                    "t": round(now - self.t0, 2),
                    "at": now,
                    "stage": self.stage,
                    "stableVersion": st.get("stableVersion"),
                    "canaryVersion": st.get("canaryVersion"),
                    "rollback": st.get("rollback"),
                    "retrain": st.get("retrain"),
                    "drift": d,
                }
            )
            self.note("drift", drift_line(d))
        p = st.get("performance") or {}
        if p.get("evaluatedAt") and self._changed("isvc/performance", p.get("evaluatedAt")):
            self.performance.append(
                {
                    "t": round(now - self.t0, 2),
                    "at": now,
                    "stage": self.stage,
                    "stableVersion": st.get("stableVersion"),
                    "canaryVersion": st.get("canaryVersion"),
                    "retrain": st.get("retrain"),
                    "performance": p,
                }
            )
            self.note("performance", performance_line(p))
        self.changed.set()

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API may be briefly unavailable; the next poll retries
                self.note("error", f"(reading the API failed: {e})", echo=False)
            await asyncio.sleep(POLL_S)

    async def wait(self, what: str, pred: Callable[[], Any], timeout: float) -> Any:
        """Wait until ``pred()`` (evaluated after each poll) is truthy; TimeoutError names ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            problem = self.health()
            if problem:
                raise RuntimeError(f"{problem} (while waiting for {what})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 5.0))

    # ---- convenient reads ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return dict((self.isvc or {}).get("status") or {})

    def mv_phase(self, name: str) -> str | None:
        return ((self.mvs.get(name) or {}).get("status") or {}).get("phase")

    def tj_status(self, name: str) -> dict[str, Any]:
        return dict((self.tjs.get(name) or {}).get("status") or {})
