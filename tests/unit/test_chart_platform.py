"""Chart features for the platform engineer: child images pinned by digest, default resources of serving
pods (chart values -> operator env -> Settings -> the serving Deployment), and the optional NetworkPolicy."""

from __future__ import annotations

from typing import Any

import pytest
from _chart import VALUE_SETS, helm, one, render, validate_values

from onnxops.builders.deployment import deployment
from onnxops.settings import Settings

DIGEST = "sha256:" + "0123456789abcdef" * 4


def _settings(values: dict[str, Any] | None = None) -> Settings:
    c = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return Settings.from_env({e["name"]: e["value"] for e in c["env"] if "value" in e})


def test_child_images_pinned_by_digest() -> None:
    s = _settings(
        {
            "childImages": {
                "trainer": {"repository": "registry.example/trainer", "tag": "1.0", "digest": DIGEST},
                "serving": {"repository": "registry.example/serving", "digest": DIGEST},
            }
        }
    )
    assert s.trainer_image == f"registry.example/trainer:1.0@{DIGEST}"
    from onnxops import __version__

    assert s.serving_image == f"registry.example/serving:{__version__}@{DIGEST}"
    with pytest.raises(helm.HelmValuesError, match="digest"):
        validate_values({"childImages": {"trainer": {"repository": "t", "digest": "latest"}}})


def _isvc(resources: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": "iris", "version": 1}
    if resources is not None:
        spec["resources"] = resources
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1"},
        "spec": spec,
    }


MV = {
    "apiVersion": "onnxops.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "iris-v1", "namespace": "ml", "uid": "m1"},
    "spec": {
        "model": "iris",
        "version": 1,
        "artifact": {"uri": "pvc://onnxops-artifacts/models/iris/1/model.onnx", "sha256": "a" * 64},
    },
    "status": {"phase": "Ready"},
}


def _serving_resources(settings: Settings, isvc: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = deployment(isvc, MV, 1, settings)["spec"]["template"]["spec"]["containers"][0].get(
        "resources", {}
    )
    return res


def test_serving_resources_flow_from_the_chart_to_the_deployment() -> None:
    # the chart's defaults: requests only (Burstable)
    assert _serving_resources(_settings(), _isvc()) == {"requests": {"cpu": "100m", "memory": "256Mi"}}
    wanted = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    s = _settings({"servingPods": {"resources": wanted}})
    assert s.serving_resources == wanted
    assert _serving_resources(s, _isvc()) == wanted
    # an InferenceService's own resources replace the defaults as a whole
    own = {"requests": {"cpu": "2"}}
    assert _serving_resources(s, _isvc(own)) == own
    # null in the chart (Helm merges {} with the defaults): no requests at all
    assert _serving_resources(_settings({"servingPods": {"resources": None}}), _isvc()) == {}
    # no chart (Settings without the variable): the builder's own default, never BestEffort
    assert _serving_resources(Settings(), _isvc())["requests"]
    with pytest.raises(helm.HelmValuesError, match="cpu"):
        validate_values({"servingPods": {"resources": {"requests": {"cpu": "lots"}}}})


@pytest.mark.parametrize("value", ["{not json", "[1]", '{"request": {}}', '{"limits": "1Gi"}'])
def test_bad_serving_resources_variable_names_it(value: str) -> None:
    with pytest.raises(ValueError, match="ONNXOPS_SERVING_RESOURCES"):
        Settings.from_env({"ONNXOPS_SERVING_RESOURCES": value})


def test_network_policy() -> None:
    from _chart import of_kind

    assert not of_kind(render(), "NetworkPolicy")
    objects = render(VALUE_SETS["crds-templated"])
    np = one(objects, "NetworkPolicy")["spec"]
    pod = one(objects, "Deployment")["spec"]["template"]
    assert np["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert np["policyTypes"] == ["Ingress"]  # egress stays open (API server, Prometheus, pods, S3)
    ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    health, metrics = np["ingress"]
    assert [p["port"] for p in health["ports"]] == ["health"] and "from" not in health
    assert [p["port"] for p in metrics["ports"]] == ["metrics"]
    assert {"health", "metrics"} <= ports
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    both = one(
        render(
            {
                "networkPolicy": {
                    "enabled": True,
                    "metricsNamespaceLabels": {"a": "b"},
                    "metricsPodLabels": {"c": "d"},
                }
            }
        ),
        "NetworkPolicy",
    )["spec"]
    # one peer with both selectors: pods with those labels in those namespaces
    assert both["ingress"][1]["from"] == [
        {"namespaceSelector": {"matchLabels": {"a": "b"}}, "podSelector": {"matchLabels": {"c": "d"}}}
    ]
    anyone = one(render({"networkPolicy": {"enabled": True}}), "NetworkPolicy")["spec"]
    assert "from" not in anyone["ingress"][1]
    no_metrics = one(
        render({"networkPolicy": {"enabled": True}, "metrics": {"enabled": False}}), "NetworkPolicy"
    )["spec"]
    assert len(no_metrics["ingress"]) == 1
