"""The demo's five steps. Each applies manifest files from ``examples/demo/`` (as ``kubectl apply -f``
would), then waits for the operator's answer in the objects' status and says what happened."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onnxops.demo import data
from onnxops.demo.env import Env
from onnxops.demo.observe import Observer
from onnxops.demo.traffic import FeedbackSender, TrafficGenerator
from onnxops.kube.client import ApiError
from onnxops.reconcile.rollout import parse_time

ISVC = "iris"
NO_DRIFT_WINDOWS = 3  # conclusive no-drift evaluations of v1 before v2 is trained
STEP_TIMEOUT_S = 150.0
FIRST_EVALUATION_TIMEOUT_S = 45.0


def examples_dir() -> Path:
    """``examples/demo`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[3] / "examples" / "demo"


def load_manifests(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise ValueError(f"{path}: not a Kubernetes manifest")
    return docs


@dataclass
class StepRecord:
    number: int
    title: str
    started: float
    ended: float | None = None
    ok: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "title": self.title,
            "ok": self.ok,
            "seconds": None if self.ended is None else round(self.ended - self.started, 2),
            "details": self.details,
        }


class Scenario:
    """The default story: data drift (a canary drifts from its own baseline and is rolled back; the traffic
    shifts and every version drifts, so the operator retrains on the captured traffic)."""

    name = "default"
    total_steps = 5

    def __init__(
        self, env: Env, say: Callable[[str], None], examples: Path | None = None, rate: float = 25.0
    ) -> None:
        self.env, self.say = env, say
        self.examples = examples or examples_dir()
        self.obs = Observer(env.client, env.namespace, ISVC, lambda m: say(f"    {m}"))
        self.obs.health = env.problem
        self.steps: list[StepRecord] = []
        self.traffic: TrafficGenerator | None = None
        self.feedback: FeedbackSender | None = None  # the ground truth, to the feedback endpoint
        self.rate = rate
        self.started = time.time()

    # ---- helpers ---------------------------------------------------------------------------------------
    def step(self, number: int, title: str) -> StepRecord:
        if self.steps and self.steps[-1].ended is None:
            self.steps[-1].ended = time.time()
        rec = StepRecord(number, title, time.time())
        self.steps.append(rec)
        self.obs.stage = f"step{number}"
        self.say(f"\n== step {number}/{self.total_steps}: {title}")
        return rec

    def done(self, rec: StepRecord, summary: str) -> None:
        rec.ended, rec.ok = time.time(), True
        self.say(f"   ok ({rec.ended - rec.started:.1f}s): {summary}")

    async def apply(self, filename: str) -> list[str]:
        path = self.examples / filename
        names = []
        for doc in load_manifests(path):
            doc.setdefault("metadata", {}).setdefault("namespace", self.env.namespace)
            ref = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            try:
                await self.env.client.create(doc)
                self.say(f"   $ kubectl apply -f examples/demo/{filename}   # {ref} created")
            except ApiError as e:
                if e.status != 409:
                    raise
                self.say(f"   $ kubectl apply -f examples/demo/{filename}   # {ref} unchanged (exists)")
            names.append(doc["metadata"]["name"])
        return names

    async def model_version_of(self, tj: str) -> str:
        mv: str = await self.obs.wait(
            f"TrainingJob {tj} to register a ModelVersion",
            lambda: _registered(self.obs.tj_status(tj), tj),
            STEP_TIMEOUT_S,
        )
        await self.obs.wait(
            f"ModelVersion {mv} Ready",
            lambda: self.obs.mv_phase(mv) == "Ready" or _failed_mv(self.obs.mv_phase(mv), mv),
            STEP_TIMEOUT_S,
        )
        return mv

    def detection(self) -> dict[str, Any]:
        """How quickly the operator acted (the summary's detection line)."""
        return {
            "rollbackSeconds": self.detail(4, "detectionSeconds"),
            "retrainSeconds": self.detail(5, "detectionSeconds"),
        }

    def detail(self, step: int, key: str) -> Any:
        return next((s.details.get(key) for s in self.steps if s.number == step), None)

    async def stop_clients(self) -> None:
        """Stop the traffic and the ground truth it sends."""
        if self.traffic is not None:
            await self.traffic.stop()
        if self.feedback is not None:
            await self.feedback.stop()

    async def serve(self, manifest: str) -> str:
        """Apply the InferenceService ``manifest`` and wait until it serves v1; returns the Service's URL."""
        obs = self.obs
        await self.apply(manifest)
        await obs.wait(
            "InferenceService iris serving v1",
            lambda: obs.status().get("stableVersion") == 1 and obs.status().get("phase") == "Ready",
            STEP_TIMEOUT_S,
        )
        return await self.env.service_url(ISVC)

    async def train_v1(self) -> str:
        rec = self.step(1, "a TrainingJob trains v1 on clean iris; verified and registered")
        await self.apply("trainingjob-iris.yaml")
        v1 = await self.model_version_of("iris")
        rec.details = {"modelVersion": v1, "metrics": (self.obs.mvs[v1].get("spec") or {}).get("metrics")}
        self.done(rec, f"{v1} Ready, metrics {rec.details['metrics']}")
        return v1

    async def first_evaluation(self, seen: int) -> None:
        """The operator writes status.drift at every monitoring interval; none at all means it cannot
        evaluate drift (say so instead of waiting for the step's whole timeout)."""
        try:
            await self.obs.wait(
                "a drift evaluation", lambda: len(self.obs.evaluations) > seen, FIRST_EVALUATION_TIMEOUT_S
            )
        except TimeoutError:
            raise RuntimeError(
                f"the operator wrote no drift evaluation (status.drift) in {FIRST_EVALUATION_TIMEOUT_S:g}s; "
                "it evaluates drift through onnxops.drift.monitor - see operator.log in the state dir"
            ) from None

    # ---- the steps -------------------------------------------------------------------------------------
    async def run(self) -> None:
        watcher = asyncio.create_task(self.obs.run(), name="demo-observer")
        try:
            await self._steps()
        finally:
            watcher.cancel()
            await self.stop_clients()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            if self.steps and self.steps[-1].ended is None:
                self.steps[-1].ended = time.time()

    async def _steps(self) -> None:
        obs = self.obs
        await self.train_v1()

        rec = self.step(2, "an InferenceService serves v1; live traffic from the clean world")
        url = await self.serve("inferenceservice-iris.yaml")
        worlds = {"clean": data.clean(), "shifted": data.shifted()}
        self.traffic = TrafficGenerator(url, "iris", worlds, "clean", rate=self.rate, feedback=True)
        self.traffic.start()
        self.feedback = FeedbackSender(self.traffic, url, "iris", interval=0.5)
        self.feedback.start()
        self.say(f"   traffic: {self.rate:g} req/s of 1-8 iris-like rows (OIP v2 JSON) -> {url}")
        self.say(
            "   the pods capture what they answer (spec.logging); twice a second the generator sends "
            "each answered row's species to the feedback endpoint; the pods write it as label files"
        )
        first_eval = len(obs.evaluations)

        def no_drift_windows() -> list[dict[str, Any]]:
            return [e for e in obs.evaluations[first_eval:] if e["drift"].get("verdict") == "NoDrift"]

        await self.first_evaluation(first_eval)
        await obs.wait(
            f"{NO_DRIFT_WINDOWS} conclusive no-drift windows on v1",
            lambda: len(no_drift_windows()) >= NO_DRIFT_WINDOWS,
            STEP_TIMEOUT_S,
        )
        st = obs.snapshot("serving-v1")
        rec.details = {"stableVersion": st.get("stableVersion"), "noDriftWindows": len(no_drift_windows())}
        self.done(rec, f"v1 stable; {len(no_drift_windows())} windows without drift, no action")

        rec = self.step(3, "a second TrainingJob trains v2 on skewed data; rolled out as a canary")
        await self.apply("trainingjob-iris-skewed.yaml")
        v2 = await self.model_version_of("iris-skewed")
        await obs.wait(
            "v2 as the canary",
            lambda: (
                obs.status().get("canaryVersion") == 2
                or (obs.status().get("rollback") or {}).get("from") == 2
            ),
            STEP_TIMEOUT_S,
        )
        st = obs.snapshot("canary-v2")
        rec.details = {
            "modelVersion": v2,
            "canaryVersion": st.get("canaryVersion"),
            "canaryWeight": st.get("canaryWeight"),
        }
        self.done(rec, f"{v2} Ready; canary v2 at {st.get('canaryWeight')}%")

        rec = self.step(4, "live traffic still looks like v1's world: v2 drifts from its own baseline")
        rb = await obs.wait(
            "the rollback of v2",
            lambda: (
                (obs.status().get("rollback") or {})
                if (obs.status().get("rollback") or {}).get("from") == 2
                else None
            ),
            STEP_TIMEOUT_S,
        )
        st = obs.snapshot("rolled-back")
        ready = obs.deployment_ready_at.get(2)
        detect = None if ready is None else round(_unix(rb.get("at")) - ready, 1)
        rec.details = {"rollback": rb, "stableVersion": st.get("stableVersion"), "detectionSeconds": detect}
        self.say(f"   rolled back v{rb.get('from')} -> v{rb.get('to')}, reason {rb.get('reason')}")
        self.say(f"   scores: {rb.get('scores')}")
        self.say(f"   message: {str(rb.get('message', ''))[:300]}")
        self.done(
            rec,
            f"v{st.get('stableVersion')} serves again; drift found ~{detect}s after v2's first pod "
            "joined the Service",
        )

        rec = self.step(5, "the traffic itself shifts: every version drifts; retrain and roll out v3")
        assert self.traffic is not None
        shifted_at = self.traffic.set_world("shifted")
        self.say("   traffic now samples the shifted world (every flower grew)")
        retrain = await obs.wait(
            "a retrain", lambda: (obs.status().get("retrain") or {}).get("trainingJob"), STEP_TIMEOUT_S
        )
        retrain_at = _unix((obs.status().get("retrain") or {}).get("at"))
        rec.details = {
            "retrainTrainingJob": retrain,
            "detectionSeconds": round(retrain_at - shifted_at, 1),
            "shiftedAt": shifted_at,
        }
        self.say(
            f"   the operator created TrainingJob {retrain} ({retrain_at - shifted_at:.1f}s after the shift)"
        )
        v3 = await self.model_version_of(retrain)
        served = served_lineage(obs.mvs.get(v3) or {})
        if served:
            self.say(
                f"   {v3} trained on served traffic: {served.get('rowsCaptured')} rows captured in "
                f"{served.get('windowStart')}..{served.get('windowEnd')}, {served.get('rowsLabelled')} "
                f"labelled, {served.get('rowsUsed')} used ({served.get('files')} files)"
            )
        await obs.wait(
            f"{v3} stable",
            lambda: obs.status().get("stableVersion") == 3 and obs.status().get("canaryVersion") is None,
            STEP_TIMEOUT_S,
        )
        await obs.wait(
            "the bake of v3 to end", lambda: obs.status().get("previousVersion") is None, STEP_TIMEOUT_S
        )
        st = obs.snapshot("final")
        rec.details = {
            "retrainTrainingJob": retrain,
            "modelVersion": v3,
            "stableVersion": st.get("stableVersion"),
            "detectionSeconds": round(retrain_at - shifted_at, 1),
            "shiftedAt": shifted_at,
            "fromServing": served,
            "feedback": self.feedback.to_json() if self.feedback else {},
        }
        self.done(rec, f"{v3}, trained on the captured shifted traffic, is stable")


def served_lineage(mv: dict[str, Any]) -> dict[str, Any]:
    """A ModelVersion's ``lineage.dataset.fromServing`` ({} when it was not trained on served traffic)."""
    return dict((((mv.get("spec") or {}).get("lineage") or {}).get("dataset") or {}).get("fromServing") or {})


def _unix(rfc3339: str | None) -> float:
    t = parse_time(rfc3339)
    return time.time() if t is None else t.timestamp()


def _registered(st: dict[str, Any], name: str) -> str | None:
    """The ModelVersion a TrainingJob registered (None: not yet); a failed TrainingJob ends the demo."""
    if st.get("phase") == "Failed":
        raise RuntimeError(f"TrainingJob {name} failed: {st.get('message') or st}")
    mv = st.get("modelVersion")
    return str(mv) if mv else None


def _failed_mv(phase: str | None, name: str) -> bool:
    if phase == "Failed":
        raise RuntimeError(f"ModelVersion {name} failed verification")
    return False
