"""``onnxops demo --scenario concept-drift``: the inputs stay the same, the answers change.

v1 serves iris-like traffic from the clean world; the clients send every answered row's true class to the
feedback endpoint (echoing the version and prediction they got). Then the truth changes for part of the
input space (``data.relabelled``: long petals are now class 1) while the inputs stay in distribution. Data
drift stays below its threshold, v1's live accuracy falls, the operator calls it concept drift and retrains
on the captured traffic joined with the new labels (``dataset.fromServing``; the serving pods write every
feedback item to the label sink), and the new version, whose live accuracy recovers, is promoted.

The steps reuse the default scenario's helpers (apply, wait, train v1, serve); only the story differs.
"""

from __future__ import annotations

import time
from typing import Any

from onnxops.demo import data
from onnxops.demo.scenario import ISVC, STEP_TIMEOUT_S, Scenario, _unix, served_lineage
from onnxops.demo.traffic import FeedbackSender, TrafficGenerator

MANIFEST = "concept-drift/inferenceservice-iris.yaml"
HEALTHY_WINDOWS = 2  # conclusive healthy live-accuracy evaluations of v1 before the truth changes


def live(perf: dict[str, Any], version: int) -> dict[str, Any]:
    """``status.performance.versions[version]`` ({} when absent)."""
    return dict(((perf.get("versions") or {}).get(str(version))) or {})


class ConceptDriftScenario(Scenario):
    name = "concept-drift"
    total_steps = 4

    def detection(self) -> dict[str, Any]:
        return {"retrainSeconds": self.detail(3, "detectionSeconds")}

    def extra_summary(self) -> dict[str, Any]:
        return {
            "liveAccuracy": {
                "v1BeforeChange": self.detail(2, "liveAccuracy"),
                "v1AfterChange": self.detail(3, "liveAccuracy"),
                "v2AfterChange": self.detail(4, "liveAccuracy"),
            },
            "dataDriftAtRetrain": self.detail(3, "dataDrift"),
        }

    def _healthy(self, version: int, since: int) -> list[dict[str, Any]]:
        return [
            e
            for e in self.obs.performance[since:]
            if live(e["performance"], version).get("verdict") == "Healthy"
        ]

    async def _steps(self) -> None:
        obs = self.obs
        await self.train_v1()

        rec = self.step(2, "an InferenceService serves v1; the clients send the true labels as feedback")
        url = await self.serve(MANIFEST)
        self.traffic = TrafficGenerator(
            url, "iris", {"clean": data.clean()}, "clean", rate=self.rate, feedback=True
        )
        self.traffic.start()
        self.feedback = FeedbackSender(self.traffic, url, "iris")
        self.feedback.start()
        self.say(
            f"   traffic: {self.rate:g} req/s of 1-8 iris-like rows -> {url}; every second the answered "
            "rows' true species go to POST /v2/models/iris/feedback (with the version and prediction)"
        )
        seen = len(obs.performance)
        await obs.wait(
            f"{HEALTHY_WINDOWS} healthy live-accuracy windows on v1",
            lambda: len(self._healthy(1, seen)) >= HEALTHY_WINDOWS,
            STEP_TIMEOUT_S,
        )
        before = live(self._healthy(1, seen)[-1]["performance"], 1)
        rec.details = {
            "liveAccuracy": before.get("value"),
            "labels": before.get("labels"),
            "reference": before.get("reference"),
        }
        self.done(
            rec,
            f"v1 live accuracy {before.get('value'):.3f} over {before.get('labels')} labels "
            f"(degraded below {before.get('reference'):.3f}): healthy, no action",
        )

        rec = self.step(3, "the truth changes for long petals (inputs stay the same): concept drift")
        changed_at = self.traffic.set_truth(data.relabelled)
        self.say(
            f"   from now on every flower with a petal longer than {data.RELABEL_PETAL_CM:g} cm is "
            f"{data.SPECIES[1]}; the rows sent do not change"
        )
        retrain = await obs.wait(
            "a retrain", lambda: (obs.status().get("retrain") or {}).get("trainingJob"), STEP_TIMEOUT_S
        )
        st = obs.snapshot("concept-drift")
        rt = st.get("retrain") or {}
        perf = st.get("performance") or {}
        after = live(perf, 1)
        detect = round(_unix(rt.get("at")) - changed_at, 1)
        rec.details = {
            "retrainTrainingJob": retrain,
            "reason": rt.get("reason"),
            "changedAt": changed_at,
            "detectionSeconds": detect,
            "liveAccuracy": after.get("value"),
            "labels": after.get("labels"),
            "reference": after.get("reference"),
            "dataDrift": (st.get("drift") or {}).get("verdict"),
            "driftScores": (st.get("drift") or {}).get("versions"),
        }
        self.say(f"   {perf.get('message', '')[:300]}")
        self.say(f"   data drift: {rec.details['dataDrift']} (PSI {rec.details['driftScores']})")
        self.done(
            rec,
            f"v1 live accuracy {after.get('value')} < {after.get('reference')}; the operator "
            f"created TrainingJob {retrain} ({rt.get('reason')}) {detect}s after the change",
        )

        rec = self.step(4, "v2 learns the new labels from the captured traffic; canary, promoted, recovers")
        v2 = await self.model_version_of(retrain)
        served = served_lineage(obs.mvs.get(v2) or {})
        if served:
            self.say(
                f"   {v2} trained on served traffic: {served.get('rowsCaptured')} rows captured, "
                f"{served.get('rowsLabelled')} labelled by feedback, {served.get('rowsUsed')} used"
            )
        await obs.wait(
            f"{v2} stable",
            lambda: obs.status().get("stableVersion") == 2 and obs.status().get("canaryVersion") is None,
            STEP_TIMEOUT_S,
        )
        promoted = len(obs.performance)
        await obs.wait(
            "a healthy live-accuracy window of v2 after its promotion",
            lambda: self._healthy(2, promoted),
            STEP_TIMEOUT_S,
        )
        await obs.wait(
            "the bake of v2 to end", lambda: obs.status().get("previousVersion") is None, STEP_TIMEOUT_S
        )
        v2_live = live(self._healthy(2, promoted)[-1]["performance"], 2)
        st = obs.snapshot("final")
        rec.details = {
            "retrainTrainingJob": retrain,
            "modelVersion": v2,
            "stableVersion": st.get("stableVersion"),
            "fromServing": served,
            "liveAccuracy": v2_live.get("value"),
            "labels": v2_live.get("labels"),
            "at": time.time(),
        }
        self.done(
            rec,
            f"{v2} is stable; live accuracy on the new labels {v2_live.get('value'):.3f} "
            f"(v1 had {after.get('value')})",
        )


def scenario_class(name: str) -> type[Scenario]:
    """The scenario ``onnxops demo --scenario NAME`` runs."""
    return {"default": Scenario, ConceptDriftScenario.name: ConceptDriftScenario}[name]


__all__ = ["ISVC", "ConceptDriftScenario", "scenario_class"]
