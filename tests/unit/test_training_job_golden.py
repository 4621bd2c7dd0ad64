"""The training Job (and the ModelVersion a training registers) stay the same across refactorings.

The operator compares the Job it wants with the one that exists: a Job that came out different for the same
TrainingJob after an upgrade would be flagged (spec edits "not applied") or re-created for every TrainingJob
in the cluster. ``golden/training_jobs.json`` holds, for every TrainingJob manifest under ``examples/`` (the
InferenceServices' ``spec.retrain.trainingJob`` templates too, as the retrain creates them) and a few
specs that set the remaining fields, the Job and the registered ModelVersion as the operator built them
before the TrainingJob path was typed (written once by that code, not by the code under test). Each
manifest is checked as written and as the API server stores it (pruned and defaulted by the CRD schema).

Regenerate (``python tests/unit/test_training_job_golden.py --write``) only for a change that is meant to
alter the Job, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.admission.prune import prune_and_default
from onnxops.builders import job as job_builder
from onnxops.reconcile import trainingjob as tjr
from onnxops.reconcile.drift_hook import retrain_training_job
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "training_jobs.json"
T0 = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64

SETTINGS = {
    "defaults": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
        trainer_resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    ),
    "s3-no-deadline": Settings(
        trainer_image="registry.example/onnxops-trainer:golden",
        serving_image="registry.example/onnxops-serving:golden",
        image_pull_policy="Always",
        default_storage_uri="s3://models/store",
        s3_endpoint_url="http://minio.storage:9000",
        s3_region="eu-west-1",
        default_credentials_secret="store-creds",
        job_deadline_seconds=0,
        trainer_resources={},
    ),
}

# Specs setting what the example manifests leave out: pod overrides, output and its Secret, Job control,
# fromServing (with and without an explicit sink), champion gates.
EXTRA_SPECS: dict[str, dict[str, Any]] = {
    "overrides": {
        "model": "wine",
        "dataset": {
            "uri": "pvc://data/wine/wine.parquet",
            "format": "parquet",
            "target": "cultivar",
            "features": ["alcohol", "malic_acid", "ash"],
            "categoricalFeatures": ["ash"],
            "sha256": SHA_C,
        },
        "estimator": {
            "className": "RandomForestClassifier",
            "params": {"n_estimators": 50, "max_depth": None, "class_weight": {"0": 1.5}},
            "scaling": "robust",
        },
        "evaluation": {"testFraction": 0.3, "seed": 1, "gates": ["f1_macro > 0.5"]},
        "output": {"uri": "s3://models/out", "credentialsSecret": {"name": "out-creds"}},
        "template": {
            "image": "registry.example/custom-trainer:1",
            "imagePullPolicy": "Never",
            "resources": {"requests": {"cpu": 2, "memory": "2Gi"}, "limits": {"cpu": "4"}},
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
            ],
            "serviceAccountName": "trainer",
            "env": [
                {"name": "OMP_NUM_THREADS", "value": "2"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            ],
        },
        "backoffLimit": 0,
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 3600,
        "suspend": True,
    },
    "from-serving": {
        "model": "iris",
        "dataset": {
            "uri": "sklearn://iris",
            "target": "species",
            "fromServing": {
                "service": "iris",
                "window": "2h",
                "versions": [1, 2],
                "minRows": 20,
                "labels": {"uri": "s3://labels/iris/", "credentialsSecret": {"name": "label-creds"}},
                "mix": {"rowShare": 0.5},
            },
        },
        "estimator": {"className": "LogisticRegression"},
    },
    "from-serving-sink": {
        "model": "iris",
        "dataset": {
            "target": "species",
            "fromServing": {
                "service": "iris",
                "labels": {"uri": "pvc://traffic/iris/_labels/"},
                "sinkUri": "pvc://traffic/iris/",
                "credentialsSecret": {"name": "sink-creds"},
            },
        },
        "estimator": {"className": "DecisionTreeClassifier"},
    },
    "champion": {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}},
        "evaluation": {
            "champion": {"alias": "production"},
            "championGates": [{"metric": "accuracy", "maxRegression": 0.01}, {"metric": "f1_macro"}],
        },
    },
}

ISVC_WITH_SINK: dict[str, Any] = {
    "apiVersion": "onnxops.dev/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "isvc-uid"},
    "spec": {
        "model": "iris",
        "logging": {"sink": {"uri": "s3://traffic/iris/", "credentialsSecret": {"name": "capture-creds"}}},
    },
}
CHAMPION: dict[str, Any] = {
    "source": "alias production",
    "version": 3,
    "uri": "s3://models/iris/3/model.onnx",
    "sha256": SHA_B,
    "credentialsSecret": {"name": "champion-creds"},
}

TRAINER_RESULT: dict[str, Any] = {
    "ok": True,
    "artifact": {"uri": "pvc://a/m/x/uid/model.onnx", "sha256": SHA_A, "sizeBytes": 10},
    "profile": {"uri": "pvc://a/m/x/uid/profile.json", "sha256": SHA_B},
    "metrics": {"accuracy": 0.9, "f1_macro": 0.88},
    "signature": {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    },
    "search": {"strategy": "grid", "bestParams": {"C": 0.5}, "trials": 4},
    "codeVersion": "0.1.0",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _crd_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"onnxops.dev_{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _identity(obj: dict[str, Any], n: int) -> dict[str, Any]:
    md = {
        "namespace": "ml",
        **(obj.get("metadata") or {}),
        "uid": f"00000000-0000-0000-0000-{n:012d}",
        "generation": 3,
        "creationTimestamp": "2026-03-02T12:30:00Z",
    }
    return {**obj, "metadata": md}


def manifests() -> dict[str, dict[str, Any]]:
    """name -> TrainingJob (as written), from examples/ and EXTRA_SPECS."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        rel = path.relative_to(ROOT).as_posix()
        for i, doc in enumerate(_docs(path)):
            key = f"{rel}#{i}"
            if doc.get("kind") == "TrainingJob":
                out[key] = doc
            elif doc.get("kind") == "InferenceService" and (doc.get("spec", {}).get("retrain") or {}).get(
                "trainingJob"
            ):
                isvc = {**doc, "metadata": {"namespace": "ml", "uid": "isvc-uid", **doc["metadata"]}}
                out[key + ":retrain"] = retrain_training_job(isvc, 1, {"reason": "drift", "at": "t"})
    for name, spec in EXTRA_SPECS.items():
        out[f"extra:{name}"] = {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": spec,
        }
    return out


def cases() -> list[tuple[str, dict[str, Any], str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(case id, TrainingJob, settings name, InferenceService fromServing names, champion)."""
    schema = _crd_schema("trainingjobs")
    out = []
    for n, (key, raw) in enumerate(sorted(manifests().items())):
        stored = prune_and_default(schema, raw)
        for form, obj in (("written", raw), ("stored", stored)):
            obj = _identity(obj, n)
            spec = obj["spec"]
            isvcs: list[dict[str, Any] | None] = [None]
            if (spec.get("dataset") or {}).get("fromServing"):
                isvcs.append(ISVC_WITH_SINK)
            champs: list[dict[str, Any] | None] = [None]
            if (spec.get("evaluation") or {}).get("championGates"):
                champs += [CHAMPION, {"source": "alias production", "missing": "alias not set"}]
            for sname in SETTINGS:
                for i, isvc in enumerate(isvcs):
                    for j, champ in enumerate(champs):
                        out.append((f"{key}|{form}|{sname}|isvc{i}|champ{j}", obj, sname, isvc, champ))
    return out


def _complete_job(job: dict[str, Any]) -> dict[str, Any]:
    md = {**job["metadata"], "uid": "job-uid"}
    return {
        **job,
        "metadata": md,
        "status": {
            "succeeded": 1,
            "startTime": "2026-03-02T12:31:00Z",
            "completionTime": "2026-03-02T12:40:00Z",
            "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-03-02T12:40:00Z"}
            ],
        },
    }


def _pod(message: str) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0, "message": message, "finishedAt": "2026-03-02T12:40:00Z"}}
    return {"status": {"containerStatuses": [{"name": "trainer", "state": state}]}}


def build(
    obj: dict[str, Any], settings: Settings, isvc: dict[str, Any] | None, champion: dict[str, Any] | None
) -> dict[str, Any]:
    """What the operator builds for ``obj``: the Job and the first plan's status (no Job yet), then the
    ModelVersion it registers when that Job completes."""
    service: Any = isvc if (obj["spec"].get("dataset") or {}).get("fromServing") else tjr.UNCHECKED
    first = tjr.reconcile(
        obj, None, [], registered=None, settings=settings, now=T0, service=service, champion=champion
    )
    built = job_builder.training_job(obj, settings, isvc, champion)
    assert first.job is None or first.job == built
    job = _complete_job(built)
    done = tjr.reconcile(
        obj,
        job,
        [_pod(json.dumps(TRAINER_RESULT))],
        registered=None,
        settings=settings,
        now=T0,
        service=service,
        champion=champion,
    )
    return {
        "job": built,
        "status": first.status,
        "register": done.register,
        "doneStatus": done.status,
    }


def compute() -> dict[str, Any]:
    return {cid: build(obj, SETTINGS[s], isvc, ch) for cid, obj, s, isvc, ch in cases()}


GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def test_golden_covers_every_example() -> None:
    ids = {c[0] for c in cases()}
    assert ids == set(GOLDEN_DATA), "cases differ from golden/training_jobs.json: an example came or went"
    keys = {cid.split("|")[0] for cid in ids}
    assert any(k.endswith(":retrain") for k in keys)  # the InferenceServices' retrain templates are in
    assert sum(1 for k in keys if k.startswith("examples/")) >= 8


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_job_and_registration_unchanged(case: tuple[str, Any, str, Any, Any]) -> None:
    cid, obj, sname, isvc, champ = case
    got = json.loads(json.dumps(build(obj, SETTINGS[sname], isvc, champ)))
    want = GOLDEN_DATA[cid]
    assert got["job"] == want["job"]
    # byte for byte: the trainer's --spec-json is the stored spec, serialised the same way
    assert json.dumps(got["job"], sort_keys=True) == json.dumps(want["job"], sort_keys=True)
    assert got["status"] == want["status"]
    assert got["register"] == want["register"]
    assert got["doneStatus"] == want["doneStatus"]


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    rows = sorted(compute().items())  # one case a line
    compact = (",", ":")
    lines = [f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=compact)}" for k, v in rows]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(GOLDEN_DATA) or 'new'} -> {GOLDEN}")
