"""Shared helpers for the Helm chart tests: render charts/onnxops with Helm's own engine (helm-python-sdk
binds Helm's Go library; no binary, no cluster, no network) and load the rendered objects."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "onnxops"
CHART_CRDS = CHART / "crds"
RELEASE = "onnxops"
NAMESPACE = "onnxops-system"

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) is not installed")

# Named value sets every chart test runs against: the defaults and the non-default modes users pick.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "replicas-2": {"replicaCount": 2},
    "replicas-2-watch-namespaces": {"replicaCount": 2, "watchNamespaces": ["team-a"]},
    "s3": {
        "artifacts": {
            "pvc": {"create": False},
            "s3": {
                "enabled": True,
                "endpoint": "http://minio.minio.svc:9000",
                "bucket": "models",
                "prefix": "prod/",
                "region": "eu-west-1",
                "credentialsSecret": "onnxops-s3",
            },
        },
    },
    "crds-templated": {
        "crds": {"enabled": True},
        "networkPolicy": {
            "enabled": True,
            "metricsNamespaceLabels": {"kubernetes.io/metadata.name": "monitoring"},
        },
    },
    "notifications": {
        "notifications": {
            "sinks": [
                {
                    "name": "ops",
                    "format": "Slack",
                    "urlSecretRef": {"name": "onnxops-slack", "key": "webhook"},
                },
                {"format": "CloudEvents", "events": ["RolledBack"], "urlSecretRef": {"name": "ce"}},
            ],
            "serviceSecretNames": ["onnxops-notifications"],
            "retries": 3,
        }
    },
    "monitoring": {
        "rbac": {"httpRoutes": True},
        "operator": {
            "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090",
            "verbose": True,
            "extraEnv": [{"name": "ONNXOPS_EXTRA", "value": "1"}],
        },
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
        "monitoring": {
            "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "alertLabels": {"team": "ml"}},
            "kubeStateMetrics": {"enabled": True},
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "MLOps"}},
        },
    },
}


@functools.cache
def _load() -> Any:
    return helm.Chart.load(str(CHART))


def _chart() -> Any:
    try:
        return _load()
    except helm.HelmLibraryError as e:  # the bundled Go library cannot load on this platform
        pytest.skip(f"helm-python-sdk cannot load its Helm library here: {e}")


@functools.cache
def _render(values_json: str) -> dict[str, str]:
    values = json.loads(values_json)
    rendered: dict[str, str] = _chart().render(
        values=values, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    return rendered


def render_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return dict(_render(json.dumps(values or {}, sort_keys=True)))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (a fresh copy: tests may mutate it)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_files(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(copy.deepcopy(doc))
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def validate_values(values: dict[str, Any]) -> None:
    """Helm's own values.schema.json validation (raises helm_python.HelmValuesError)."""
    _chart().validate_schema(values)


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = helm.lint(str(CHART), values or None, strict=True, namespace=NAMESPACE)
    return report


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every workload in the rendered chart."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o["metadata"]["name"], o["spec"]


def crds_present() -> bool:
    return CHART_CRDS.is_dir() and any(CHART_CRDS.glob("*.yaml"))


def load_chart_crds() -> dict[str, dict[str, Any]]:
    """kind -> CRD from the chart's crds/ directory (generated by `onnxops gen-crds`)."""
    if not crds_present():
        pytest.skip("charts/onnxops/crds/ is not generated yet (run `make crds`)")
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(CHART_CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out[doc["spec"]["names"]["kind"]] = doc
    return out
