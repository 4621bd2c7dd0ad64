"""The three images, built for real (tests/install/conftest.py) and run: each entrypoint answers, every
image runs as uid 10001 with a read-only root filesystem, and the serving image carries neither the
trainer's dependencies nor the operator's (nor the packages it never imports), while every module of
onnxops.serving imports in it."""

from __future__ import annotations

import subprocess

import pytest
from _install_support import KINDS, run_flags

# the first test builds the images (the session fixture): minutes, inside its timeout
pytestmark = [pytest.mark.slow, pytest.mark.install, pytest.mark.timeout(2400)]

PROBE = (
    "import os, importlib.util as u; print(os.getuid(), os.getgid(), "
    "bool(os.statvfs('/').f_flag & os.ST_RDONLY), "
    "[m for m in ('sklearn', 'skl2onnx', 'pandas', 'kopf', 'onnxruntime') if u.find_spec(m)])"
)
USAGE = {"operator": ["operator", "--help"], "serving": ["--help"], "trainer": ["--help"]}


def run(
    engine: list[str], image: str, *args: str, entrypoint: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    argv = [*engine, "run", "--rm", "--read-only", *run_flags()]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    return subprocess.run([*argv, image, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", KINDS)
def test_entrypoint_answers(engine: list[str], images: dict[str, str], kind: str) -> None:
    out = run(engine, images[kind], *USAGE[kind])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "usage:" in out.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_non_root_with_a_read_only_root(engine: list[str], images: dict[str, str], kind: str) -> None:
    out = run(engine, images[kind], "-c", PROBE, entrypoint="python")
    assert out.returncode == 0, out.stderr[-3000:]
    uid, gid, read_only, present = out.stdout.split(" ", 3)
    assert (uid, gid, read_only) == ("10001", "10001", "True")
    expected = {
        "operator": ["kopf"],
        "serving": ["onnxruntime"],
        "trainer": ["sklearn", "skl2onnx", "pandas", "onnxruntime"],
    }[kind]
    assert present.strip() == repr(expected)


def test_serving_image_imports_all_of_serving_and_nothing_of_training(
    engine: list[str], images: dict[str, str]
) -> None:
    code = "\n".join(
        [
            "import importlib, pkgutil, onnxops.serving as p",
            "for m in pkgutil.iter_modules(p.__path__):",
            "    importlib.import_module('onnxops.serving.' + m.name)",
            "import onnxops.drift.stats",  # the drift gauges import scipy on the first scrape
            "for m in ('sklearn', 'skl2onnx', 'pandas', 'kopf', 'kubernetes', 'aiohttp', 'yaml', 'pip'):",
            "    try:",
            "        importlib.import_module(m)",
            "    except ImportError:",
            "        print('absent', m)",
        ]
    )
    out = run(engine, images["serving"], "-c", code, entrypoint="python")
    assert out.returncode == 0, out.stderr[-3000:]
    absent = out.stdout.split()[1::2]
    assert absent == ["sklearn", "skl2onnx", "pandas", "kopf", "kubernetes", "aiohttp", "yaml", "pip"]
