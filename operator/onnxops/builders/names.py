"""Deterministic names of the children the operator creates (DNS-1123, at most 63 characters)."""

from __future__ import annotations

import hashlib

MAX_NAME = 63


def _fit(name: str, limit: int = MAX_NAME) -> str:
    """Keep a name under ``limit`` characters: cut it and add a short hash of the full name."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def training_job(tj_name: str) -> str:
    return _fit(f"{tj_name}-train")


def verification_job(mv_name: str) -> str:
    return _fit(f"{mv_name}-verify")


def model_version(model: str, version: int) -> str:
    return _fit(f"{model}-v{version}", 253)


def version_counter(model: str) -> str:
    """The ConfigMap keeping the highest version number ever issued for ``model`` (reconcile/registry.py)."""
    return _fit(f"onnxops-model-{model}", 253)


def deployment(isvc: str, version: int) -> str:
    return _fit(f"{isvc}-v{version}")


def service(isvc: str) -> str:
    return _fit(isvc)


def version_service(isvc: str, version: int) -> str:
    """Per-version Service (only created when the rollout uses an HTTPRoute for exact weights)."""
    return deployment(isvc, version)


def shadow(isvc: str, version: int) -> str:
    """The shadow phase's Deployment and Service ``<isvc>-v<N>-shadow`` (spec.rollout.shadow)."""
    return _fit(f"{isvc}-v{version}-shadow")


def hpa(isvc: str, version: int) -> str:
    return deployment(isvc, version)


def retrain_job(isvc: str, n: int) -> str:
    return _fit(f"{isvc}-retrain-{n}", 253)


def label_evaluation_job(isvc: str, window_end_unix: int) -> str:
    """The label-file evaluation Job of one window (its end in unix seconds: one Job per evaluation)."""
    return _fit(f"{isvc}-labels-{window_end_unix}")


def url(isvc: str, namespace: str) -> str:
    return f"http://{service(isvc)}.{namespace}.svc.cluster.local"
