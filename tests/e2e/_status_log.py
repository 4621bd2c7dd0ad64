"""A record of every status the API emulator served for the onnxops kinds (a watch per kind), and the checks
that nothing in it moved backwards. Used by the crash-safety test; the checks are pure functions of the
recorded events so that they can be tried on hand-made histories too."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from onnxops.builders import labels
from onnxops.kube.client import ApiError, KubeClient, resource_path
from onnxops.reconcile.status import HISTORY_LIMIT

API = "onnxops.dev/v1alpha1"
KINDS = ("TrainingJob", "ModelVersion", "InferenceService")


@dataclass(frozen=True)
class Seen:
    """One watch event: the object's identity, generation and status as the API served it."""

    kind: str
    type: str  # ADDED, MODIFIED, DELETED
    name: str
    uid: str
    generation: int
    status: dict[str, Any]
    labels: dict[str, str]
    version: int | None  # ModelVersion spec.version


def seen_from(kind: str, event: dict[str, Any]) -> Seen | None:
    obj = event.get("object") or {}
    md = obj.get("metadata") or {}
    if event.get("type") not in ("ADDED", "MODIFIED", "DELETED") or not md.get("uid"):
        return None
    v = (obj.get("spec") or {}).get("version")
    return Seen(
        kind,
        str(event["type"]),
        str(md.get("name")),
        str(md["uid"]),
        int(md.get("generation") or 1),
        dict(obj.get("status") or {}),
        dict(md.get("labels") or {}),
        v if kind == "ModelVersion" and isinstance(v, int) else None,
    )


@dataclass
class StatusLog:
    """Watches the three kinds in ``namespace`` from before the first object exists until stopped."""

    client: KubeClient
    namespace: str
    events: list[Seen] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)  # watch restarts that may have missed events

    async def _start_rv(self, kind: str) -> str | None:
        """The collection's resourceVersion now: the watch starts there, so nothing after it is missed."""
        data = await self.client.request("GET", resource_path(API, kind, self.namespace))
        return (data.get("metadata") or {}).get("resourceVersion") or None

    async def _watch(self, kind: str, rv: str | None) -> None:
        while True:
            try:
                async for ev in self.client.watch(
                    API, kind, self.namespace, resource_version=rv, timeout_seconds=300
                ):
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":  # 410 Gone: start over from now (recorded as a gap)
                        self.gaps.append(f"{kind}: {obj.get('message')}")
                        rv = None
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    s = seen_from(kind, ev)
                    if s is not None:
                        self.events.append(s)
            except (ApiError, OSError, TimeoutError) as e:
                self.gaps.append(f"{kind}: {type(e).__name__}: {e}")
                await asyncio.sleep(0.2)

    async def run(self, started: asyncio.Event | None = None) -> None:
        rvs = {k: await self._start_rv(k) for k in KINDS}
        tasks = [asyncio.create_task(self._watch(k, rvs[k]), name=f"status-log-{k}") for k in KINDS]
        if started is not None:
            started.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


# ---- checks: each returns a list of problems (empty: fine) -------------------------------------------------
def _by_uid(events: list[Seen], kind: str) -> dict[str, list[Seen]]:
    out: dict[str, list[Seen]] = defaultdict(list)
    for e in events:
        if e.kind == kind:
            out[e.uid].append(e)
    return out


def observed_generation_monotonic(events: list[Seen]) -> list[str]:
    problems = []
    for kind in KINDS:
        for uid, evs in _by_uid(events, kind).items():
            last = 0
            for e in evs:
                og = e.status.get("observedGeneration")
                if og is None:
                    continue
                if int(og) < last:
                    problems.append(f"{kind} {e.name} ({uid}): observedGeneration {last} -> {og}")
                last = max(last, int(og))
    return problems


def model_versions_unique(events: list[Seen]) -> list[str]:
    """One object per ModelVersion name and per version number of a model, ever (names and numbers are
    never reused, even across a delete), and one per training run (the training-job-uid label)."""
    problems = []
    first: dict[str, Seen] = {}
    for e in events:
        if e.kind == "ModelVersion" and e.uid not in first:
            first[e.uid] = e
    seen_name: dict[str, str] = {}
    seen_number: dict[tuple[str, int], str] = {}
    seen_run: dict[str, str] = {}
    for uid, e in first.items():
        if e.name in seen_name:
            problems.append(f"ModelVersion name {e.name} reused ({seen_name[e.name]}, {uid})")
        seen_name[e.name] = uid
        key = (e.labels.get(labels.MODEL, ""), int(e.version or 0))
        if key in seen_number:
            problems.append(f"version {key} registered twice ({seen_number[key]}, {uid})")
        seen_number[key] = uid
        run = e.labels.get(labels.TRAINING_JOB_UID)
        if run is not None:
            if run in seen_run:
                problems.append(f"training run {run} registered twice ({seen_run[run]}, {uid})")
            seen_run[run] = uid
    return problems


def terminal_fields_hold(events: list[Seen]) -> list[str]:
    """A TrainingJob's registered ModelVersion never changes or disappears, and a finished training never
    becomes unfinished; a Ready ModelVersion stays Ready, and a rejection is never taken back."""
    problems = []
    for evs in _by_uid(events, "TrainingJob").values():
        mv = phase = None
        for e in evs:
            if e.type == "DELETED":
                continue
            now_mv, now_phase = e.status.get("modelVersion"), e.status.get("phase")
            if mv is not None and now_mv != mv:
                problems.append(f"TrainingJob {e.name}: modelVersion {mv} -> {now_mv}")
            if phase in ("Succeeded", "Failed") and now_phase != phase:
                problems.append(f"TrainingJob {e.name}: phase {phase} -> {now_phase}")
            mv, phase = now_mv or mv, now_phase or phase
    for evs in _by_uid(events, "ModelVersion").values():
        ready = rejected = False
        for e in evs:
            if e.type == "DELETED":
                continue
            if ready and e.status.get("phase") != "Ready":
                problems.append(f"ModelVersion {e.name}: phase Ready -> {e.status.get('phase')}")
            if rejected and not e.status.get("rejected"):
                problems.append(f"ModelVersion {e.name}: rejected -> not rejected")
            ready = ready or e.status.get("phase") == "Ready"
            rejected = rejected or bool(e.status.get("rejected"))
    return problems


def _rb_key(rb: dict[str, Any] | None) -> tuple[Any, ...] | None:
    return None if not rb else (rb.get("from"), rb.get("to"), rb.get("reason"), rb.get("at"))


def inference_service_monotonic(events: list[Seen]) -> list[str]:
    """status.rollback, once written, stays (the same record, or a newer one) while the generation is the
    same; status.retrain's count never goes down and a recorded retrain is never forgotten or renamed;
    the stable version only goes down through a rollback recorded in the same status; history only grows
    (up to its bound); drift evaluations never go back in time."""
    problems = []
    for evs in _by_uid(events, "InferenceService").values():
        gen, rb, retrain, stable, evaluated = 0, None, None, None, ""
        history: list[Any] = []
        for e in evs:
            if e.type == "DELETED":
                continue
            st = e.status
            if e.generation != gen:
                gen, rb = e.generation, None  # a new spec generation may clear the hold
            now_rb = st.get("rollback")
            if rb is not None:
                if not now_rb:
                    problems.append(f"InferenceService {e.name}: rollback record {rb} lost at gen {gen}")
                elif str(now_rb.get("at")) < str(rb[3]):
                    problems.append(f"InferenceService {e.name}: rollback {rb} replaced by an older {now_rb}")
            rb = _rb_key(now_rb) or rb
            now_rt = st.get("retrain")
            if retrain is not None:
                if not now_rt:
                    problems.append(f"InferenceService {e.name}: retrain record {retrain} lost")
                elif int(now_rt.get("count") or 0) < int(retrain.get("count") or 0) or (
                    now_rt.get("count") == retrain.get("count")
                    and now_rt.get("trainingJob") != retrain.get("trainingJob")
                ):
                    problems.append(f"InferenceService {e.name}: retrain {retrain} -> {now_rt}")
            retrain = now_rt or retrain
            now_stable = st.get("stableVersion")
            down = stable is not None and now_stable is not None and int(now_stable) < int(stable)
            if down and (not now_rb or (now_rb.get("from"), now_rb.get("to")) != (stable, now_stable)):
                problems.append(f"InferenceService {e.name}: stable {stable} -> {now_stable}, no rollback")
            stable = now_stable if now_stable is not None else stable
            now_hist = list(st.get("history") or [])
            if history and not _extends(history, now_hist):
                problems.append(f"InferenceService {e.name}: history rewritten: {history} -> {now_hist}")
            history = now_hist or history
            at = str((st.get("drift") or {}).get("evaluatedAt") or "")
            if at and at < evaluated:
                problems.append(f"InferenceService {e.name}: drift.evaluatedAt {evaluated} -> {at}")
            evaluated = max(evaluated, at)
    return problems


def _extends(old: list[Any], new: list[Any]) -> bool:
    """``new`` is ``old`` plus entries at the end; the oldest entries fall off only at the bound."""
    for drop in range(len(old) + 1 if len(new) >= HISTORY_LIMIT else 1):
        kept = old[drop:]
        if new[: len(kept)] == kept:
            return True
    return False


def retrains_created(events: list[Seen], isvc: str) -> list[str]:
    """Names of the TrainingJobs the operator created for ``isvc`` (its retrains), in creation order."""
    out: list[str] = []
    for e in events:
        if e.kind == "TrainingJob" and e.labels.get(labels.INFERENCE_SERVICE) == isvc and e.name not in out:
            out.append(e.name)
    return out


def all_problems(events: list[Seen]) -> list[str]:
    return [
        *observed_generation_monotonic(events),
        *model_versions_unique(events),
        *terminal_fields_hold(events),
        *inference_service_monotonic(events),
    ]
