"""The champion of a TrainingJob's champion gates (pure): which artifact the trainer compares with.

Resolved once, when the training Job is created, and carried in the Job's pod template
(``ONNXOPS_CHAMPION_JSON``), so every later reconcile (and a restarted operator) reads the same champion
back from the Job. ``alias``: the version the Model's alias names (Model or alias absent: no champion yet);
``inferenceService``: the version it serves as stable (not serving yet: no champion yet). A named champion
that cannot be used (the service does not exist, the version is gone or not Ready) is an error naming the
field: the Job is not created and the TrainingJob says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.model import ParsedModel
from onnxops.api.v1alpha1.trainingjob import ChampionRef, TrainingJobSpec
from onnxops.builders.job import CHAMPION_ENV

from . import governance, versions
from .state import RolloutState

ENV = CHAMPION_ENV
FIELD = "spec.evaluation.champion"


def wanted(spec: TrainingJobSpec) -> ChampionRef | None:
    """The champion reference when the spec has champion gates, else None."""
    ev = spec.evaluation
    return ev.champion if ev is not None and ev.champion_gates and ev.champion else None


def served_stable(
    name: str, isvc: ParsedInferenceService | str | Mapping[str, Any] | None
) -> tuple[int | None, str] | str:
    """(the version InferenceService ``name`` serves as stable, None when none yet; the model it serves),
    or the error naming the field. ``isvc``: parsed, or why it does not parse (``ParsedInferenceService.
    parse_or_problem``; a stored object is parsed here), None when there is none."""
    where = f"{FIELD}.inferenceService"
    if isvc is None:
        return f"{where}: InferenceService {name!r} not found in this namespace"
    svc = isvc if isinstance(isvc, str) else ParsedInferenceService.parse_or_problem(isvc)
    if isinstance(svc, str):
        return f"{where}: InferenceService {name!r} cannot be read ({svc})"
    stable = RolloutState.from_status(dict(svc.status)).stable
    return (None if stable is None else int(stable)), svc.spec.model


def resolve(
    ref: ChampionRef,
    model: str,
    model_obj: ParsedModel | Mapping[str, Any] | None,
    isvc: ParsedInferenceService | str | Mapping[str, Any] | None,
    mvs: Iterable[versions.MvLike],
) -> tuple[dict[str, Any] | None, str | None]:
    """(the champion for the trainer, or an error message naming the field). ``model_obj``, ``isvc`` (the
    InferenceService ``ref`` names, or why it does not parse) and ``mvs``: parsed (stored objects are
    parsed here); a version whose stored object does not parse is not Ready, a service whose spec does
    not parse is an error."""
    if ref.alias:
        alias = ref.alias
        source = f"alias {alias}"
        parsed = governance.parse_model(model_obj)
        if isinstance(parsed, str):
            return None, f"{FIELD}.alias: Model {model} cannot be read ({parsed})"
        aliases = governance.aliases_of(parsed.spec) if parsed is not None else {}
        if alias not in aliases:
            return {"source": source, "missing": f"alias {alias} is not set on Model {model}"}, None
        version, of_model, where = aliases[alias], model, f"{FIELD}.alias"
    else:
        name = str(ref.inference_service)
        source = f"inferenceService {name}"
        served = served_stable(name, isvc)
        if isinstance(served, str):
            return None, served
        stable, of_model = served
        if stable is None:
            return {"source": source, "missing": f"InferenceService {name} serves no version yet"}, None
        version, where = stable, f"{FIELD}.inferenceService"
    mv = versions.by_version(mvs, of_model).get(version)
    if mv is None or mv.parsed is None or not mv.ready:
        state = "not found" if mv is None else f"not Ready ({versions.not_ready(mv)})"
        return None, f"{where}: the champion {of_model}-v{version} is {state}"
    art = mv.parsed.spec.artifact
    out: dict[str, Any] = {"source": source, "version": version, "uri": art.uri, "sha256": art.sha256}
    if art.credentials_secret is not None:
        out["credentialsSecret"] = art.credentials_secret.to_dict()
    return out, None


def of_job(job: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The champion a training Job was created with (its trainer's env), or None."""
    tpl = ((job or {}).get("spec") or {}).get("template") or {}
    for c in (tpl.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if e.get("name") == ENV:
                try:
                    value = json.loads(str(e.get("value")))
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
    return None
