"""``onnxops render -f manifest.yaml``: print the child objects the operator would create, as YAML.

A TrainingJob renders its training Job, a ModelVersion its verification Job, and an InferenceService its
Service and the Deployment (+ HPA) of the version it resolves to — the ModelVersions it may resolve to are
read from the same files (treated as verified), as on a first rollout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.api.v1alpha1.trainingjob import ParsedTrainingJob
from onnxops.settings import Settings

from . import job, names
from .deployment import deployment
from .hpa import hpa
from .service import service, version_service

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


def _with_identity(obj: dict[str, Any]) -> dict[str, Any]:
    md = dict(obj.get("metadata") or {})
    if not md.get("name"):
        raise ValueError(f"{obj.get('kind', 'object')} has no metadata.name")
    md.setdefault("namespace", "default")
    md.setdefault("uid", PLACEHOLDER_UID)
    return {**obj, "metadata": md}


def render(docs: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    mvs = [_with_identity(d) for d in docs if d.get("kind") == "ModelVersion"]
    for raw in docs:
        kind = raw.get("kind")
        if kind not in ("TrainingJob", "ModelVersion", "InferenceService"):
            continue
        obj = _with_identity(raw)
        if kind == "TrainingJob":
            out.append(job.training_job(ParsedTrainingJob.parse(obj), settings))  # ValueError if invalid
        elif kind == "ModelVersion":
            out.append(job.verification_job(ParsedModelVersion.parse(obj), settings))
        else:
            out.extend(_render_isvc(obj, mvs, settings))
    return out


def _render_isvc(obj: dict[str, Any], mvs: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    isvc = ParsedInferenceService.parse(obj)  # ValueError (pydantic's ValidationError) if invalid
    md, spec = isvc.meta, isvc.spec
    # the model's versions, parsed (ValueError if one is invalid; another model's are not read)
    own = [ParsedModelVersion.parse(m) for m in mvs if (m.get("spec") or {}).get("model") == spec.model]
    want = spec.version
    if want == "latest":
        chosen = max(own, key=lambda m: m.spec.version, default=None)
    else:
        chosen = next((m for m in own if m.spec.version == int(want)), None)
    if chosen is None:
        raise ValueError(
            f"InferenceService {md.name}: no ModelVersion of model {spec.model!r} "
            f"(version {want}) in the given files"
        )
    v = chosen.spec.version
    auto = spec.autoscaling
    children = [service(isvc, settings.serving_port, settings.serving_grpc_port)]
    children.append(deployment(isvc, chosen, None if auto else spec.replicas, settings))
    if auto:
        children.append(hpa(isvc, v, auto.min_replicas, auto.max_replicas, auto.target_cpu_utilization))
    if spec.rollout is not None and spec.rollout.http_route is not None:
        children.append(version_service(isvc, v, settings.serving_port, settings.serving_grpc_port))
    assert names.deployment(md.name, v) == children[1]["metadata"]["name"]
    return children


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="onnxops render", description=__doc__.splitlines()[0])
    p.add_argument("-f", "--filename", action="append", required=True, help="manifest file ('-' = stdin)")
    args = p.parse_args(argv)
    docs: list[dict[str, Any]] = []
    try:
        for f in args.filename:
            text = sys.stdin.read() if f == "-" else Path(f).read_text(encoding="utf-8")
            docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        children = render(docs, Settings.from_env())
    except (OSError, yaml.YAMLError, ValueError, KeyError) as exc:
        print(f"onnxops render: {exc}", file=sys.stderr)
        return 1
    print(yaml.safe_dump_all(children, sort_keys=False), end="")
    return 0
