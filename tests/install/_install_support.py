"""Helpers of the install tier: the three images built with a real container engine
(scripts/build-images.sh, which makes a local base image when `python:3.11-slim` cannot be pulled), then
run as containers.

Skipped only when no container engine answers; a base image that cannot be pulled is not a reason to
skip (the build script makes one), and a failing build fails the tier."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("operator", "serving", "trainer")
IMAGE_REPO = "ghcr.io/onnxops"  # the chart's and the settings' default repository, with the project version
BUILD_TIMEOUT_S = 1800


def engine_argv() -> list[str] | None:
    """The engine with the global flags scripts/engine.sh uses, or None when none answers."""
    script = '. scripts/engine.sh >/dev/null 2>&1 && echo "$ENGINE $ENGINE_FLAGS"'
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    words = shlex.split(out.stdout.strip())
    return words if out.returncode == 0 and words and shutil.which(words[0]) else None


def run_flags() -> list[str]:
    return ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
