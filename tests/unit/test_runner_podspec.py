"""Pure pod -> process planning of the local runtime (kubelet semantics per the Kubernetes docs)."""

from __future__ import annotations

import base64

import pytest

from onnxops.local.runner.images import LocalImage, container_argv, localize_argv, lookup
from onnxops.local.runner.podspec import PlanError, expand, path_map, plan_container, rewrite

STATE = "/state"


def make_pod(**container: object) -> dict:
    c = {"name": "main", "image": "ghcr.io/onnxops/onnxops-trainer:0.1.0", **container}
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "0123456789abcdef", "labels": {"app": "a"}},
        "spec": {
            "containers": [c],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "onnxops-artifacts"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }


def plan(pod: dict, **kw: object):
    args = {
        "state_dir": STATE,
        "pod_ip": "127.0.1.7",
        "python": "/venv/bin/python",
        "configmaps": {},
        "secrets": {},
        "base_env": {"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "x"},
        **kw,
    }
    return plan_container(pod, pod["spec"]["containers"][0], **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "image,ok",
    [
        ("ghcr.io/onnxops/onnxops-trainer:0.1.0", True),
        ("registry.local:5000/x/onnxops-serving:dev", True),
        ("onnxops-operator:latest", True),
        ("ghcr.io/onnxops/onnxops-serving", True),
        ("docker.io/library/python:3.11", False),
        ("ghcr.io/onnxops/onnxops-trainer-evil:1", False),
        ("ghcr.io/other/not-onnxops-serving:1", False),
    ],
)
def test_only_our_images_map_locally(image: str, ok: bool) -> None:
    assert (lookup(image) is not None) is ok


def test_command_and_args_follow_kubernetes_semantics() -> None:
    img = LocalImage(("ep",), ("cmd1",))
    assert container_argv(img, None, None) == ["ep", "cmd1"]
    assert container_argv(img, None, ["a"]) == ["ep", "a"]  # args replace CMD only
    assert container_argv(img, ["c"], None) == ["c"]  # command replaces ENTRYPOINT and drops CMD
    assert container_argv(img, ["c"], ["a"]) == ["c", "a"]
    assert localize_argv(["python3", "-m", "x"], "/py") == ["/py", "-m", "x"]
    assert localize_argv(["/usr/local/bin/python3.11", "-c", "1"], "/py") == ["/py", "-c", "1"]
    assert localize_argv(["onnxops", "serve"], "/py") == ["/py", "-m", "onnxops", "serve"]


def test_var_expansion_like_the_kubelet() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"  # unresolved references stay as written
    assert expand("$$(A)", env) == "$(A)"  # $$ escapes
    assert expand("cost $5", env) == "cost $5"


def test_paths_map_to_the_state_dir_and_values_are_rewritten() -> None:
    pod = make_pod(
        volumeMounts=[
            {"name": "models", "mountPath": "/var/lib/onnxops/pvc/onnxops-artifacts"},
            {"name": "scratch", "mountPath": "/data/work/"},
        ]
    )
    m = path_map(pod, pod["spec"]["containers"][0], STATE)
    assert m["/var/lib/onnxops/pvc/onnxops-artifacts"] == "/state/pvc/onnxops-artifacts"
    assert m["/var/lib/onnxops/pvc"] == "/state/pvc"  # the claim's parent stands for the PVC root
    assert m["/data/work"] == "/state/pods/ns_p_01234567/volumes/scratch"
    assert m["/dev/termination-log"] == "/state/pods/ns_p_01234567/termination/main"
    assert rewrite("/data/work/a/b", m) == "/state/pods/ns_p_01234567/volumes/scratch/a/b"
    assert rewrite("/data/workers", m) == "/data/workers"  # a prefix of a name is not a path prefix
    assert rewrite("--out=/data/work", m) == "--out=/data/work"  # only values that START with the path
    assert rewrite("/var/lib/onnxops/pvc/onnxops-artifacts/m/1", m) == "/state/pvc/onnxops-artifacts/m/1"


def test_plan_environment_and_argv() -> None:
    pod = make_pod(
        command=["python", "-m", "onnxops.trainer"],
        args=["--out", "$(OUT)/x", "--name=$(POD)"],
        env=[
            {"name": "OUT", "value": "/data/work"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "ONNXOPS_TERMINATION_LOG", "value": "/dev/termination-log"},
        ],
        volumeMounts=[{"name": "scratch", "mountPath": "/data/work"}],
    )
    p = plan(pod)
    scratch = "/state/pods/ns_p_01234567/volumes/scratch"
    assert p.argv == ["/venv/bin/python", "-m", "onnxops.trainer", "--out", f"{scratch}/x", "--name=p"]
    assert p.env["OUT"] == scratch and p.env["POD"] == "p" and p.env["IP"] == "127.0.1.7"
    assert p.env["APP"] == "a"
    assert p.env["ONNXOPS_HOST"] == "127.0.1.7" and p.env["PYTHONUNBUFFERED"] == "1"
    assert p.env["ONNXOPS_TERMINATION_LOG"] == p.termination_path
    assert p.env["PATH"] == "/usr/bin"
    assert "AWS_SECRET_ACCESS_KEY" not in p.env  # the runtime's own environment does not leak into pods
    assert p.cwd == "/state/pods/ns_p_01234567"


def test_configmap_and_secret_refs_and_volumes() -> None:
    cms = {"cfg": {"data": {"k": "v"}}}
    secrets = {"s": {"data": {"pw": base64.b64encode(b"hunter2").decode()}}}
    pod = make_pod(
        env=[
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        volumeMounts=[{"name": "sv", "mountPath": "/etc/s"}],
    )
    pod["spec"]["volumes"].append({"name": "sv", "secret": {"secretName": "s"}})
    p = plan(pod, configmaps=cms, secrets=secrets)
    assert p.env["K"] == "v" and p.env["PW"] == "hunter2" and p.env["CFG_k"] == "v"
    assert "OPT" not in p.env
    assert p.files == {"/state/pods/ns_p_01234567/volumes/sv/pw": b"hunter2"}


def test_plan_errors_name_the_problem() -> None:
    with pytest.raises(PlanError) as e:
        plan(make_pod(image="nginx:1"))
    assert e.value.reason == "ImageNotLocal" and '"nginx:1"' in e.value.message
    with pytest.raises(PlanError) as e:
        plan(make_pod(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]))
    assert e.value.reason == "CreateContainerConfigError" and 'secret "s" not found' in e.value.message
    with pytest.raises(PlanError) as e:
        plan(make_pod(volumeMounts=[{"name": "ghost", "mountPath": "/g"}]))
    assert "ghost" in e.value.message
