"""One API group constant (onnxops.GROUP / VERSION / API_VERSION): every writer of apiVersion and every
label prefix uses it, and no module spells the group again."""

from __future__ import annotations

import re
from pathlib import Path

import onnxops
from onnxops import crdgen, release
from onnxops.api.v1alpha1 import InferenceService, Model, ModelVersion, TrainingJob
from onnxops.builders import labels
from onnxops.controller import context
from onnxops.kube.client import resource_path

ROOT = Path(onnxops.__file__).parent
# the group as a string literal of its own ("onnxops.dev" or "onnxops.dev/v1alpha1")
LITERAL = re.compile(r"""["']onnxops\.dev(/v1alpha1)?["']""")


def test_the_group_is_defined_once():
    assert (onnxops.GROUP, onnxops.VERSION) == ("onnxops.dev", "v1alpha1")
    assert onnxops.API_VERSION == "onnxops.dev/v1alpha1"
    assert labels.GROUP == context.GROUP == crdgen.GROUP == onnxops.GROUP
    assert context.API == crdgen.API_VERSION == release.API == onnxops.API_VERSION
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted(ROOT.rglob("*.py"))
        if p != ROOT / "__init__.py" and "api/v1alpha1" not in p.as_posix()  # typing.Literal needs the text
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if LITERAL.search(line)
    ]
    assert offenders == []


def test_the_models_api_version_is_the_constant():
    for model in (TrainingJob, ModelVersion, Model, InferenceService):
        assert model.model_fields["api_version"].default == onnxops.API_VERSION


def test_the_client_knows_every_kind_under_the_constant():
    for kind, plural in (
        ("TrainingJob", "trainingjobs"),
        ("ModelVersion", "modelversions"),
        ("Model", "models"),
        ("InferenceService", "inferenceservices"),
    ):
        assert resource_path(onnxops.API_VERSION, kind, "ns", "x") == (
            f"/apis/onnxops.dev/v1alpha1/namespaces/ns/{plural}/x"
        )
