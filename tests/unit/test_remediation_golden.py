"""What the drift and the live-performance decisions do to an InferenceService stays the same across
refactorings: its status (``status.drift``, ``status.performance``, ``status.retrain``, the rollback, the
conditions and history), the status patch written, the Events, the ModelVersion marks and the retrain
TrainingJob, and what the controller reads back from a stored status (when the next evaluation is due,
the policies' prior state and settings).

``golden/remediation.json`` holds them for the example InferenceServices that monitor drift and specs that
leave the remaining fields to the API's defaults (performance monitoring, a retrain template without
``minInterval``, no rollout or interval), each as written and as the API server stores it, in several
states (a canary, a bake, a stable version with earlier evaluations and retrains, a status with entries
the readers skip) and with the retrain TrainingJobs that may exist (none, one running, one an interrupted
evaluation created but never recorded). They were recorded by the code before the remediation paths were
typed (written once by that code, not by the code under test). The status patch (what is written) is
kept in full; the whole desired status and the children the plan ensures (the InferenceService
reconciler's, ``test_inference_service_golden.py``) only as their digest.

One read changed when the paths were typed, on purpose: on ``extra:performance-defaults|written``
(``monitoring.drift: {}`` and ``monitoring.performance: {}`` on an object never defaulted) the dict code
read an empty block as "off" (no evaluation due), while its policies already read it as on, with the
API's defaults; the typed spec reads it as the API does, which is also what the API server stores (the
``|stored`` entry, unchanged): both entries now read the same.

Regenerate (``python tests/unit/test_remediation_golden.py --write``) only for a change that is meant to
alter them, and say so in the commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.admission.prune import prune_and_default
from onnxops.builders import labels
from onnxops.controller.drift import drift_due
from onnxops.controller.performance import data_drift_of, performance_due
from onnxops.drift.evaluate import Served, prior_from_status
from onnxops.drift.performance_policy import PerfDecision, PerfPolicySpec
from onnxops.drift.policy import Decision, PolicySpec
from onnxops.reconcile import remediation
from onnxops.reconcile.drift_hook import apply_decision
from onnxops.reconcile.performance_hook import apply_performance, prior_consecutive
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "remediation.json"
T0 = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
GEN = 3
S = Settings(
    trainer_image="registry.example/onnxops-trainer:golden",
    serving_image="registry.example/onnxops-serving:golden",
)
TEMPLATE = {
    "model": "iris",
    "dataset": {"uri": "sklearn://iris"},
    "estimator": {"className": "LogisticRegression"},
}
EXTRA_SPECS: dict[str, dict[str, Any]] = {
    # every duration and setting left to the API: interval, window, bake, minInterval
    "performance-defaults": {
        "model": "iris",
        "replicas": 2,
        "monitoring": {"drift": {}, "performance": {}},
        "retrain": {"trainingJob": TEMPLATE},
    },
    "performance-retrain": {
        "model": "iris",
        "replicas": 2,
        "rollout": {"bakeTime": "1m"},
        "monitoring": {
            "interval": "20s",
            "onDrift": "Retrain",
            "drift": {"method": "js", "threshold": 0.1, "failureLimit": 2, "window": "2m"},
            "performance": {
                "metric": "f1",
                "min": 0.8,
                "failureLimit": 2,
                "window": "30m",
                "onConceptDrift": "Retrain",
            },
        },
        "retrain": {"minInterval": "2h", "trainingJob": TEMPLATE},
    },
    "drift-off": {
        "model": "iris",
        "monitoring": {"interval": "1m", "drift": {"enabled": False}, "performance": {"enabled": False}},
    },
}


def _at(seconds_before: float) -> str:
    return (T0 - timedelta(seconds=seconds_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mv(version: int) -> dict[str, Any]:
    uri = f"pvc://artifacts/models/iris/r{version}/model.onnx"
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-v{version}", "namespace": "ml", "uid": f"mv-{version}", "generation": 1},
        "spec": {
            "model": "iris",
            "version": version,
            "artifact": {"uri": uri, "sha256": "a" * 64},
            "profile": {"uri": uri.replace("model.onnx", "profile.json"), "sha256": "b" * 64},
            "signature": {
                "task": "classification",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
            },
            "metrics": {"accuracy": 0.95},
        },
        "status": {"phase": "Ready"},
    }


DRIFT_CONDITION = {
    "type": "DriftDetected",
    "status": "True",
    "reason": "DriftDetected",
    "message": "psi 0.6 > 0.2",
    "lastTransitionTime": _at(300),
    "observedGeneration": GEN,
}
PERF_CONDITION = {**DRIFT_CONDITION, "type": "PerformanceDegraded", "reason": "PerformanceDegraded"}

# (state, stored status)
STATES: list[tuple[str, dict[str, Any]]] = [
    (
        "canary",
        {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 25,
            "currentStep": 0,
            "stepStartedAt": _at(20),
            "drift": {
                "verdict": "Drift",
                "version": 2,
                "score": 0.5,
                "versions": {"1": 0.05, "2": 0.5},
                "consecutiveBreaches": 2,
                "breaches": {"1": 0, "2": 2},
                "evaluatedAt": _at(10),
                "message": "DriftDetected: psi 0.5 > 0.2",
            },
            "performance": {
                "metric": "accuracy",
                "verdict": "Degraded",
                "action": "None",
                "breaches": {"2": 1},
                "consecutiveBreaches": 1,
                "evaluatedAt": _at(100),
                "message": "v2 accuracy 0.7",
            },
        },
    ),
    (
        "baking",
        {
            "stableVersion": 2,
            "previousVersion": 1,
            "promotedAt": _at(30),
            "conditions": [DRIFT_CONDITION, PERF_CONDITION],
            "drift": {"verdict": "NoDrift", "evaluatedAt": _at(60), "breaches": {"2": 1}},
        },
    ),
    (
        "stable-retrained",
        {
            "stableVersion": 1,
            "promotedAt": _at(9000),
            "drift": {"version": 1, "consecutiveBreaches": 1, "evaluatedAt": _at(45)},  # before `breaches`
            "performance": {"breaches": {"1": 2}, "evaluatedAt": _at(3000), "source": "Live"},
            "retrain": {
                "trainingJob": "iris-retrain-1",
                "at": _at(8000),
                "reason": "DriftDetected",
                "count": 1,
                "scores": {"v1": 0.7},
            },
            "history": [{"action": "Retrained", "version": 1, "at": _at(8000), "reason": "DriftDetected"}],
        },
    ),
    (
        "recent-retrain",
        {
            "stableVersion": 1,
            "retrain": {"trainingJob": "iris-retrain-2", "at": _at(60), "reason": "ConceptDrift", "count": 2},
        },
    ),
    (
        # entries the readers skip: a breach count that is not a number, a retrain without its count
        "skipped-entries",
        {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 50,
            "currentStep": 1,
            "stepStartedAt": _at(20),
            "drift": {"breaches": {"1": "x", "2": 1.0}, "verdict": "Unknown"},
            "performance": {"breaches": {"1": "y", "2": 2}},
            "retrain": {"trainingJob": "iris-retrain-1", "at": _at(9000)},
        },
    ),
]


def _tj(n: int, phase: str | None, record: dict[str, Any] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": f"iris-retrain-{n}", "namespace": "ml", "labels": {"x": "y"}}
    if record is not None:
        md["annotations"] = {labels.RETRAIN_RECORD: json.dumps(record, sort_keys=True)}
    return {"metadata": md, "status": {"phase": phase} if phase else {}}


PENDING = {"trainingJob": "iris-retrain-5", "at": _at(5), "reason": "DriftDetected", "count": 5, "scores": {}}
CHILDREN: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "running": [_tj(1, "Succeeded"), _tj(2, "Running")],
    "unrecorded": [
        _tj(1, "Succeeded"),
        _tj(5, None, PENDING),
        _tj(4, "Failed", {"count": 3, "at": _at(900)}),
    ],
}


def _drift(action: str | None, reason: str, scores: dict[str, float], **kw: Any) -> Decision:
    verdicts = kw.pop("verdicts", None) or {v: ("Drift" if s > 0.2 else "NoDrift") for v, s in scores.items()}
    return Decision(
        action=action,  # type: ignore[arg-type]
        reason=reason,
        message=f"{reason}: scores {scores}",
        verdicts=verdicts,
        scores=scores,
        feature_scores={v: {"f0": s, "f1": s / 2} for v, s in scores.items()},
        samples={v: 500.0 for v in scores},
        consecutive={v: (3 if s > 0.2 else 0) for v, s in scores.items()},
        breaches={v: s > 0.2 for v, s in scores.items()},
        **kw,
    )


def _perf(action: str | None, reason: str, values: dict[str, float], **kw: Any) -> PerfDecision:
    verdicts = kw.pop("verdicts", None) or {
        v: ("Degraded" if x < 0.8 else "Healthy") for v, x in values.items()
    }
    return PerfDecision(
        action=action,  # type: ignore[arg-type]
        reason=reason,
        message=f"{reason}: accuracy {values}",
        metric="accuracy",
        verdicts=verdicts,
        values=values,
        labels={v: 200 for v in verdicts},
        thresholds={v: 0.855 for v in values},
        consecutive={v: (2 if x < 0.8 else 0) for v, x in values.items()},
        **kw,
    )


DRIFT: dict[str, Decision] = {
    "rollback": _drift(
        "Rollback", "DriftDetected", {"1": 0.05, "2": 0.6}, rollback_from="2", rollback_to="1"
    ),
    "rollback-stale": _drift(
        "Rollback", "DriftDetected", {"1": 0.05, "3": 0.6}, rollback_from="3", rollback_to="1"
    ),
    "retrain": _drift("Retrain", "DriftDetected", {"1": 0.7, "2": 0.6}),
    "alert": _drift("Alert", "DriftDetected", {"1": 0.4}),
    "none": _drift(None, "NoDrift", {"1": 0.01, "2": 0.02}),
    "inconclusive": _drift(None, "Inconclusive", {}, verdicts={"1": "Inconclusive", "2": "Inconclusive"}),
}
PERF: dict[str, PerfDecision] = {
    "rollback": _perf(
        "Rollback", "PerformanceRegressed", {"1": 0.9, "2": 0.6}, rollback_from="2", rollback_to="1"
    ),
    "retrain": _perf("Retrain", "ConceptDrift", {"1": 0.6, "2": 0.7}),
    "alert": _perf("Alert", "PerformanceDegraded", {"1": 0.7}),
    "none": _perf(None, "Healthy", {"1": 0.9, "2": 0.92}),
    "inconclusive": _perf(None, "Inconclusive", {}, verdicts={"1": "Inconclusive"}),
}
PERF_EXTRA: list[dict[str, Any]] = [{}, {"unresolved": 7.0, "source": "LabelFiles", "job": "iris-labels-1"}]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def cases() -> list[tuple[str, dict[str, Any]]]:
    crd = yaml.safe_load((ROOT / "crds" / "onnxops.dev_inferenceservices.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for i, doc in enumerate(_docs(path)):
            if doc.get("kind") == "InferenceService" and (doc.get("spec") or {}).get("monitoring"):
                raw[f"{path.relative_to(ROOT).as_posix()}#{i}"] = doc
    for name, spec in EXTRA_SPECS.items():
        raw[f"extra:{name}"] = {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "InferenceService",
            "spec": spec,
        }
    out = []
    for n, (key, obj) in enumerate(sorted(raw.items())):
        for form, o in (("written", obj), ("stored", prune_and_default(schema, obj))):
            md = {
                "name": "iris",
                "namespace": "ml",
                "uid": f"00000000-0000-0000-0000-{n:012d}",
                "generation": GEN,
            }
            out.append((f"{key}|{form}", {**o, "metadata": md}))
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _plan(dp: remediation.DriftPlan) -> dict[str, Any]:
    p = dp.plan
    return {
        "status": _digest(p.status),  # the patch below is what differs from the stored status
        "patch": p.status_patch,
        "children": _digest(p.children),
        "delete": p.delete,
        "events": p.events,
        "reject": p.reject,
        "readmit": p.readmit,
        "requeueAfter": p.requeue_after,
        "retrain": dp.retrain,
    }


def _plain(value: Any) -> Any:
    """A typed status block as its JSON (what is stored); anything else as it is."""
    return value.to_dict() if hasattr(value, "to_dict") else value


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _reads(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """What the controller reads of a stored status and spec before it decides."""
    from onnxops.api.v1alpha1 import InferenceServiceSpec

    spec = InferenceServiceSpec.model_validate(obj["spec"])
    served = [Served("1", "stable", None), Served("2", "canary", None)]
    prior = prior_from_status(status, served, retrain_running=False)
    return {
        "driftDue": drift_due(obj, T0),
        "performanceDue": performance_due(obj, T0),
        "driftPrior": {
            "consecutive": dict(prior.consecutive),
            "promotedAt": str(prior.promoted_at),
            "lastRetrainAt": str(prior.last_retrain_at),
        },
        "performancePrior": prior_consecutive(status),
        "dataDrift": data_drift_of(status),
        "driftPolicy": dataclasses.asdict(PolicySpec.from_spec(spec)),
        "performancePolicy": dataclasses.asdict(PerfPolicySpec.from_spec(spec)),
        "retrainDue": {
            c: remediation.retrain_due(obj["spec"], status, CHILDREN[c], T0) for c in ("none", "running")
        },
        "unrecorded": _plain(remediation.unrecorded_retrain(status, CHILDREN["unrecorded"])),
    }


def build(isvc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mvs = [_mv(1), _mv(2)]
    retrains = bool(isvc["spec"].get("retrain"))
    for state, status in STATES:
        obj = {**isvc, "status": _copy(status)}
        out[f"{state}:reads"] = _reads(obj, obj["status"])
        for dname, d in DRIFT.items():
            for cname in CHILDREN if dname == "retrain" else ("none",):
                if cname != "none" and not retrains:
                    continue
                dp = apply_decision(
                    _copy(obj), _copy(mvs), [], d, settings=S, now=T0, retrain_children=_copy(CHILDREN[cname])
                )
                out[f"{state}:drift:{dname}:{cname}"] = _plan(dp)
        for pname, p in PERF.items():
            for cname in CHILDREN if pname == "retrain" else ("none",):
                if cname != "none" and not retrains:
                    continue
                for i, extra in enumerate(PERF_EXTRA if pname in ("alert", "none") else PERF_EXTRA[:1]):
                    dp = apply_performance(
                        _copy(obj),
                        _copy(mvs),
                        [],
                        p,
                        settings=S,
                        now=T0,
                        retrain_children=_copy(CHILDREN[cname]),
                        **extra,
                    )
                    out[f"{state}:performance:{pname}:{cname}:{i}"] = _plan(dp)
    return out


def compute() -> dict[str, Any]:
    return {cid: _copy(build(obj)) for cid, obj in cases()}


GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def test_golden_covers_every_case() -> None:
    ids = {c[0] for c in cases()}
    assert ids == set(GOLDEN_DATA), "cases differ from golden/remediation.json: an example came or went"
    assert sum(1 for k in ids if k.startswith("examples/")) >= 4  # 2 manifests, written and stored
    plans = [p for case in GOLDEN_DATA.values() for k, p in case.items() if not k.endswith(":reads")]
    # every writer is reached: a retrain TrainingJob, a rollback, both summaries, a recorded pending retrain
    assert any(p["retrain"] for p in plans)
    assert any(p["reject"] for p in plans)
    assert any("drift" in p["patch"] for p in plans) and any("performance" in p["patch"] for p in plans)
    assert any(
        "retrain" in p["patch"] and p["patch"]["retrain"]["count"] == PENDING["count"] and not p["retrain"]
        for p in plans
    )


def test_an_empty_monitoring_block_is_monitoring_with_the_api_defaults() -> None:
    written = GOLDEN_DATA["extra:performance-defaults|written"]
    stored = GOLDEN_DATA["extra:performance-defaults|stored"]
    reads = [k for k in written if k.endswith(":reads")]
    assert len(reads) == len(STATES)
    for key in reads:
        assert written[key] == stored[key], key
    assert written["canary:reads"]["driftDue"] == 20.0  # 30s (the API's interval) after the last, 10s ago
    assert written["canary:reads"]["performanceDue"] == 0.0


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_status_and_plan_unchanged(case: tuple[str, dict[str, Any]]) -> None:
    cid, obj = case
    got = _copy(build(obj))
    want = GOLDEN_DATA[cid]
    assert set(got) == set(want)
    for key in want:
        assert got[key] == want[key], key


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    rows = sorted(compute().items())  # one case a line
    compact = (",", ":")
    lines = [f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=compact)}" for k, v in rows]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(rows)} -> {GOLDEN}")
