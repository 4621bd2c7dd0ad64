"""Fixtures of the install tier (helpers in _install_support.py): a container engine, and the three images
built once per session. Skipped only when no container engine answers."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from _install_support import BUILD_TIMEOUT_S, IMAGE_REPO, KINDS, ROOT, engine_argv


@pytest.fixture(scope="session")
def engine() -> list[str]:
    argv = engine_argv()
    if argv is None:
        pytest.skip("no container engine (podman or docker) is installed or answering")
    return argv


@pytest.fixture(scope="session")
def images(engine: list[str]) -> dict[str, str]:
    """kind -> the built image reference (built once per session). The build's duration is printed
    (pytest -s). ONNXOPS_TEST_REUSE_IMAGES=1 reuses images of these tags when present (local re-runs)."""
    version = next(
        line.split('"')[1]
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    refs = {k: f"{IMAGE_REPO}/onnxops-{k}:{version}" for k in KINDS}
    if os.environ.get("ONNXOPS_TEST_REUSE_IMAGES") == "1" and all(
        subprocess.run([*engine, "image", "inspect", r], capture_output=True, timeout=60).returncode == 0
        for r in refs.values()
    ):
        return refs  # a local re-run against images built from this tree already
    env = {**os.environ, "IMAGE_REPO": IMAGE_REPO, "TAG": version, "ENGINE": engine[0]}
    started = time.monotonic()
    out = subprocess.run(
        ["bash", "scripts/build-images.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    print(f"\nbuild-images.sh: {time.monotonic() - started:.0f}s")
    return refs
