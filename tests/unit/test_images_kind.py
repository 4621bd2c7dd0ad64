"""The kind quick start and the image build script: kind-config.yaml's port mappings line up with the
NodePorts in deploy/kind/, the manifests are valid Kubernetes, the Prometheus config passes promtool, the
kind values pass the chart, and the scripts run the right commands (fake engines record them)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"
DEPLOY = ROOT / "deploy" / "kind"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _node_ports() -> dict[int, dict[str, Any]]:
    out = {}
    for f in DEPLOY.glob("*.yaml"):
        for d in _docs(f):
            if d.get("kind") == "Service" and d["spec"].get("type") == "NodePort":
                for p in d["spec"]["ports"]:
                    out[p["nodePort"]] = d
    return out


def test_kind_port_mappings_reach_the_demo_and_prometheus() -> None:
    cfg = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    mappings = {m["hostPort"]: m for n in cfg["nodes"] for m in n.get("extraPortMappings", [])}
    assert set(mappings) == {8080, 9090}
    for m in mappings.values():
        assert m["listenAddress"] == "127.0.0.1"
    ports = _node_ports()
    assert ports[mappings[8080]["containerPort"]]["metadata"]["name"] == "iris-nodeport"
    assert ports[mappings[9090]["containerPort"]]["metadata"]["name"] == "prometheus"


def test_demo_service_selects_the_iris_serving_pods() -> None:
    from onnxops.builders import labels
    from onnxops.settings import Settings

    svc = _node_ports()[30080]
    iris = yaml.safe_load((ROOT / "examples" / "inferenceservice-iris.yaml").read_text())
    assert svc["metadata"]["namespace"] == iris["metadata"].get("namespace", "default")
    pod_labels = labels.serving(iris["metadata"]["name"], iris["spec"]["model"], 1)
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == Settings().serving_port


def test_deploy_manifests_are_valid_kubernetes() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    count = 0
    for f in sorted(DEPLOY.glob("*.yaml")):
        if f.name == "values.yaml":
            continue
        for d in _docs(f):
            kv.validate(d, "1.30.0", strict=True)
            count += 1
    assert count >= 8


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    (cm,) = [d for d in _docs(DEPLOY / "prometheus.yaml") if d["kind"] == "ConfigMap"]
    config = yaml.safe_load(cm["data"]["prometheus.yml"])

    def check() -> subprocess.CompletedProcess[str]:
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        return subprocess.run(
            [promtool, "check", "config", "--syntax-only", "prometheus.yml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = check()
    if out.returncode != 0 and "kubernetes_sd_configs not found" in out.stdout + out.stderr:
        # Debian builds Prometheus without Kubernetes service discovery: check everything else (the
        # relabelling that picks and labels the serving pods) with a static target in its place.
        for job in config["scrape_configs"]:
            job.pop("kubernetes_sd_configs")
            job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
        out = check()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_kind_values_render_a_single_node_setup() -> None:
    from _chart import of_kind, one, render, validate_values

    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    validate_values(values)
    objects = render(values)
    pvcs = of_kind(objects, "PersistentVolumeClaim")
    assert {p["metadata"]["namespace"] for p in pvcs} == {"onnxops-system", "default"}
    assert all(p["spec"]["accessModes"] == ["ReadWriteOnce"] for p in pvcs)
    env = {
        e["name"]: e.get("value")
        for e in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    prom = next(d for d in _docs(DEPLOY / "prometheus.yaml") if d["kind"] == "Service")
    md, port = prom["metadata"], prom["spec"]["ports"][0]["port"]
    assert env["ONNXOPS_PROMETHEUS_URL"] == f"http://{md['name']}.{md['namespace']}.svc:{port}"


# --- the scripts, with fake tools that record how they were called --------------------------------------

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $1 $2" in
  "kind get clusters") exit 0 ;;
esac
exit 0
"""


def _fake_bin(tmp_path: Path, tools: list[str]) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        exe = bindir / tool
        exe.write_text(FAKE)
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    # only the fakes and the basic utilities: no real docker/podman/kind is ever reached
    basics = tmp_path / "basics"
    basics.mkdir()
    for util in (
        "bash",
        "sed",
        "head",
        "date",
        "git",
        "dirname",
        "basename",
        "mktemp",
        "rm",
        "grep",
        "cat",
        "printf",
    ):
        real = shutil.which(util)
        if real:
            (basics / util).symlink_to(real)
    return {**os.environ, "PATH": f"{bindir}:{basics}", "CALLS": str(tmp_path / "calls.log")}


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_build_images_script(tmp_path: Path) -> None:
    env = _fake_bin(tmp_path, ["podman"])
    out = subprocess.run(
        [BASH, str(ROOT / "scripts" / "build-images.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    calls = _calls(tmp_path)
    # the engine answers `info`; the default base is present, so it is used as it is
    assert calls[0] == "podman info"
    assert calls[1] == "podman --cgroup-manager cgroupfs image inspect python:3.11-slim"
    builds = calls[2:]
    assert len(builds) == 3
    for kind, call in zip(("operator", "serving", "trainer"), builds, strict=True):
        assert call.startswith(
            "podman --cgroup-manager cgroupfs build --ulimit nofile=1024:1024 "
            "--ulimit nproc=4096:4096 --network host "
            f"--file images/{kind}.Dockerfile "
        )
        assert f"--tag ghcr.io/onnxops/onnxops-{kind}:{VERSION} " in call
        assert "--build-arg PYTHON_IMAGE=python:3.11-slim " in call
        assert f"--build-arg ONNXOPS_VERSION={VERSION} " in call
        assert call.endswith(" .")


NO_PULL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case " $* " in
  *" image inspect python:3.11-slim "*|*" pull "*) exit 125 ;;
  *" image inspect localhost/onnxops-python:3.11-bookworm-rootfs "*) exit 0 ;;
  *" image inspect localhost/onnxops-python:3.11-bookworm "*) [ -f "$CALLS.base" ]; exit $? ;;
  *" build "*"--tag localhost/onnxops-python:3.11-bookworm "*) touch "$CALLS.base" ;;
esac
exit 0
"""


def test_build_images_script_makes_a_local_base_when_the_default_cannot_be_pulled(tmp_path: Path) -> None:
    env = _fake_bin(tmp_path, ["podman"])
    (tmp_path / "bin" / "podman").write_text(NO_PULL)
    for util in ("find", "cp", "mkdir", "tar"):
        real = shutil.which(util)
        if real and not (tmp_path / "basics" / util).exists():
            (tmp_path / "basics" / util).symlink_to(real)
    out = subprocess.run(
        [BASH, str(ROOT / "scripts" / "build-images.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "python:3.11-slim cannot be pulled" in out.stderr
    calls = _calls(tmp_path)
    base = [c for c in calls if "--tag localhost/onnxops-python:3.11-bookworm " in c]
    assert len(base) == 1 and " build " in base[0]  # the venv step on the kept debootstrap root
    builds = [c for c in calls if "--file images/" in c]
    assert len(builds) == 3
    assert all("--build-arg PYTHON_IMAGE=localhost/onnxops-python:3.11-bookworm " in c for c in builds)
    assert calls.index(base[0]) < calls.index(builds[0])


def test_build_images_script_needs_an_engine(tmp_path: Path) -> None:
    env = _fake_bin(tmp_path, [])
    out = subprocess.run(
        [BASH, str(ROOT / "scripts" / "build-images.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "no container engine" in out.stderr


def test_kind_up_script(tmp_path: Path) -> None:
    env = _fake_bin(tmp_path, ["kind", "kubectl", "helm", "docker"])
    out = subprocess.run(
        [BASH, str(ROOT / "scripts" / "kind-up.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    calls = _calls(tmp_path)

    def index(prefix: str) -> int:
        return next(i for i, c in enumerate(calls) if c.startswith(prefix))

    create = index("kind create cluster --name onnxops --config kind-config.yaml")
    builds = [i for i, c in enumerate(calls) if c.startswith("docker build")]
    loads = [i for i, c in enumerate(calls) if c.startswith("kind load docker-image --name onnxops")]
    prom = index("kubectl apply -f deploy/kind/prometheus.yaml")
    crds = index("kubectl apply --server-side -f charts/onnxops/crds/")
    helm = index("helm upgrade --install onnxops charts/onnxops")
    examples = index("kubectl apply -f examples/")
    assert len(builds) == 3 and len(loads) == 3
    assert create < min(builds) and max(builds) < min(loads) < max(loads) < prom < crds < helm < examples
    assert "--values deploy/kind/values.yaml" in calls[helm] and "--wait" in calls[helm]
    assert {c.split()[-1] for c in calls if c.startswith("kind load")} == {
        f"ghcr.io/onnxops/onnxops-{k}:{VERSION}" for k in ("operator", "serving", "trainer")
    }
    for manifest in (
        "examples/trainingjob-iris.yaml",
        "examples/inferenceservice-iris.yaml",
        "deploy/kind/iris-nodeport.yaml",
    ):
        assert f"kubectl apply -f {manifest}" in calls
        assert (ROOT / manifest).exists()


def test_makefile_targets_call_the_scripts() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "./scripts/build-images.sh" in make and "./scripts/kind-up.sh" in make
    assert "e2e-kind:" in make


def test_ci_runs_the_suite_and_the_kind_quick_start() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yaml").read_text())
    runs = {job: "\n".join(s.get("run", "") for s in spec["steps"]) for job, spec in wf["jobs"].items()}
    assert "make test" in runs["test"]
    assert "make kind-up" in runs["kind-e2e"] and "make e2e-kind" in runs["kind-e2e"]
    make = (ROOT / "Makefile").read_text()
    assert "ONNXOPS_E2E_KIND=1 $(BIN)/pytest -q -m kind tests/e2e" in make
    # the smoke test waits on the objects kind-up applies, under their real names
    for kind, path in (
        ("trainingjob", "examples/trainingjob-iris.yaml"),
        ("inferenceservice", "examples/inferenceservice-iris.yaml"),
    ):
        name = yaml.safe_load((ROOT / path).read_text())["metadata"]["name"]
        assert f"{kind}/{name}" in runs["kind-e2e"]
