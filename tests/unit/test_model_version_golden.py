"""The verification Job and the ModelVersion's status stay the same across refactorings.

As for the training Job (test_training_job_golden.py): the operator compares the verification Job it wants
with the one that exists, so the same ModelVersion must build the same Job after an upgrade.
``golden/model_versions.json`` holds, for the example ModelVersion, every ModelVersion the example
TrainingJobs register (golden/training_jobs.json) and a few that set the remaining fields, the Job and the
plan (status, patch, Events) in each state of a verification, as the operator built them before the
ModelVersion path was typed (written once by that code, not by the code under test). Each is checked as
written and as the API server stores it (pruned and defaulted by the CRD schema).

Regenerate (``python tests/unit/test_model_version_golden.py --write``) only for a change that is meant to
alter them, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.admission.openapi import validate_schema
from onnxops.admission.prune import prune_and_default
from onnxops.builders import job as job_builder
from onnxops.reconcile import modelversion as mvr
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "model_versions.json"
T0 = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64

SETTINGS = {
    "defaults": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
    ),
    "s3": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
        image_pull_policy="Always",
        s3_endpoint_url="http://minio.storage:9000",
        s3_region="eu-west-1",
        default_credentials_secret="store-creds",
    ),
}

EXTRA_SPECS: dict[str, dict[str, Any]] = {
    "s3-profile": {
        "model": "wine",
        "version": 7,
        "artifact": {
            "uri": "s3://models/wine/7/model.onnx",
            "sha256": SHA_A,
            "sizeBytes": 1234,
            "credentialsSecret": {"name": "model-creds"},
        },
        "profile": {"uri": "s3://models/wine/7/profile.json", "sha256": SHA_B},
        "metrics": {"rmse": 0.5, "r2": 1},
        "signature": {
            "task": "regression",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}],
            "featureNames": ["a", "b", "c"],
        },
    },
    "bare": {"model": "iris", "version": 2, "artifact": {"uri": "file:///models/iris.onnx", "sha256": SHA_B}},
}


def _job(kind: str | None) -> dict[str, Any] | None:
    if kind is None:
        return None
    st: dict[str, Any] = {"active": 1, "startTime": "2026-03-02T12:31:00Z"}
    if kind in ("Complete", "Failed"):
        st = {
            "startTime": "2026-03-02T12:31:00Z",
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": "BackoffLimitExceeded" if kind == "Failed" else "",
                    "lastTransitionTime": "2026-03-02T12:40:00Z",
                }
            ],
        }
        if kind == "Complete":
            st["completionTime"] = "2026-03-02T12:40:00Z"
    return {"metadata": {"name": "x-verify", "uid": "job-uid"}, "status": st}


def _pod(message: str) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 1, "message": message, "finishedAt": "2026-03-02T12:40:00Z"}}
    return {"status": {"containerStatuses": [{"name": "verify", "state": state}]}}


FAILURE = json.dumps({"ok": False, "reason": "DigestMismatch", "message": "sha256 differs"})
# (state name, the job, its pods, the stored status)
STATES: list[tuple[str, str | None, list[dict[str, Any]], dict[str, Any]]] = [
    ("new", None, [], {}),
    ("running", "Running", [], {"phase": "Verifying", "message": "verification Job running"}),
    ("complete", "Complete", [], {"phase": "Verifying"}),
    ("failed", "Failed", [_pod(FAILURE)], {"phase": "Verifying"}),
    ("failed-raw", "Failed", [_pod("Traceback: boom")], {"phase": "Verifying"}),
    ("ready", None, [], {"phase": "Ready", "message": "verified", "observedGeneration": 1}),
]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def manifests() -> dict[str, dict[str, Any]]:
    """name -> ModelVersion (as written)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        rel = path.relative_to(ROOT).as_posix()
        for i, doc in enumerate(_docs(path)):
            if doc.get("kind") == "ModelVersion":
                out[f"{rel}#{i}"] = doc
    registered = json.loads((HERE / "golden" / "training_jobs.json").read_text())
    seen: set[str] = set()
    for cid, case in sorted(registered.items()):
        body = case["register"]
        spec = {**body["spec"], "version": 4}
        search = ((spec.get("lineage") or {}).get("estimator") or {}).get("search")
        if search is not None and "metric" not in search:  # the trainer always names it; the API requires it
            spec["lineage"]["estimator"]["search"] = {**search, "metric": "accuracy"}
        if (spec.get("lineage") or {}).get("dataset") == {}:  # fromServing: the trainer reports where it read
            spec["lineage"] = {**spec["lineage"], "dataset": {"uri": "pvc://traffic/iris/"}}
        key = json.dumps(spec, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        name = f"{spec['model']}-v4"
        out[f"registered:{cid.split('|')[0]}:{len(seen)}"] = {
            **body,
            "metadata": {**body["metadata"], "name": name},
            "spec": spec,
        }
    for name, spec in EXTRA_SPECS.items():
        out[f"extra:{name}"] = {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": spec,
        }
    return out


def cases() -> list[tuple[str, dict[str, Any]]]:
    crd = yaml.safe_load((ROOT / "crds" / "onnxops.dev_modelversions.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    out = []
    for n, (key, raw) in enumerate(sorted(manifests().items())):
        stored = prune_and_default(schema, raw)
        # only what the API server accepts (the schema part; CEL rules aside)
        assert not validate_schema(schema, stored), (key, validate_schema(schema, stored))
        for form, obj in (("written", raw), ("stored", stored)):
            md = {
                "namespace": "ml",
                **(obj.get("metadata") or {}),
                "uid": f"00000000-0000-0000-0000-{n:012d}",
                "generation": 1,
            }
            out.append((f"{key}|{form}", {**obj, "metadata": md}))
    return out


def build(mv: dict[str, Any]) -> dict[str, Any]:
    """The verification Job (per settings), and per state of the verification the plan (the Job it
    ensures, if any, as a flag: it is the Job above) and, once Ready, the deletion guard."""
    out: dict[str, Any] = {f"job:{s}": job_builder.verification_job(mv, st) for s, st in SETTINGS.items()}
    settings = SETTINGS["defaults"]
    for state, job, pods, status in STATES:
        obj = {**mv, "status": status}
        for users in ([], ["ml/b", "ml/a"]) if state in ("complete", "ready") else ([],):
            plan = mvr.reconcile(obj, _job(job), pods, served_by=users, settings=settings, now=T0)
            assert plan.job is None or plan.job == out["job:defaults"]
            out[f"{state}:{len(users)}"] = {
                "ensures": plan.job is not None,
                "status": plan.status,
                "patch": plan.status_patch,
                "events": plan.events,
            }
    out["deletion"] = mvr.deletion_block({**mv, "status": STATES[-1][3]}, ["ml/a"], T0)
    return out


def compute() -> dict[str, Any]:
    return {cid: build(obj) for cid, obj in cases()}


GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def test_golden_covers_every_model_version() -> None:
    ids = {c[0] for c in cases()}
    assert ids == set(GOLDEN_DATA), "cases differ from golden/model_versions.json: an example came or went"
    keys = {cid.split("|")[0] for cid in ids}
    assert any(k.startswith("examples/") for k in keys)
    assert sum(1 for k in keys if k.startswith("registered:")) >= 8


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_verification_job_and_status_unchanged(case: tuple[str, Any]) -> None:
    cid, obj = case
    got = json.loads(json.dumps(build(obj)))
    want = GOLDEN_DATA[cid]
    for s in SETTINGS:  # byte for byte: the expected signature is the stored one, serialised the same way
        assert json.dumps(got[f"job:{s}"], sort_keys=True) == json.dumps(want[f"job:{s}"], sort_keys=True)
    assert got == want


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    rows = sorted(compute().items())  # one case a line
    compact = (",", ":")
    lines = [f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=compact)}" for k, v in rows]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(rows)} -> {GOLDEN}")
