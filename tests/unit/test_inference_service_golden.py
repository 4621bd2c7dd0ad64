"""The serving children (Deployments, Services, HPAs) and the InferenceService's plan stay the same across
refactorings.

The operator compares every child it wants with the one that exists: a Deployment that came out different
for the same InferenceService after an upgrade would roll every serving pod in the cluster.
``golden/inference_services.json`` holds, for every InferenceService manifest under ``examples/`` and a few
specs that set the remaining fields (autoscaling, an HTTPRoute, a shadow phase, pod overrides, a pinned
version, a capture sink with a Secret), the children and the plan (status, patch, deletions, Events,
rejections, route weights and mirror, requeue, analysis wanted) in several states of a rollout, as the
operator built them before the InferenceService path was typed (written once by that code, not by the
code under test). Each manifest is checked as written and as the API server stores it (pruned and
defaulted by the CRD schema).

One entry changed when the path was typed, on purpose: ``extra:autoscaling-defaults|written``
(``autoscaling: {}`` on an object never defaulted) was read as "no autoscaling" by the dict code; the
typed spec reads it as the API does, autoscaling with its defaults, which is also what the API server stores
(the ``|stored`` entry, unchanged): both entries are now the same.

Regenerate (``python tests/unit/test_inference_service_golden.py --write``) only for a change that is
meant to alter them, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.admission.prune import prune_and_default
from onnxops.builders import labels
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.analysis import AnalysisResult
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "inference_services.json"
T0 = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64
GEN = 3
# the second settings (storage, gRPC, resources: the children only) in the states that build every kind
OTHER_SETTINGS_STATES = {"first", "canary-mid-step", "baking", "shadow"}


def _at(seconds_before: float) -> str:
    return (T0 - timedelta(seconds=seconds_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


SETTINGS = {
    "defaults": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
    ),
    "s3-no-grpc": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
        image_pull_policy="Always",
        default_storage_uri="s3://models/store",
        s3_endpoint_url="http://minio.storage:9000",
        s3_region="eu-west-1",
        default_credentials_secret="store-creds",
        serving_grpc_port=0,
        serving_resources={"requests": {"cpu": "200m"}},
    ),
}

# Specs setting what the example manifests leave out.
EXTRA_SPECS: dict[str, dict[str, Any]] = {
    "autoscaling": {
        "model": "iris",
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetCpuUtilization": 60},
        "rollout": {"steps": [{"weight": 30, "pause": "45s"}, {"weight": 60, "awaitPromotion": True}]},
    },
    "autoscaling-defaults": {"model": "iris", "autoscaling": {}},
    "http-route": {
        "model": "iris",
        "replicas": 3,
        "rollout": {
            "steps": [{"weight": 10, "pause": "30s"}, {"weight": 40, "pause": "1m"}],
            "httpRoute": {"name": "iris-route"},
            "bakeTime": "1m",
            "analysis": {"enabled": False},
        },
    },
    "shadow": {
        "model": "iris",
        "replicas": 4,
        "rollout": {
            "shadow": {"duration": "2m", "sampleRate": 0.5, "minAgreement": 0.9},
            "analysis": {"onInconclusive": "Abort"},
        },
        "monitoring": {"metricsSource": {"prometheusUrl": "http://prom.monitoring:9090"}},
    },
    "shadow-route": {
        "model": "iris",
        "replicas": 2,
        "rollout": {"shadow": {}, "httpRoute": {"name": "iris-route"}},
    },
    "recreate-pinned": {
        "model": "iris",
        "version": 2,
        "replicas": 2,
        "rollout": {"strategy": "Recreate", "bakeTime": "0s"},
    },
    "overrides": {
        "model": "iris",
        "version": "latest",
        "replicas": 1,
        "resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"cpu": "2"}},
        "template": {
            "image": "registry.example/custom-serving:1",
            "imagePullPolicy": "Never",
            "resources": {"limits": {"memory": "2Gi"}},
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            "serviceAccountName": "serving",
            "env": [
                {"name": "OMP_NUM_THREADS", "value": "2"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
            ],
        },
        "logging": {
            "sampleRate": 0.25,
            "maxRowsPerFile": 500,
            "sink": {"uri": "s3://traffic/iris/", "credentialsSecret": {"name": "capture-creds"}},
        },
        "monitoring": {"interval": "10s", "drift": {"failureLimit": 2}},
    },
    "logging-default-sink": {"model": "iris", "replicas": 2, "logging": {"enabled": True}},
}


def _mv(version: int, phase: str | None = "Ready", **status: Any) -> dict[str, Any]:
    uri = f"pvc://artifacts/models/iris/r{version}/model.onnx"
    if version == 2:
        uri = f"s3://models/iris/r{version}/model.onnx"
    art: dict[str, Any] = {"uri": uri, "sha256": SHA_A}
    if version == 2:
        art["credentialsSecret"] = {"name": "model-creds"}
    spec: dict[str, Any] = {
        "model": "iris",
        "version": version,
        "artifact": art,
        "signature": {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
        },
        "metrics": {"accuracy": 0.95},
    }
    if version != 3:
        spec["profile"] = {"uri": uri.replace("model.onnx", "profile.json"), "sha256": SHA_B}
    st = dict(status)
    if phase:
        st["phase"] = phase
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-v{version}", "namespace": "ml", "uid": f"mv-{version}", "generation": 1},
        "spec": spec,
        "status": st,
    }


def _dep(name: str, version: int, ready: int, *, shadow: bool = False) -> dict[str, Any]:
    lbl = {labels.INFERENCE_SERVICE: "iris"} if shadow else {labels.VERSION: str(version)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-v{version}" + ("-shadow" if shadow else ""), "labels": lbl},
        "spec": {"replicas": ready},
        "status": {"readyReplicas": ready},
    }


STALE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "iris-v9", "labels": {labels.VERSION: "9"}},
}
ROLLBACK = {
    "from": 2,
    "to": 1,
    "reason": "AnalysisFailed",
    "message": "error rate 0.2 > 0.01",
    "at": _at(600),
    "generation": GEN,
}
PASS = AnalysisResult("Pass", "ok: 0 errors of 120 requests, p99 40ms")
FAIL = AnalysisResult("Fail", "error rate 0.2000 > 0.01 over 120 requests")
INCONCLUSIVE = AnalysisResult("Inconclusive", "3 requests < minRequests 50")

# (state, status, ModelVersions, observed (version, ready pods, shadow), analyses to try)
STATES: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[tuple[int, int, bool]], list[Any]]] = [
    ("nothing-ready", {}, [_mv(1, "Verifying")], [], [None]),
    ("verification-failed", {}, [_mv(1, "Failed", reason="DigestMismatch")], [], [None]),
    ("first", {}, [_mv(3)], [], [None]),  # v3: no profile
    ("first-running", {"stableVersion": 1}, [_mv(1)], [(1, 0, False)], [None]),
    ("stable", {"stableVersion": 1}, [_mv(1)], [(1, 4, False)], [None]),
    ("new-version", {"stableVersion": 1}, [_mv(1), _mv(2)], [(1, 4, False)], [None]),
    (
        "canary-mid-step",
        {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 25,
            "currentStep": 0,
            "stepStartedAt": _at(5),
        },
        [_mv(1), _mv(2)],
        [(1, 3, False), (2, 1, False)],
        [None],
    ),
    (
        "canary-step-over",
        {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 25,
            "currentStep": 0,
            "stepStartedAt": _at(900),
        },
        [_mv(1), _mv(2)],
        [(1, 3, False), (2, 1, False)],
        [None, PASS, FAIL, INCONCLUSIVE],
    ),
    (
        "baking",
        {"stableVersion": 2, "previousVersion": 1, "promotedAt": _at(30)},
        [_mv(1), _mv(2)],
        [(1, 4, False), (2, 4, False)],
        [None],
    ),
    (
        "rollback-held",
        {
            "stableVersion": 1,
            "rollback": ROLLBACK,
            "rejectedVersions": [
                {"version": 2, "reason": "AnalysisFailed", "at": _at(600), "generation": GEN}
            ],
            "history": [{"action": "RolledBack", "version": 2, "at": _at(600), "reason": "AnalysisFailed"}],
        },
        [_mv(1), _mv(2)],
        [(1, 4, False), (9, 1, False)],
        [None],
    ),
    (
        "shadow",
        {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 0,
            "currentStep": 0,
            "shadow": True,
            "stepStartedAt": _at(400),
        },
        [_mv(1), _mv(2)],
        [(1, 4, False), (2, 2, True)],
        [None, PASS, FAIL],
    ),
]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def manifests() -> dict[str, dict[str, Any]]:
    """name -> InferenceService (as written), from examples/ and EXTRA_SPECS."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        rel = path.relative_to(ROOT).as_posix()
        for i, doc in enumerate(_docs(path)):
            if doc.get("kind") == "InferenceService":
                out[f"{rel}#{i}"] = doc
    for name, spec in EXTRA_SPECS.items():
        out[f"extra:{name}"] = {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "iris"},
            "spec": spec,
        }
    return out


def cases() -> list[tuple[str, dict[str, Any]]]:
    crd = yaml.safe_load((ROOT / "crds" / "onnxops.dev_inferenceservices.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    out = []
    for n, (key, raw) in enumerate(sorted(manifests().items())):
        stored = prune_and_default(schema, raw)
        for form, obj in (("written", raw), ("stored", stored)):
            md = {
                "namespace": "ml",
                **(obj.get("metadata") or {}),
                "uid": f"00000000-0000-0000-0000-{n:012d}",
                "generation": GEN,
            }
            out.append((f"{key}|{form}", {**obj, "metadata": md}))
    return out


def _plan(p: ir.IsvcPlan) -> dict[str, Any]:
    return {
        "status": p.status,
        "patch": p.status_patch,
        "children": p.children,
        "delete": p.delete,
        "events": p.events,
        "reject": p.reject,
        "readmit": p.readmit,
        "routeWeights": p.route_weights,
        "routeMirror": p.route_mirror,
        "requeueAfter": p.requeue_after,
        "wantsAnalysis": p.wants_analysis,
    }


def build(isvc: dict[str, Any]) -> dict[str, Any]:
    """Per settings and state of the rollout (and analysis result), the plan."""
    out: dict[str, Any] = {}
    has_shadow = bool((isvc["spec"].get("rollout") or {}).get("shadow"))
    for sname, settings in SETTINGS.items():
        for state, status, mvs, seen, analyses in STATES:
            if (state == "shadow" and not has_shadow) or (
                sname != "defaults" and state not in OTHER_SETTINGS_STATES
            ):
                continue
            obj = {**isvc, "status": json.loads(json.dumps(status))}
            observed = [_dep("iris", v, n, shadow=sh) for v, n, sh in seen]
            if state == "rollback-held":
                observed.append(STALE)
            for i, analysis in enumerate(analyses):
                plan = ir.reconcile(
                    obj, json.loads(json.dumps(mvs)), observed, settings=settings, now=T0, analysis=analysis
                )
                out[f"{sname}:{state}:{i}"] = _plan(plan)
    return out


def compute() -> dict[str, Any]:
    return {cid: json.loads(json.dumps(build(obj))) for cid, obj in cases()}


GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def test_golden_covers_every_example() -> None:
    ids = {c[0] for c in cases()}
    assert ids == set(GOLDEN_DATA), (
        "cases differ from golden/inference_services.json: an example came or went"
    )
    assert sum(1 for k in ids if k.startswith("examples/")) >= 6  # 3 manifests, written and stored
    kinds = {c["kind"] for case in GOLDEN_DATA.values() for plan in case.values() for c in plan["children"]}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    assert any(plan["routeMirror"] for case in GOLDEN_DATA.values() for plan in case.values())
    assert any(plan["delete"] for case in GOLDEN_DATA.values() for plan in case.values())


def test_an_empty_autoscaling_block_is_autoscaling_with_the_api_defaults() -> None:
    written = GOLDEN_DATA["extra:autoscaling-defaults|written"]
    assert written == GOLDEN_DATA["extra:autoscaling-defaults|stored"]
    hpa = [c for c in written["defaults:stable:0"]["children"] if c["kind"] == "HorizontalPodAutoscaler"]
    assert [(h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) for h in hpa] == [(1, 3)]


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_children_and_plan_unchanged(case: tuple[str, dict[str, Any]]) -> None:
    cid, obj = case
    got = json.loads(json.dumps(build(obj)))
    want = GOLDEN_DATA[cid]
    assert set(got) == set(want)
    for key in want:
        # byte for byte: a child that serialises differently is a different object to compare
        for g, w in zip(got[key]["children"], want[key]["children"], strict=True):
            assert json.dumps(g, sort_keys=True) == json.dumps(w, sort_keys=True), (
                key,
                g["metadata"]["name"],
            )
        assert got[key] == want[key], key


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    rows = sorted(compute().items())  # one case a line
    compact = (",", ":")
    lines = [f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=compact)}" for k, v in rows]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(GOLDEN_DATA) or 'new'} -> {GOLDEN}")
