"""examples/training/: valid against the CRDs (schema and CEL), parsed by the API models, listed in the
examples README, and the bundled-data one trains end to end (search, slices and the gate pass)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.api.v1alpha1 import TrainingJob
from onnxops.crdgen import build_crds
from onnxops.trainer.__main__ import main
from onnxops.validate import prune_and_default, schema_for, validate_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "training"
MANIFESTS = sorted(EXAMPLES.glob("*.yaml"))
CRDS = build_crds()


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_listed_in_the_examples_readme() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert len(MANIFESTS) == 3
    for p in MANIFESTS:
        assert f"training/{p.name}" in readme


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_valid_and_parsed(path: Path) -> None:
    doc = load(path)
    assert validate_manifest(CRDS, doc) == []
    stored = prune_and_default(schema_for(CRDS["TrainingJob"]), doc)
    assert TrainingJob.model_validate(stored).to_dict()["spec"] == stored["spec"]


def test_the_lightgbm_halving_example_trains(tmp_path: Path) -> None:
    spec = load(EXAMPLES / "trainingjob-lightgbm-halving.yaml")["spec"]
    term = tmp_path / "term.json"
    rc = main(
        [
            "--spec-json",
            json.dumps(spec),
            "--run-id",
            "r",
            "--output-uri",
            f"file://{tmp_path}/out",
            "--termination-log",
            str(term),
        ]
    )
    result = json.loads(term.read_text())
    assert rc == 0, result
    assert result["search"]["strategy"] == "halving" and result["search"]["trials"] > 4
    assert set(result["search"]["bestParams"]) == {"num_leaves", "min_child_samples"}
    assert {r["feature"] for r in result["slices"]} == {"sex", "bmi"}
