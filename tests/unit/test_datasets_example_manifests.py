"""examples/datasets/ (own CSV/Parquet on S3, docs/datasets.md): the TrainingJob validates against the CRDs
and parses with the API models, the Secret is a valid core/v1 Secret whose keys are the ones the page
documents, and the training Job the operator builds from the example hands the pod exactly that Secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.api.v1alpha1 import TrainingJob
from onnxops.builders.job import training_job
from onnxops.crdgen import build_crds
from onnxops.settings import Settings
from onnxops.validate import prune_and_default, schema_for, validate_manifest

ROOT = Path(__file__).resolve().parents[2]
DIR = ROOT / "examples" / "datasets"
DOC = (ROOT / "docs" / "datasets.md").read_text()


def _one(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((DIR / name).read_text()) if d]
    return dict(doc)


TJ = _one("trainingjob-s3-csv.yaml")
SECRET = _one("s3-credentials-secret.yaml")


def test_training_job_validates_and_parses() -> None:
    crds = build_crds()
    assert validate_manifest(crds, TJ) == []
    stored = prune_and_default(schema_for(crds["TrainingJob"]), TJ)
    spec = TrainingJob.model_validate(stored).spec
    assert spec.dataset.uri.startswith("s3://") and spec.dataset.format == "csv"
    assert spec.dataset.target == "cultivar"
    assert spec.dataset.credentials_secret is not None
    assert spec.dataset.credentials_secret.name == SECRET["metadata"]["name"]


def test_secret_is_a_valid_secret_with_the_documented_keys() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(SECRET, "1.30.0", strict=True)
    table = DOC.split("## 2. The Secret", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(AWS_\w+)` \|", table, flags=re.M))
    assert {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    } == documented
    assert set(SECRET["stringData"]) <= documented
    # and boto3 really reads them (the names in the storage module, not copied from the doc)
    s3_source = (ROOT / "operator" / "onnxops" / "storage" / "s3.py").read_text()
    for key in ("AWS_ENDPOINT_URL", "AWS_REGION"):
        assert key in s3_source


def test_training_pod_gets_the_secret_by_name_only() -> None:
    obj = {**TJ, "metadata": {**TJ["metadata"], "namespace": "ml", "uid": "u-1"}}
    job = training_job(obj, Settings())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "onnxops-s3-data"}}]
    # no value of the Secret is copied into the pod spec
    text = yaml.safe_dump(job)
    assert "replace-me" not in text


def test_page_names_the_examples_and_its_spec_snippet_matches() -> None:
    for p in DIR.glob("*.yaml"):
        assert f"examples/datasets/{p.name}" in DOC, p.name
    (snippet,) = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)]
    spec = TJ["spec"]
    for key, value in snippet["spec"]["dataset"].items():
        assert spec["dataset"][key] == value, key
    assert snippet["spec"]["output"] == spec["output"]
    assert snippet["spec"]["model"] == spec["model"]
