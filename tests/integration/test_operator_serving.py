"""The real operator (kopf) against the local runtime serving real ONNX Runtime servers: canary success,
SLO abort and its hold, a new spec after an abort, readiness timeout, verification failure, deletion and
garbage collection, zero writes on a converged object, and children repaired within seconds of a deletion
or a hand edit."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _operator_env import Cluster, local_cluster, operator, operator_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    model = LogisticRegression(max_iter=300).fit(x, y)
    return bytes(to_onnx(model, x[:1], options={id(model): {"zipmap": False}}).SerializeToString())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("serving")
    metrics = work / "metrics.json"
    with (
        local_cluster(work / "rt") as c,
        operator(
            c, {"ONNXOPS_METRICS_PROVIDER": "_fake_metrics:provider", "ONNXOPS_FAKE_METRICS": str(metrics)}
        ),
    ):
        yield c, work


def add_version(c: Cluster, work: Path, blob: bytes, model: str, v: int, *, sha: str | None = None) -> Path:
    path = work / model / str(v) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": f"{model}-v{v}"},
            "spec": {
                "model": model,
                "version": v,
                "artifact": {"uri": f"file://{path}", "sha256": sha or hashlib.sha256(blob).hexdigest()},
            },
        }
    )
    return path


def verified(c: Cluster, name: str, phase: str = "Ready") -> dict[str, Any]:
    return c.wait_status("ModelVersion", name, lambda s: s.get("phase") in ("Ready", "Failed"))["status"]


def isvc(name: str, model: str, version: int, **spec: Any) -> dict[str, Any]:
    body = {
        "model": model,
        "version": version,
        "replicas": 2,
        "rollout": {
            "steps": [{"weight": 50, "pause": "1s"}],
            "bakeTime": "2s",
            "progressDeadline": "60s",
            "analysis": {"minRequests": 10, "failureLimit": 2},
        },
    }
    body.update(spec)
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": body,
    }


def cond(status: dict[str, Any], type_: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == type_), None)


def deployments(c: Cluster, name: str) -> list[str]:
    items = c.list("Deployment", api="apps/v1", label_selector={"onnxops.dev/inference-service": name})
    return sorted(d["metadata"]["name"] for d in items if not d["metadata"].get("deletionTimestamp"))


def test_canary_promotion_abort_hold_new_spec_and_quiet(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    c, work = env
    for v in (1, 2, 3, 4):
        add_version(c, work, onnx_model, "shop", v)
    for v in (1, 2, 3, 4):
        assert verified(c, f"shop-v{v}")["phase"] == "Ready"
    c.create(isvc("shop", "shop", 1))
    st = c.wait_status(
        "InferenceService",
        "shop",
        lambda s: s.get("stableVersion") == 1 and cond(s, "Ready") == "True",
        timeout=90,
    )["status"]
    assert st["url"] == "http://shop.default.svc.cluster.local" and st["phase"] == "Ready"
    svc = c.get("Service", "shop", api="v1")
    assert svc and svc["spec"]["selector"] == {"onnxops.dev/inference-service": "shop"}

    # canary success: 50 % (1 of 2 pods each), analysis passes, promotion, bake, old version removed
    c.patch("InferenceService", "shop", {"spec": {"version": 2}})
    c.wait_status("InferenceService", "shop", lambda s: s.get("canaryVersion") == 2)
    assert c.wait("1+1 pods split", lambda: deployments(c, "shop") == ["shop-v1", "shop-v2"])
    st = c.wait_status("InferenceService", "shop", lambda s: s.get("stableVersion") == 2, timeout=90)[
        "status"
    ]
    assert st.get("canaryVersion") is None
    st = c.wait_status("InferenceService", "shop", lambda s: s.get("previousVersion") is None, timeout=30)[
        "status"
    ]
    c.wait("v1 removed after the bake", lambda: deployments(c, "shop") == ["shop-v2"])
    assert [h["action"] for h in st["history"]] == ["Deployed", "Promoted"]
    reasons = [e["reason"] for e in c.events("shop")]
    for r in ("Deployed", "CanaryStarted", "Promoted", "BakeEnded"):
        assert r in reasons, reasons

    # SLO breach on v3: aborted after failureLimit checks, v2 keeps serving, v3 rejected, the abort holds
    (work / "metrics.json").write_text(json.dumps({"3": [100, 40, 5.0]}))
    c.patch("InferenceService", "shop", {"spec": {"version": 3}})
    obj = c.wait_status(
        "InferenceService",
        "shop",
        lambda s: (s.get("rollback") or {}).get("from") == 3 and s.get("phase") == "Degraded",
        timeout=90,
    )
    st, gen = obj["status"], obj["metadata"]["generation"]
    assert st["rollback"]["reason"] == "AnalysisFailed" and st["rollback"]["to"] == 2
    assert st["rollback"]["generation"] == gen and "error rate" in st["rollback"]["message"]
    assert st["stableVersion"] == 2 and st.get("canaryVersion") is None and st["phase"] == "Degraded", st
    assert cond(st, "Ready") == "True" and cond(st, "Degraded") == "True" and cond(st, "Stalled") == "True"
    assert c.get("ModelVersion", "shop-v3")["status"].get("rejected") is True
    c.wait("v3 removed", lambda: deployments(c, "shop") == ["shop-v2"])
    time.sleep(2.0)
    held = c.get("InferenceService", "shop")["status"]
    assert held.get("canaryVersion") is None and held["stableVersion"] == 2

    # a converged object: reconciling it (forced wake-ups) writes nothing
    ctx = operator_context()
    # the operator alone writes these objects' status/spec: their resourceVersion must not move; the
    # Deployment's status belongs to the Deployment controller, so its generation (spec) is compared
    watched = [
        ("InferenceService", "shop", "onnxops.dev/v1alpha1", "resourceVersion"),
        ("ModelVersion", "shop-v2", "onnxops.dev/v1alpha1", "resourceVersion"),
        ("Deployment", "shop-v2", "apps/v1", "generation"),
        ("Service", "shop", "v1", "resourceVersion"),
    ]

    def versions() -> list[Any]:
        return [c.get(k, n, api=a)["metadata"][f] for k, n, a, f in watched]

    # converged: v2 runs all its pods again (after the abort it scales back from its canary-step share)
    c.wait_status(
        "InferenceService",
        "shop",
        lambda s: (
            s.get("reason") == "AnalysisFailed"
            and all(e["ready"] >= e.get("desired", 0) for e in s.get("capacity") or [{"ready": -1}])
        ),
        timeout=60,
    )
    time.sleep(1.0)
    before_rv = versions()
    before_writes, before_gets = ctx.client.writes, ctx.client.requests["GET"]
    for _ in range(3):
        ctx.wake_threadsafe("InferenceService", "default", "shop")
        ctx.wake_threadsafe("ModelVersion", "default", "shop-v2")
        time.sleep(1.0)
    assert ctx.client.requests["GET"] > before_gets  # it did reconcile
    assert ctx.client.writes == before_writes
    assert versions() == before_rv

    # a new spec after the abort: rolls out normally, the hold is gone
    c.patch("InferenceService", "shop", {"spec": {"version": 4}})
    st = c.wait_status(
        "InferenceService",
        "shop",
        lambda s: s.get("stableVersion") == 4 and s.get("previousVersion") is None,
        timeout=90,
    )["status"]
    assert st["phase"] == "Ready" and cond(st, "Degraded") is None and cond(st, "Stalled") is None
    assert st["rollback"]["from"] == 3  # kept as a record


def test_readiness_timeout_and_verification_failure(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    c, work = env
    add_version(c, work, onnx_model, "late", 1)
    vanishing = add_version(c, work, onnx_model, "late", 2)
    add_version(c, work, onnx_model, "late", 3, sha="0" * 64)
    assert verified(c, "late-v1")["phase"] == "Ready"
    assert verified(c, "late-v2")["phase"] == "Ready"
    bad = verified(c, "late-v3")
    assert bad["phase"] == "Failed" and "verification failed" in bad["message"]
    assert cond(bad, "Verified") == "False"
    vanishing.unlink()  # v2 verified, but its pods can never load it
    c.create(
        isvc(
            "late",
            "late",
            1,
            replicas=1,
            rollout={"steps": [{"weight": 50}], "progressDeadline": "4s", "bakeTime": "1s"},
        )
    )
    c.wait_status(
        "InferenceService",
        "late",
        lambda s: s.get("stableVersion") == 1 and cond(s, "Ready") == "True",
        timeout=90,
    )
    c.patch("InferenceService", "late", {"spec": {"version": 2}})
    st = c.wait_status(
        "InferenceService", "late", lambda s: (s.get("rollback") or {}).get("from") == 2, timeout=90
    )["status"]
    assert st["rollback"]["reason"] == "ProgressDeadlineExceeded" and st["stableVersion"] == 1
    assert c.get("ModelVersion", "late-v2")["status"].get("rejected") is True
    c.patch("InferenceService", "late", {"spec": {"version": 3}})
    st = c.wait_status(
        "InferenceService", "late", lambda s: (s.get("rollback") or {}).get("from") == 3, timeout=60
    )["status"]
    assert st["rollback"]["reason"] == "VerificationFailed" and st["stableVersion"] == 1
    assert cond(st, "Ready") == "True"
    assert "late-v3" not in deployments(c, "late")


def test_deletion_waits_for_servers_and_children_are_collected(
    env: tuple[Cluster, Path], onnx_model: bytes
) -> None:
    c, work = env
    add_version(c, work, onnx_model, "gone", 1)
    assert verified(c, "gone-v1")["phase"] == "Ready"
    monitoring = {"interval": "1s", "drift": {"window": "5s", "minSamples": 10}, "onDrift": "Alert"}
    c.create(isvc("gone", "gone", 1, replicas=1, monitoring=monitoring))
    c.wait_status("InferenceService", "gone", lambda s: cond(s, "Ready") == "True", timeout=90)
    # the drift loop runs on its interval (no profile, no traffic: inconclusive, never an action)
    st = c.wait_status("InferenceService", "gone", lambda s: (s.get("drift") or {}).get("evaluatedAt"))[
        "status"
    ]
    assert st["drift"]["verdict"] == "Inconclusive" and cond(st, "DriftDetected") == "False", st["drift"]
    c.wait_status("ModelVersion", "gone-v1", lambda s: s.get("servedBy") == ["default/gone"])
    c.delete("ModelVersion", "gone-v1")
    st = c.wait_status("ModelVersion", "gone-v1", lambda s: cond(s, "DeletionBlocked") == "True")["status"]
    assert st["servedBy"] == ["default/gone"]
    c.delete("InferenceService", "gone")
    c.wait(
        "children collected",
        lambda: deployments(c, "gone") == [] and c.get("Service", "gone", api="v1") is None,
        timeout=60,
    )
    c.wait("the ModelVersion deleted", lambda: c.get("ModelVersion", "gone-v1") is None, timeout=60)


HTTPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
    "spec": {
        "group": "gateway.networking.k8s.io",
        "scope": "Namespaced",
        "names": {
            "plural": "httproutes",
            "singular": "httproute",
            "kind": "HTTPRoute",
            "listKind": "HTTPRouteList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_http_route_weights_follow_the_canary(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    """With spec.rollout.httpRoute the operator creates per-version Services and sets exact weights on the
    user's HTTPRoute (only on the backendRefs pointing at this InferenceService); kubectl shows it."""
    c, work = env

    async def register() -> None:
        c.runtime.api.register_crd(HTTPROUTE_CRD)

    c.call(register)
    for v in (1, 2):
        add_version(c, work, onnx_model, "routed", v)
        assert verified(c, f"routed-v{v}")["phase"] == "Ready"
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "routed", "port": 80}, {"name": "static", "port": 80}]}],
        },
    }
    c.create(route)
    c.create(
        isvc(
            "routed",
            "routed",
            1,
            replicas=1,
            rollout={
                "steps": [{"weight": 30, "pause": "4s"}],
                "bakeTime": "30s",
                "httpRoute": {"name": "web"},
            },
        )
    )
    c.wait_status("InferenceService", "routed", lambda s: cond(s, "Ready") == "True", timeout=90)

    def refs() -> list[tuple[str, int | None]]:
        r = c.get("HTTPRoute", "web", api="gateway.networking.k8s.io/v1")
        return [(b["name"], b.get("weight")) for b in r["spec"]["rules"][0]["backendRefs"]]

    assert c.wait("100 % to v1", lambda: refs() == [("static", None), ("routed-v1", 100)])
    assert c.get("Service", "routed-v1", api="v1")["spec"]["selector"]["onnxops.dev/version"] == "1"
    c.patch("InferenceService", "routed", {"spec": {"version": 2}})
    assert c.wait(
        "30 % to the canary", lambda: refs() == [("static", None), ("routed-v1", 70), ("routed-v2", 30)]
    )
    c.wait_status("InferenceService", "routed", lambda s: s.get("stableVersion") == 2, timeout=90)
    # promoted: the previous version keeps the share of its one warm pod (1 of 2 pods) for the bake time
    assert c.wait("bake share", lambda: refs() == [("static", None), ("routed-v1", 50), ("routed-v2", 50)])

    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if Path(kubectl).exists():
        out = subprocess.run(
            [kubectl, "--kubeconfig", c.kubeconfig, "get", "oisvc", "routed"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        header, line = out.splitlines()[:2]
        starts = [m.start() for m in re.finditer(r"\S+", header)]
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        cols = dict(zip(header.split(), cells, strict=True))
        assert cols["MODEL"] == "routed" and cols["STABLE"] == "2" and cols["READY"] == "True", out


def test_deleted_and_edited_children_come_back_within_seconds(
    env: tuple[Cluster, Path], onnx_model: bytes
) -> None:
    """No drift interval, nothing pending: only the children's watch events can wake the service before
    the 300 s idle re-check."""
    c, work = env
    add_version(c, work, onnx_model, "heal", 1)
    assert verified(c, "heal-v1")["phase"] == "Ready"
    c.create(isvc("heal", "heal", 1, autoscaling={"minReplicas": 1, "maxReplicas": 2}))
    c.wait_status("InferenceService", "heal", lambda s: cond(s, "Ready") == "True", timeout=90)
    children = [
        ("v1", "Service", "heal"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "heal-v1"),
        ("apps/v1", "Deployment", "heal-v1"),
    ]
    for api, kind, name in children:
        old = c.get(kind, name, api=api)
        assert old is not None, (kind, name)
        c.delete(kind, name, api=api)

        def recreated(
            api: str = api, kind: str = kind, name: str = name, uid: str = old["metadata"]["uid"]
        ) -> bool:
            new = c.get(kind, name, api=api)
            return new is not None and new["metadata"]["uid"] != uid

        c.wait(f"{kind} {name} recreated", recreated, timeout=20)
    # a hand edit by another field manager (here: pausing the Deployment) is undone just as fast
    path = "/apis/apps/v1/namespaces/default/deployments/heal-v1"
    c.call(
        lambda: c.client.request(
            "PATCH",
            path,
            body={"spec": {"paused": True}},
            content_type="application/merge-patch+json",
            params={"fieldManager": "kubectl-patch"},
        )
    )
    c.wait(
        "the pause undone",
        lambda: (
            "paused"
            not in (c.get("Deployment", "heal-v1", api="apps/v1") or {"spec": {"paused": True}})["spec"]
        ),
        timeout=20,
    )
    c.delete("InferenceService", "heal")


def test_one_services_rollback_leaves_another_service_free(
    env: tuple[Cluster, Path], onnx_model: bytes
) -> None:
    """Two InferenceServices of one model in one namespace: A's analysis rolls v2 back; B still rolls v2
    out. The rejection is A's (its status), the ModelVersion only says who rejected it."""
    c, work = env
    for v in (1, 2):
        add_version(c, work, onnx_model, "pair", v)
        assert verified(c, f"pair-v{v}")["phase"] == "Ready"
    (work / "metrics.json").write_text(json.dumps({"pair-a/2": [100, 40, 5.0]}))  # v2 fails for A only
    for name in ("pair-a", "pair-b"):
        c.create(isvc(name, "pair", 1, replicas=1))
        c.wait_status("InferenceService", name, lambda s: s.get("stableVersion") == 1, timeout=90)
    c.patch("InferenceService", "pair-a", {"spec": {"version": "latest"}})
    st = c.wait_status(
        "InferenceService", "pair-a", lambda s: (s.get("rollback") or {}).get("from") == 2, timeout=90
    )["status"]
    assert st["stableVersion"] == 1 and [e["version"] for e in st["rejectedVersions"]] == [2]
    mv2 = c.wait_status("ModelVersion", "pair-v2", lambda s: "pair-a" in (s.get("rejectedBy") or {}))
    assert mv2["status"]["rejectedBy"]["pair-a"]["reason"] == "AnalysisFailed"
    # B, same model, same namespace, `latest`: v2 is not blocked for it
    c.patch("InferenceService", "pair-b", {"spec": {"version": "latest"}})
    st = c.wait_status("InferenceService", "pair-b", lambda s: s.get("stableVersion") == 2, timeout=90)[
        "status"
    ]
    assert not st.get("rejectedVersions") and not st.get("rollback")
    assert set(c.get("ModelVersion", "pair-v2")["status"]["rejectedBy"]) == {"pair-a"}
    # A stays off v2 after a spec change ends its hold (its own record), until it pins v2
    c.patch("InferenceService", "pair-a", {"spec": {"replicas": 2}})
    c.wait_status(
        "InferenceService",
        "pair-a",
        lambda s: (
            s.get("observedGeneration") == c.get("InferenceService", "pair-a")["metadata"]["generation"]
        ),
    )
    time.sleep(2.0)
    st = c.get("InferenceService", "pair-a")["status"]
    assert st["stableVersion"] == 1 and st.get("canaryVersion") is None, st
