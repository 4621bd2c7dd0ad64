"""Labels and annotations on the children, linking them back to their parents."""

from __future__ import annotations

from typing import Any

from onnxops import GROUP as GROUP  # the one API group constant
from onnxops.api.v1alpha1.meta import ObjectMeta

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "onnxops"
APP_NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
TRAINING_JOB = f"{GROUP}/training-job"
TRAINING_JOB_UID = f"{GROUP}/training-job-uid"
MODEL = f"{GROUP}/model"
MODEL_VERSION = f"{GROUP}/model-version"
INFERENCE_SERVICE = f"{GROUP}/inference-service"
VERSION = f"{GROUP}/version"
ROLE = f"{GROUP}/role"  # verification Jobs
FINALIZER = f"{GROUP}/finalizer"
GENERATION = f"{GROUP}/generation"  # annotation: the parent's generation a training Job was created for
RETRAIN_RECORD = f"{GROUP}/retrain-record"  # annotation: a retrain TrainingJob's status.retrain (JSON)
# label-file evaluation Jobs and pods: the InferenceService they evaluate (not INFERENCE_SERVICE, which
# selects serving pods: Service endpoints, drift scrapes)
LABEL_EVALUATION = f"{GROUP}/label-evaluation"
# shadow pods (spec.rollout.shadow): the InferenceService they shadow. Not INFERENCE_SERVICE, which the
# Service selects: a shadow answers mirrored requests only
SHADOW_OF = f"{GROUP}/shadow-of"
WINDOW_END = f"{GROUP}/window-end"  # annotation: the end of the window a label evaluation Job reads


def base(component: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGED_BY_VALUE, APP_NAME: "onnxops", COMPONENT: component}


def training(tj_name: str, model: str, tj_uid: str | None = None) -> dict[str, str]:
    """Training Job and pod labels; ``tj_uid`` tells this run's pods from a deleted namesake's."""
    out = {**base("training"), TRAINING_JOB: tj_name, MODEL: model}
    if tj_uid:
        out[TRAINING_JOB_UID] = tj_uid
    return out


def controller_uid(obj: dict[str, Any] | None) -> str | None:
    """The uid of ``obj``'s controller ownerReference, if any."""
    for r in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(r, dict) and r.get("controller"):
            return str(r.get("uid")) if r.get("uid") else None
    return None


def verification(mv_name: str, model: str) -> dict[str, str]:
    return {**base("verification"), MODEL_VERSION: mv_name, MODEL: model}


def label_evaluation(isvc: str, model: str) -> dict[str, str]:
    return {**base("label-evaluation"), LABEL_EVALUATION: isvc, MODEL: model}


def serving_selector(isvc: str) -> dict[str, str]:
    """Selects every served version's pods (the Service uses it)."""
    return {INFERENCE_SERVICE: isvc}


def serving(isvc: str, model: str, version: int) -> dict[str, str]:
    return {**base("serving"), INFERENCE_SERVICE: isvc, MODEL: model, VERSION: str(version)}


def shadow(isvc: str, model: str, version: int) -> dict[str, str]:
    """Labels of a shadow Deployment and its pods (spec.rollout.shadow): never selected by the Service."""
    return {**base("serving"), SHADOW_OF: isvc, MODEL: model, VERSION: str(version)}


def shadow_selector(isvc: str, version: int) -> dict[str, str]:
    return {SHADOW_OF: isvc, VERSION: str(version)}


def version_selector(isvc: str, version: int) -> dict[str, str]:
    return {INFERENCE_SERVICE: isvc, VERSION: str(version)}


def owner_of(kind: str, md: ObjectMeta) -> dict[str, Any]:
    """ownerReference to our custom object ``kind`` with (parsed) metadata ``md``."""
    return owner_reference(
        {"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": {"name": md.name, "uid": md.uid}}
    )


def owner_reference(parent: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """ownerReference to a parent custom object (garbage collection deletes the child with it)."""
    md = parent.get("metadata", {})
    return {
        "apiVersion": parent.get("apiVersion", f"{GROUP}/v1alpha1"),
        "kind": parent["kind"],
        "name": md["name"],
        "uid": md["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
