"""The README is what a new user meets first: its commands are what CI runs, its manifests are valid."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from onnxops.validate import load_crds, validate_manifest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_the_test_command_is_what_ci_runs() -> None:
    commands = [b.strip() for b in _blocks("sh")]
    assert commands[1] == "make test"  # the second command near the top
    ci = [ln for ln in (REPO / ".ci/run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert "make test" in ci


def test_the_demo_command_comes_first_and_names_the_real_entrypoints() -> None:
    first = _blocks("sh")[0].strip()
    assert first == "./scripts/bootstrap.sh && .venv/bin/onnxops demo"
    assert (REPO / "scripts/bootstrap.sh").stat().st_mode & 0o111
    assert "demo" in (REPO / "operator/onnxops/cli.py").read_text()


def test_readme_manifests_are_valid() -> None:
    crds = load_crds()
    docs = [d for b in _blocks("yaml") for d in yaml.safe_load_all(b) if d]
    assert {d["kind"] for d in docs} == {"TrainingJob", "ModelVersion", "InferenceService"}
    for d in docs:
        causes = validate_manifest(crds, d)
        assert causes == [], f"{d['kind']}: {causes}"
