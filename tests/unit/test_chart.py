"""The Helm chart, rendered by Helm's own engine: `lint --strict`, every object valid against the Kubernetes
OpenAPI schemas (kubernetes-validate, offline), restricted pod security, the operator's arguments and
environment (read back through onnxops.settings), peering, the artifact PVCs and the PodDisruptionBudget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _chart import (
    NAMESPACE,
    ROOT,
    VALUE_SETS,
    lint,
    of_kind,
    one,
    pod_specs,
    render,
    render_files,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (dev extra)")

# The oldest Kubernetes the chart's features need, and the newest kubernetes-validate knows (strict).
KUBE_VERSION = "1.30.0"
KUBE_VERSIONS = sorted({KUBE_VERSION, kubernetes_validate.latest_version()})
# Kinds whose schemas are not Kubernetes built-ins, so kubernetes-validate cannot know them. Each is
# checked structurally by the tests that own it (test_chart_monitoring.py, the peering tests below).
NOT_BUILT_IN = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kopf.dev/v1", "ClusterKopfPeering"),
    ("kopf.dev/v1", "KopfPeering"),
}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict_is_clean(name: str) -> None:
    report = lint(VALUE_SETS[name])
    assert report["errors"] == []
    # severity 2 = warning, 3 = error; strict mode treats warnings as failures.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_is_valid_kubernetes(name: str) -> None:
    objects = render(VALUE_SETS[name])
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in NOT_BUILT_IN:
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_validation_catches_a_broken_object() -> None:
    # The validator is not a no-op: a misspelt field in a rendered Deployment is refused.
    dep = one(render(), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_namespaced_objects_name_their_namespace(name: str) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterKopfPeering"}
    for obj in render(VALUE_SETS[name]):
        ns = obj["metadata"].get("namespace")
        assert (ns is None) == (obj["kind"] in cluster_scoped), obj["kind"]


# --- pod security ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    specs = list(pod_specs(render(VALUE_SETS[name])))
    assert specs
    for _, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] == 10001
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "privileged" not in sc or sc["privileged"] is False
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


# --- the operator Deployment ------------------------------------------------------------------------------


def _container(values: dict[str, Any] | None = None) -> dict[str, Any]:
    dep = one(render(values), "Deployment")
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_probes_use_kopfs_liveness_endpoint() -> None:
    c = _container()
    assert "--liveness-port=8080" in c["args"]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["health"]
    assert port == 8080
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "health"}

    moved = _container({"operator": {"healthPort": 9000}})
    assert "--liveness-port=9000" in moved["args"]
    assert moved["ports"][0]["containerPort"] == 9000


# The operator image's ENTRYPOINT (images/operator.Dockerfile; test_images.py checks it says so).
OPERATOR_ENTRYPOINT = ["python", "-m", "onnxops"]
# Stands in for kopf.run in a real `onnxops operator` process: prints the arguments it was called with.
RECORDER = """import json, kopf
def _run(**kwargs):
    print("KOPF_RUN " + json.dumps(kwargs, default=str), flush=True)
kopf.run = _run
"""


def _kopf_run_kwargs(container: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run the container's command line (the real onnxops CLI and operator main, in this environment)
    with kopf.run replaced by a recorder, and return what kopf.run received."""
    (tmp_path / "sitecustomize.py").write_text(RECORDER)
    # the recorder first, then this tree's sources (not whatever copy the interpreter has installed)
    path = os.pathsep.join([str(tmp_path), str(ROOT / "operator")])
    env = {**os.environ, **_env(container), "PYTHONPATH": path}
    argv = container.get("command", OPERATOR_ENTRYPOINT) + container["args"]
    assert argv[0] == "python"
    out = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("KOPF_RUN ")]
    kwargs: dict[str, Any] = json.loads(line.removeprefix("KOPF_RUN "))
    return kwargs


def test_one_replica_runs_standalone(tmp_path: Path) -> None:
    objects = render()
    dep = one(objects, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][0] == "operator"
    assert "command" not in c  # the image's ENTRYPOINT (python -m onnxops) runs `operator`
    kw = _kopf_run_kwargs(c, tmp_path)
    assert kw["standalone"] is True and kw["peering_name"] is None
    assert kw["clusterwide"] is True and kw["namespaces"] == []
    assert kw["liveness_endpoint"] == "http://0.0.0.0:8080/healthz"
    # A single standalone operator must be gone before its successor starts.
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert not of_kind(objects, "CustomResourceDefinition")


def test_watch_namespaces_reach_kopf(tmp_path: Path) -> None:
    c = _container(VALUE_SETS["watch-namespaces"])
    kw = _kopf_run_kwargs(c, tmp_path)
    assert kw["clusterwide"] is False and kw["namespaces"] == ["team-a", "team-b"]


@pytest.mark.parametrize("name", ["replicas-2", "replicas-2-watch-namespaces"])
def test_replicas_use_kopf_peering(name: str) -> None:
    values = VALUE_SETS[name]
    objects = render(values)
    c = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--peering=onnxops" in c["args"]
    crds = {o["metadata"]["name"] for o in of_kind(objects, "CustomResourceDefinition")}
    assert crds == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    watched = values.get("watchNamespaces")
    peerings = of_kind(objects, "KopfPeering" if watched else "ClusterKopfPeering")
    assert [p["metadata"].get("namespace") for p in peerings] == (watched or [None])
    for p in peerings:
        assert p["metadata"]["name"] == "onnxops"
        # Created after the CRDs exist (Helm cannot map a kind it installs in the same pass).
        assert "post-install" in p["metadata"]["annotations"]["helm.sh/hook"]
    assert not of_kind(
        render({**values, "peering": {"name": "onnxops", "createCRDs": False, "createObjects": False}}),
        "CustomResourceDefinition",
    )


def test_replicas_draw_distinct_peering_priorities(tmp_path: Path) -> None:
    """Each operator pod joins the peering with its own random priority (drawn by `onnxops operator`
    when --peering is given without --priority): kopf pauses every pod of the
    highest priority when there are several, so equal priorities would stop all replicas."""
    c = _container({"replicaCount": 2, "operator": {"verbose": True}})
    priorities = set()
    for _ in range(4):
        kw = _kopf_run_kwargs(c, tmp_path)
        assert kw["standalone"] is False and kw["peering_name"] == "onnxops"
        assert 1 <= kw["priority"] <= 32767
        priorities.add(kw["priority"])
    assert len(priorities) >= 2


def test_environment_is_what_the_operator_settings_read() -> None:
    from onnxops.settings import Settings

    values = VALUE_SETS["monitoring"] | {
        "watchNamespaces": ["team-a", "team-b"],
        "image": {"repository": "registry.example/onnxops-operator", "tag": "1.2.3"},
        "childImages": {
            "trainer": {"repository": "registry.example/onnxops-trainer", "tag": "1.2.3"},
            "serving": {"repository": "registry.example/onnxops-serving", "tag": "1.2.4"},
            "pullPolicy": "Always",
        },
    }
    c = _container(values)
    s = Settings.from_env(_env(c))
    assert c["image"] == "registry.example/onnxops-operator:1.2.3"
    assert s.trainer_image == "registry.example/onnxops-trainer:1.2.3"
    assert s.serving_image == "registry.example/onnxops-serving:1.2.4"
    assert s.image_pull_policy == "Always"
    assert s.default_storage_uri == "pvc://onnxops-artifacts/models"
    assert s.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert s.watch_namespaces == ("team-a", "team-b")
    assert s.serving_port == 8080
    assert _env(c)["ONNXOPS_EXTRA"] == "1"
    assert "--verbose" in c["args"]


def test_operator_can_read_profiles_from_the_default_stores() -> None:
    """The operator reads profile.json itself for drift: the release-namespace PVC mounted read-only where
    pvc:// resolves, and for S3 the endpoint, region and credentials Secret (envFrom: no RBAC on Secrets)."""
    from onnxops.settings import PVC_MOUNT_ROOT

    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert _env(c)["ONNXOPS_PVC_ROOT"] == PVC_MOUNT_ROOT
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "artifacts"]
    assert mount == {
        "name": "artifacts",
        "mountPath": f"{PVC_MOUNT_ROOT}/onnxops-artifacts",
        "readOnly": True,
    }
    (vol,) = [v for v in pod["volumes"] if v["name"] == "artifacts"]
    assert vol["persistentVolumeClaim"] == {"claimName": "onnxops-artifacts", "readOnly": True}
    c = _container(VALUE_SETS["s3"])
    env = _env(c)
    assert env["AWS_ENDPOINT_URL"] == env["ONNXOPS_S3_ENDPOINT_URL"]
    assert c["envFrom"] == [{"secretRef": {"name": env["ONNXOPS_DEFAULT_CREDENTIALS_SECRET"]}}]


def test_default_images_follow_the_app_version() -> None:
    from onnxops import __version__
    from onnxops.settings import Settings

    c = _container()
    s = Settings.from_env(_env(c))
    assert c["image"].endswith(f"/onnxops-operator:{__version__}")
    assert s.trainer_image == Settings().trainer_image
    assert s.serving_image == Settings().serving_image
    assert s.watch_namespaces == ()


def test_digest_pins_the_image() -> None:
    digest = "sha256:" + "a" * 64
    c = _container({"image": {"repository": "r/op", "tag": "1.0", "digest": digest}})
    assert c["image"] == f"r/op:1.0@{digest}"


def test_s3_store_settings() -> None:
    from onnxops.settings import Settings

    objects = render(VALUE_SETS["s3"])
    env = _env(one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert Settings.from_env(env).default_storage_uri == "s3://models/prod"
    assert env["ONNXOPS_S3_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
    assert env["ONNXOPS_S3_REGION"] == "eu-west-1"
    # Only the Secret's name travels; nothing in the chart reads or copies its values.
    assert env["ONNXOPS_DEFAULT_CREDENTIALS_SECRET"] == "onnxops-s3"
    assert not of_kind(objects, "Secret")
    assert not of_kind(objects, "PersistentVolumeClaim")


# --- the artifact store ---------------------------------------------------------------------------------


def test_default_artifact_pvc() -> None:
    pvc = one(render(), "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "onnxops-artifacts"
    assert pvc["metadata"]["namespace"] == NAMESPACE
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in pvc["spec"]  # the cluster's default class
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_pvc_in_every_served_namespace_with_custom_class() -> None:
    values = {
        "watchNamespaces": ["team-a", "team-b"],
        "artifacts": {
            "pvc": {
                "storageClassName": "nfs",
                "accessModes": ["ReadWriteOnce"],
                "size": "1Gi",
                "keep": False,
                "extraNamespaces": ["team-b", "ml"],
            }
        },
    }
    pvcs = of_kind(render(values), "PersistentVolumeClaim")
    assert sorted(p["metadata"]["namespace"] for p in pvcs) == sorted([NAMESPACE, "team-a", "team-b", "ml"])
    for p in pvcs:
        assert p["spec"]["storageClassName"] == "nfs"
        assert p["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert "annotations" not in p["metadata"]


def test_pod_disruption_budget_selects_the_operator_pods() -> None:
    objects = render({"replicaCount": 2})
    pdb = one(objects, "PodDisruptionBudget")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not of_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


def test_notes_tell_the_crd_upgrade_path() -> None:
    notes = render_files()["onnxops/templates/NOTES.txt"]
    assert "kubectl apply --server-side -f charts/onnxops/crds/" in notes
    assert "pvc://onnxops-artifacts/models" in notes


def test_chart_crds_are_valid_and_match_the_project_crds() -> None:
    from _chart import ROOT, load_chart_crds

    crds = load_chart_crds()
    assert set(crds) == {"TrainingJob", "ModelVersion", "InferenceService", "Model"}
    for crd in crds.values():
        kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
        assert crd["spec"]["group"] == "onnxops.dev"
        assert "onnxops" in crd["spec"]["names"]["categories"]
    # `kubectl apply --server-side -f charts/onnxops/crds/` (docs/helm.md) applies the project's CRDs
    for f in (ROOT / "crds").glob("*.yaml"):
        assert (ROOT / "charts" / "onnxops" / "crds" / f.name).read_text() == f.read_text()


def test_chart_app_version_is_the_project_version() -> None:
    """kind-up builds images tagged with the project version; the chart deploys its appVersion."""
    import tomllib

    import yaml
    from _chart import CHART, ROOT

    from onnxops import __version__

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == project == __version__


def test_training_job_deadline_and_resources_reach_the_settings() -> None:
    from onnxops.settings import Settings

    s = Settings.from_env(_env(_container()))
    assert s.job_deadline_seconds == 86400
    assert s.trainer_resources == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    custom = {
        "operator": {
            "jobDeadlineSeconds": 0,
            "trainerResources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
        }
    }
    s = Settings.from_env(_env(_container(custom)))
    assert s.job_deadline_seconds == 0
    assert s.trainer_resources == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}}
