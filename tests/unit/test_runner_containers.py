"""The container backend's plan: a pod spec's container -> the `podman run` command (flags as documented in
podman-run(1)), the files it needs on the host, and the ServiceAccount projection."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from onnxops.local.runner.containers import ContainerBackend
from onnxops.local.runner.podspec import SA_MOUNT, PlanError, ServiceAccountToken, plan_container

POD = {
    "metadata": {"name": "iris-v1-abc", "namespace": "ml", "uid": "0123456789abcdef"},
    "spec": {
        "serviceAccountName": "runner",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "volumes": [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": "onnxops-artifacts"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}},
        ],
        "containers": [],
    },
}
CONTAINER = {
    "name": "server",
    "image": "ghcr.io/onnxops/onnxops-serving:0.1.0",
    "args": ["--model-uri", "pvc://onnxops-artifacts/iris/1/model.onnx", "--port", "$(PORT)"],
    "env": [
        {"name": "PORT", "value": "8080"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ],
    "envFrom": [{"secretRef": {"name": "creds"}}],
    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
    "volumeMounts": [
        {"name": "artifacts", "mountPath": "/var/lib/onnxops/pvc/onnxops-artifacts", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "conf", "mountPath": "/etc/conf"},
    ],
    "terminationMessagePath": "/dev/termination-log",
}
SECRETS = {"creds": {"data": {"AWS_ACCESS_KEY_ID": base64.b64encode(b"AK").decode()}}}
CONFIGMAPS = {"c": {"data": {"a.yaml": "x: 1"}}}
SA = ServiceAccountToken("tok", b"CA", "ml", "127.0.0.1", 6443)
BACKEND = ContainerBackend(("podman", "--runtime", "runc"), ("--ulimit", "nofile=1024:1024"))


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_the_run_command(tmp_path: Path) -> None:
    state = str(tmp_path)
    plan = BACKEND.plan(
        POD,
        CONTAINER,
        state_dir=state,
        pod_ip="127.0.3.4",
        configmaps=CONFIGMAPS,
        secrets=SECRETS,
        service_account=SA,
    )
    argv = plan.argv
    assert argv[:5] == ["podman", "--runtime", "runc", "run", "--rm"]
    assert flag_values(argv, "--network") == ["host"] and "--read-only" in argv
    assert flag_values(argv, "--user") == ["10001:10001"]
    assert flag_values(argv, "--ulimit") == ["nofile=1024:1024"]
    env = dict(e.split("=", 1) for e in flag_values(argv, "--env"))
    assert env["PORT"] == "8080" and env["POD"] == "iris-v1-abc" and env["AWS_ACCESS_KEY_ID"] == "AK"
    assert env["ONNXOPS_HOST"] == "127.0.3.4"
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "6443")
    assert "KUBECONFIG" not in env  # in a container the in-cluster path is the real one
    volumes = {v.split(":")[1]: v for v in flag_values(argv, "--volume")}
    assert volumes["/var/lib/onnxops/pvc/onnxops-artifacts"] == (
        f"{tmp_path}/pvc/onnxops-artifacts:/var/lib/onnxops/pvc/onnxops-artifacts:ro"
    )
    assert volumes["/tmp"].endswith("/volumes/tmp:/tmp:rw")
    assert volumes[SA_MOUNT].endswith(f"/serviceaccount:{SA_MOUNT}:ro")
    assert volumes["/dev/termination-log"] == f"{plan.termination_path}:/dev/termination-log:rw"
    # no command: the image's ENTRYPOINT, the args after the image, $(VAR) expanded
    image_at = argv.index("ghcr.io/onnxops/onnxops-serving:0.1.0")
    assert argv[image_at + 1 :] == [
        "--model-uri",
        "pvc://onnxops-artifacts/iris/1/model.onnx",
        "--port",
        "8080",
    ]
    assert "--entrypoint" not in argv
    sa_dir = volumes[SA_MOUNT].split(":")[0]
    assert plan.files[f"{sa_dir}/token"] == b"tok" and plan.files[f"{sa_dir}/namespace"] == b"ml"
    assert plan.files[f"{sa_dir}/ca.crt"] == b"CA"
    assert any(p.endswith("/volumes/conf/a.yaml") for p in plan.files)
    assert plan.owner == (10001, 10001)
    assert plan.termination_path not in plan.dirs and sa_dir in plan.dirs
    assert plan.cleanup == [
        "podman",
        "--runtime",
        "runc",
        "rm",
        "--force",
        "--time",
        "0",
        argv[argv.index("--name") + 1],
    ]


def test_command_replaces_the_entrypoint_and_no_token_without_automount(tmp_path: Path) -> None:
    pod = {**POD, "spec": {**POD["spec"], "automountServiceAccountToken": False, "securityContext": {}}}
    c = {
        "name": "c",
        "image": "img:1",
        "command": ["python", "-m", "x"],
        "args": ["a"],
        "workingDir": "/work",
    }
    plan = BACKEND.plan(
        pod,
        c,
        state_dir=str(tmp_path),
        pod_ip="127.0.3.5",
        configmaps=CONFIGMAPS,
        secrets={},
        service_account=SA,
    )
    argv = plan.argv
    assert argv[argv.index("--entrypoint") + 1 :] == ["python", "img:1", "-m", "x", "a"]
    assert flag_values(argv, "--workdir") == ["/work"]
    assert "--user" not in argv and "--read-only" not in argv and plan.owner is None
    assert not any(v.endswith(f"{SA_MOUNT}:ro") for v in flag_values(argv, "--volume"))
    assert "KUBERNETES_SERVICE_HOST" not in " ".join(flag_values(argv, "--env"))


def test_a_missing_secret_waits_as_the_kubelet_does(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as e:
        BACKEND.plan(
            POD, CONTAINER, state_dir=str(tmp_path), pod_ip="127.0.3.4", configmaps=CONFIGMAPS, secrets={}
        )
    assert e.value.reason == "CreateContainerConfigError" and 'secret "creds" not found' in e.value.message


def test_process_backend_gets_the_same_files_and_a_kubeconfig(tmp_path: Path) -> None:
    c = {**CONTAINER, "image": "ghcr.io/onnxops/onnxops-serving:0.1.0"}
    plan = plan_container(
        POD,
        c,
        state_dir=str(tmp_path),
        pod_ip="127.0.3.4",
        python="/usr/bin/python3",
        configmaps=CONFIGMAPS,
        secrets=SECRETS,
        base_env={},
        service_account=SA,
    )
    kubeconfig = Path(plan.env["KUBECONFIG"])
    assert plan.files[str(kubeconfig.parent / "token")] == b"tok"
    import yaml

    cfg = yaml.safe_load(plan.files[str(kubeconfig)])
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert cfg["users"][0]["user"]["tokenFile"] == str(kubeconfig.parent / "token")
    assert plan.env["KUBERNETES_SERVICE_PORT"] == "6443"


@pytest.mark.parametrize(
    ("env", "server"),
    [
        (
            {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"},
            "https://127.0.0.1:6443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, "https://[fd00::1]:443"),
        ({}, "https://kubernetes.default.svc"),
    ],
)
def test_operator_login_takes_the_service_address_from_the_env(env: dict, server: str) -> None:
    from onnxops.controller.handlers import in_cluster_server

    assert in_cluster_server("https://kubernetes.default.svc", env) == server
